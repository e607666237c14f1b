"""Train a GPT on text.

    python train.py                                  # the default model on Shakespeare, on the CPU
    python train.py --device gpu                     # the same through CuPy on a GPU
    python train.py --preset proust --data my_book.txt --steps 5000
    python train.py --resume out/last.npz --steps 8000   # continue a run exactly where it stopped

Every --eval-interval steps: train and validation loss, a text sample, a row in out/metrics.jsonl, and the
checkpoints out/last.npz (always) and out/best.npz (on a new best validation loss). Ctrl-C saves and exits.
"""
import argparse
import hashlib
import json
import math
import os
import signal
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

import tinygrad_proust as tp
from models.corpus import (DataError, NotUTF8Error, TokenDataset, decode_utf8, default_corpus, read_corpus,
                           split_point)
from models.gpt import GPT, PRESETS, GPTConfig, preset_config
from models.tokenizer import ByteTokenizer, CharTokenizer, trained_bpe
from models import adapters
from models.cli import (RAN_OUT, OutputOrNothing, Parser, console, fail, given_flags, integer, load_model_or_fail,
                        non_empty, one_character, pick_device, real, safetensors_installed)
from models.loading import load_lora_base
from models.metrics import read_metrics, write_metrics
from models.record import RunRecord
from tinygrad_proust import nn, optim, rng as tp_rng
from tinygrad_proust.checkpoint import CheckpointError, load_checkpoint, save_checkpoint


def make_parser():
    """Every flag, with the values it accepts (checked as it is read: a bad value is one line and exit 2)."""
    p = Parser(description=__doc__)
    g = p.add_argument_group("model (fixed for a run: a resumed run keeps its checkpoint's)")
    g.add_argument("--preset", choices=sorted(PRESETS), help="architecture (default: char-small)")
    g.add_argument("--n-layer", type=integer(1, 1024), help="override the preset's number of blocks")
    g.add_argument("--n-head", type=integer(1, 1024), help="override the number of attention heads")
    g.add_argument("--n-embd", type=integer(1, 65536), help="override the model width")
    g.add_argument("--ffn-hidden", type=integer(1, 1 << 20), help="override the feed-forward width")
    g.add_argument("--block-size", type=integer(1, 1 << 20), help="context length (default: the preset's)")
    g.add_argument("--dropout", type=real(0, 1, high_open=True), help="override the preset's dropout")
    g.add_argument("--ffn-dropout", action=argparse.BooleanOptionalAction,
                   help="with dropout: on the feed-forward's hidden layer too (nanoGPT's has none there; the preset "
                        "says); like --dropout, it may change on a resume")
    g = p.add_argument_group("architecture (each overrides the preset's choice; fixed for a run)")
    g.add_argument("--norm", choices=["layernorm", "rmsnorm"], help="the normalisation layers")
    g.add_argument("--norm-placement", choices=["pre", "post"],
                   help="a norm before each sub-layer (pre, GPT-2 onwards) or after its residual add (post, the "
                        "original paper)")
    g.add_argument("--norm-bias", action=argparse.BooleanOptionalAction, help="LayerNorm's bias")
    g.add_argument("--norm-eps", type=real(0, 1, low_open=True), help="the epsilon added to the norms' variance")
    g.add_argument("--final-norm", action=argparse.BooleanOptionalAction, help="a norm before the head")
    g.add_argument("--ffn", choices=["relu", "gelu", "swiglu"], help="the feed-forward's non-linearity")
    g.add_argument("--ffn-bias", action=argparse.BooleanOptionalAction, help="the feed-forward's biases")
    g.add_argument("--gelu-approximate", choices=["tanh", "none"], help="--ffn gelu: GPT-2's tanh form or exact erf")
    g.add_argument("--attn-bias", action=argparse.BooleanOptionalAction,
                   help="biases of the attention's q/k/v and output projections")
    g.add_argument("--positions", choices=["learned", "sinusoidal", "rope"],
                   help="learned position embeddings, the original paper's fixed table, or rotary positions")
    g.add_argument("--rope-base", type=real(1, 1e12, low_open=True), help="--positions rope: the rotation's base")
    g.add_argument("--scale-embeddings", action=argparse.BooleanOptionalAction,
                   help="token embeddings times sqrt(n_embd), as in the original paper")
    g.add_argument("--tie-weights", action=argparse.BooleanOptionalAction,
                   help="the head reuses the token embedding matrix")
    g.add_argument("--head-bias", action=argparse.BooleanOptionalAction, help="--no-tie-weights: a bias in the head")
    g.add_argument("--scaled-residual-init", action=argparse.BooleanOptionalAction,
                   help="GPT-2's init: residual output projections ~ normal(0, 0.02 / sqrt(2 n_layer))")
    g = p.add_argument_group("data")
    g.add_argument("--data", type=non_empty,
                   help="a UTF-8 text file or a folder of them (default: Shakespeare, fetched once)")
    g.add_argument("--tokenizer", choices=["char", "byte", "bpe"],
                   help="characters (the default), UTF-8 bytes, or byte-level BPE trained on the training text")
    g.add_argument("--vocab-size", type=integer(257, 65536),
                   help="--tokenizer bpe: 256 bytes + the merges to learn (default: 2048)")
    g.add_argument("--bpe-pattern", choices=["gpt4", "gpt2", "none"],
                   help="--tokenizer bpe: cut the text into words, numbers and punctuation first, as GPT-4 or "
                        "GPT-2 do (merges never cross them; gpt4, the default), or learn merges over the whole "
                        "byte stream")
    g.add_argument("--chars", type=non_empty, help="char tokenizer: the vocabulary is the corpus's characters among "
                                                   "these (a note names any the corpus lacks); its other characters "
                                                   "are dropped, or replaced by --replace-unknown")
    g.add_argument("--replace-unknown", metavar="CHAR", type=one_character,
                   help="with --chars: put CHAR in place of other characters")
    g.add_argument("--unicode", choices=["nfc", "as-is"],
                   help="char tokenizer: compose accents written as separate marks (NFC, the default: 'é' typed "
                        "or stored either way is one character), or keep the text as it is")
    g.add_argument("--val-fraction", type=real(0, 1, low_open=True, high_open=True), default=0.1,
                   help="the end of the corpus kept for validation")
    g = p.add_argument_group("optimisation (given with --resume, these override the checkpoint's)")
    g.add_argument("--batch-size", type=integer(1, 1 << 20), default=32)
    g.add_argument("--grad-accum", type=integer(1, 1 << 20), default=1, help="micro-batches per optimizer step")
    g.add_argument("--steps", type=integer(1, 10**12), default=2500, help="optimizer steps in all")
    g.add_argument("--optimizer", default="adamw", choices=["adamw", "adam", "sgd"])
    g.add_argument("--lr", type=real(0, 100, low_open=True), default=3e-3, help="peak learning rate")
    g.add_argument("--min-lr", type=real(0, 100), help="floor of the cosine decay (default: lr / 10)")
    g.add_argument("--warmup", type=integer(0, 10**12), default=100, help="linear warm-up steps")
    g.add_argument("--schedule", default="cosine", choices=["cosine", "constant"],
                   help="cosine: --warmup, then a cosine decay to --min-lr at --lr-decay-steps; constant: --lr at "
                        "every step")
    g.add_argument("--lr-decay-steps", type=integer(1, 10**12),
                   help="step at which the cosine reaches the floor (default: --steps of the first run)")
    g.add_argument("--weight-decay", type=real(0, 100), default=0.1, help="AdamW decay of the weight matrices")
    g.add_argument("--beta1", type=real(0, 1, high_open=True), default=0.9)
    g.add_argument("--beta2", type=real(0, 1, high_open=True), default=0.99)
    g.add_argument("--momentum", type=real(0, 1, high_open=True), default=0.0, help="SGD momentum")
    g.add_argument("--grad-clip", type=real(0, 1e9), default=1.0, help="max global gradient norm (0: no clipping)")
    g = p.add_argument_group("evaluation, logging, checkpoints")
    g.add_argument("--eval-interval", type=integer(1, 10**12), default=250)
    g.add_argument("--eval-batches", type=integer(1, 1 << 20), default=20)
    g.add_argument("--sample-tokens", type=integer(0, 1 << 20), default=200,
                   help="length of the sample printed at each evaluation")
    g.add_argument("--log-interval", type=integer(1, 10**12), default=10,
                   help="steps between progress-bar updates (reads the loss)")
    g.add_argument("--time-limit", type=real(0, 10**7, low_open=True), metavar="MINUTES",
                   help="stop (evaluate and save, as after Ctrl-C) once the run has trained this long")
    g.add_argument("--out-dir", type=non_empty,
                   help="where checkpoints and metrics go (default: out, or the resumed checkpoint's folder)")
    g.add_argument("--overwrite", action="store_true", help="replace a run already in --out-dir")
    g.add_argument("--format", choices=["npz", "safetensors"], default="npz",
                   help="checkpoint files: NumPy's .npz, or .safetensors (pip install safetensors)")
    g.add_argument("--init-from", metavar="SOURCE", type=non_empty,
                   help="start a new run from these weights: a checkpoint, or a Transformers directory of the GPT-2 "
                        "or LLaMA family (its model and tokenizer; the model flags above cannot be given)")
    g = p.add_argument_group("LoRA fine-tuning (with --init-from: only low-rank adapters train; the base stays frozen)")
    g.add_argument("--lora-rank", type=integer(1, 65536), help="the adapters' rank r")
    g.add_argument("--lora-alpha", type=real(0, 1e6, low_open=True), help="the update is scaled by alpha / r "
                                                                         "(default: alpha = r)")
    g.add_argument("--lora-targets", type=non_empty,
                   help="layers to adapt: attn, mlp, head (an untied head) or name patterns, comma-separated "
                        "(default: attn, as in the LoRA paper)")
    g.add_argument("--lora-dropout", type=real(0, 1, high_open=True), help="dropout on the adapters' input (default 0)")
    g = p.add_argument_group("resuming")
    g.add_argument("--resume", metavar="CHECKPOINT", type=non_empty,
                   help="continue from a checkpoint: its settings are the defaults, flags given now override them")
    g = p.add_argument_group("system")
    g.add_argument("--device", default="cpu", choices=["cpu", "gpu", "cuda", "auto"])
    g.add_argument("--seed", type=integer(0, 2**32 - 1), default=1337)
    return p


# The architecture flags, each a GPTConfig field of the same name: a new run resolves them from its preset, so
# its saved settings name every choice in force.
ARCHITECTURE = ["norm", "norm_placement", "norm_bias", "norm_eps", "final_norm", "ffn", "ffn_bias", "gelu_approximate",
                "attn_bias", "positions", "rope_base", "scale_embeddings", "tie_weights", "head_bias",
                "scaled_residual_init"]
# Settings of the model and its vocabulary: a checkpoint's weights only fit the ones it was trained with.
MODEL_SIZES = ["n_layer", "n_head", "n_embd", "ffn_hidden", "block_size"]
FIXED_FOR_A_RUN = ["preset", *MODEL_SIZES, "tokenizer", "chars", "replace_unknown", "unicode", "vocab_size",
                   "bpe_pattern"] + ARCHITECTURE
LORA_SETTINGS = ["lora_rank", "lora_alpha", "lora_targets"]  # an adapter's shape: fixed for a run too
NOT_SAVED = ("resume", "out_dir", "overwrite", "time_limit")  # a time limit is this invocation's: a resume has none


@dataclass
class Start:
    """Where a run starts, resolved once from the flags (parse_args): a new run (all None); a resumed one
    (`resumed`: the checkpoint, whose weights and optimizer state are restored; `record`: what it says about its
    run); or one that begins from trained weights (`model`: --init-from's model; `tokenizer`: the one that came
    with it)."""
    resumed: object = None
    record: RunRecord = None        # the resumed checkpoint's record of its run
    model: GPT = None
    tokenizer: object = None
    corpus: dict = None             # what this run trains on (set by load_data): its source, size and SHA-256


def parse_args(argv):
    """(the settings, where the run starts: a Start). With --resume the checkpoint's saved settings are the
    defaults, so it is read here."""
    parser = make_parser()
    args = parser.parse_args(argv)
    start = Start()
    if args.resume:
        args, start = resume_settings(parser, argv, args)
    given = given_flags(parser, argv)
    if args.resume and args.min_lr is not None and args.min_lr > args.lr and "min_lr" not in given:
        args.min_lr = None  # the run's floor came from its old --lr: a lower --lr given now sets its own (lr / 10)
    if args.lora_rank is None and any(getattr(args, k) is not None for k in ("lora_alpha", "lora_targets",
                                                                             "lora_dropout")):
        fail("--lora-alpha, --lora-targets and --lora-dropout shape LoRA adapters: give --lora-rank too")
    if args.lora_rank and not args.init_from and start.resumed is None:
        fail("--lora-rank: LoRA adapts a trained model; name it with --init-from CHECKPOINT")
    if args.init_from and start.resumed is None:
        fixed = [key for key in FIXED_FOR_A_RUN if getattr(args, key) is not None]
        if fixed:
            fail(f"--{fixed[0].replace('_', '-')}: --init-from {args.init_from} brings its own model and tokenizer")
        start.model, start.tokenizer = load_init_source(args.init_from)
    elif start.resumed is None:  # a new run: the defaults of the model and tokenizer flags
        args.preset, args.tokenizer = args.preset or "char-small", args.tokenizer or "char"
        if args.tokenizer == "bpe":
            args.vocab_size, args.bpe_pattern = args.vocab_size or 2048, args.bpe_pattern or "gpt4"
        if args.tokenizer == "char":
            args.unicode = args.unicode or "nfc"
        preset = GPTConfig(**PRESETS[args.preset])
        for key in ARCHITECTURE:
            setattr(args, key, getattr(preset, key) if getattr(args, key) is None else getattr(args, key))
    refuse_unused_flags(given, args, start)
    if not dropout_in_force(args, start):
        args.ffn_dropout = None  # it acts only with dropout: no setting of this run
    elif start.resumed is None and start.model is None and args.ffn_dropout is None:
        args.ffn_dropout = GPTConfig(**PRESETS[args.preset]).ffn_dropout  # the preset's, named in the settings
    if args.format == "safetensors" and not safetensors_installed():  # now, not at the first checkpoint
        fail("--format safetensors needs the safetensors package: pip install safetensors")
    args.out_dir = args.out_dir or "out"
    if args.replace_unknown is not None and args.chars is None:
        fail("--replace-unknown needs --chars (the characters to keep)")
    if args.min_lr is not None and args.min_lr > args.lr:
        fail(f"--min-lr {args.min_lr} is above --lr {args.lr}")
    return args, start


# flags that act only with another setting: (flag's dest, the setting, the values it acts with)
APPLIES_ONLY_WITH = [("vocab_size", "tokenizer", ("bpe", None)), ("bpe_pattern", "tokenizer", ("bpe", None)),
                     ("chars", "tokenizer", ("char", None)), ("replace_unknown", "tokenizer", ("char", None)),
                     ("unicode", "tokenizer", ("char", None)),
                     ("momentum", "optimizer", ("sgd",)), ("gelu_approximate", "ffn", ("gelu", None)),
                     ("rope_base", "positions", ("rope", None)), ("norm_bias", "norm", ("layernorm", None)),
                     ("head_bias", "tie_weights", (False, None)),
                     ("weight_decay", "optimizer", ("adamw",)), ("beta1", "optimizer", ("adamw", "adam")),
                     ("beta2", "optimizer", ("adamw", "adam")), ("warmup", "schedule", ("cosine",)),
                     ("min_lr", "schedule", ("cosine",)), ("lr_decay_steps", "schedule", ("cosine",))]


def as_flag(dest, value):
    """How a setting is written on the command line: '--tokenizer bpe', '--no-tie-weights'."""
    name = dest.replace("_", "-")
    if isinstance(value, bool):
        return f"--{name}" if value else f"--no-{name}"
    return f"--{name} {value}"


def settings_in_force(args):
    """The settings that act on this run: none that is unset, and none that acts only with another setting this run
    does not have (--gelu-approximate in a ReLU model, --vocab-size with characters)."""
    idle = {flag for flag, setting, values in APPLIES_ONLY_WITH if getattr(args, setting) not in values}
    return {key: value for key, value in vars(args).items() if value is not None and key not in idle}


def refuse_unused_flags(given, args, start):
    """A flag given (written on the command line) where it does nothing is an error, never printed as in force:
    --vocab-size with the char tokenizer, --momentum with Adam, --warmup with the constant schedule, --seed on a
    resume (a resumed run continues its own random streams)."""
    for flag, setting, values in APPLIES_ONLY_WITH:
        if flag in given and getattr(args, setting) not in values:
            acting = " or ".join(as_flag(setting, value) for value in values if value is not None)
            fail(f"--{flag.replace('_', '-')} acts only with {acting}; this run has "
                 f"{as_flag(setting, getattr(args, setting))}")
    if "ffn_dropout" in given and not dropout_in_force(args, start):
        fail(f"--{'' if args.ffn_dropout else 'no-'}ffn-dropout acts only with dropout; this run has --dropout 0")
    if args.resume and "seed" in given:
        fail("--seed: a resumed run continues the random streams its checkpoint saved; --seed starts new runs")


def dropout_in_force(args, start):
    """The run's dropout: --dropout, else the resumed checkpoint's, the --init-from model's or the preset's."""
    if args.dropout is not None:
        return args.dropout
    if start.record is not None:
        return start.record.config["dropout"]
    if start.model is not None:
        return start.model.config.dropout
    return PRESETS[args.preset].get("dropout", 0.0)


def resume_settings(parser, argv, args):
    """With --resume the checkpoint's saved settings become the parser's defaults, so a flag given now wins and
    every other setting is the checkpoint's; settings that fix the model cannot change."""
    try:
        checkpoint = load_checkpoint(args.resume)
        record = RunRecord.from_meta(checkpoint.meta, args.resume)
    except CheckpointError as err:
        fail(err)
    saved = {k: v for k, v in (record.args or {}).items() if k in vars(args) and k not in NOT_SAVED}
    # what the weights were built as (a run that took its preset's sizes recorded no --n-layer)
    saved.update({k: record.config[k] for k in MODEL_SIZES + ARCHITECTURE if k in record.config})
    if (record.tokenizer or {}).get("kind") == "char":  # what the tokenizer does (older runs did not record it)
        saved["unicode"] = "nfc" if record.tokenizer.get("normalize") else "as-is"
    if args.init_from and args.init_from != saved.get("init_from"):
        fail("--init-from starts a new run and --resume continues one: give one of them")
    parser.set_defaults(**saved)
    args = parser.parse_args(argv)
    if record.quantization is not None:
        fail(f"--resume {args.resume}: a quantised checkpoint cannot be trained (resume from the float one)")
    for key in FIXED_FOR_A_RUN + LORA_SETTINGS:
        if key in saved and getattr(args, key) != saved[key]:
            was = f"without --{key.replace('_', '-')}" if saved[key] is None else f"with {as_flag(key, saved[key])}"
            fail(f"{as_flag(key, getattr(args, key))}: the checkpoint's model was trained {was}; "
                 "the architecture and vocabulary of a run cannot change (start a new run instead)")
    if "val_fraction" in saved and args.val_fraction != saved["val_fraction"]:
        fail(f"--val-fraction {args.val_fraction:g}: the run splits its corpus at --val-fraction "
             f"{saved['val_fraction']:g}; another split would mix its training and validation text (start a new run "
             "from its weights with --init-from instead)")
    here = args.out_dir is None or Path(args.out_dir).resolve() == Path(args.resume).parent.resolve()
    if here and "format" in saved and args.format != saved["format"]:  # both kinds would stand side by side
        fail(f"--format {args.format}: this run's checkpoints are .{saved['format']} files, and a run resumed in its "
             "own folder keeps writing them; resume into a new --out-dir to change the format")
    last = Path(args.resume).parent / f"last.{args.format}"
    if here and last.is_file() and not last.samefile(args.resume):
        try:
            later = load_checkpoint(last).meta.get("step", 0)
        except CheckpointError:
            later = 0
        if later > record.step:
            fail(f"--resume {args.resume}: its folder's {last.name} is at step {later}, later than this checkpoint's "
                 f"step {record.step}, and resuming here would replace it: resume from {last}, or resume into a "
                 "new --out-dir")
    if record.args is None or record.rng is None or record.batch_rng is None or record.best_val_loss is None:
        fail(f"--resume {args.resume}: not a checkpoint of a train.py run (no settings or random states to continue "
             "from); start a new run from its weights with --init-from")
    if args.steps <= record.step:
        fail(f"--steps {args.steps}: the checkpoint is already at step {record.step}; "
             "give a larger --steps to train on")
    if args.out_dir is None:
        args.out_dir = str(Path(args.resume).parent)  # a resumed run continues in its own folder
    return args, Start(resumed=checkpoint, record=record)


def load_init_source(source):
    """(model, tokenizer) to start a run from: a checkpoint of ours, or a Transformers directory."""
    model, tokenizer, record = load_model_or_fail(source, context=f"--init-from {source}: ")
    if record is not None and record.quantization is not None:
        fail(f"--init-from {source}: a quantised checkpoint cannot be trained (start from the float one)")
    if record is not None and record.is_adapter:  # its layers are not a plain model's
        fail(f"--init-from {source}: a LoRA adapter: merge it into one checkpoint first (python adapters.py merge) "
             "and start from that")
    if tokenizer is None:
        fail(f"--init-from {source}: the directory has no tokenizer.json to encode the text with")
    return model, tokenizer


# ------------------------------------------------------------------------------------------------
# the phases of a run, in the order main() calls them
# ------------------------------------------------------------------------------------------------

def load_data(args, start):
    """(where the text came from, the tokenizer, the training and validation token ids, their sizes in bytes).
    The corpus is split at a byte (the last --val-fraction), then each part is encoded: a BPE tokenizer is
    trained on the training part only. The tokenizer is the checkpoint's when resuming."""
    try:
        if args.data:
            source, raw = args.data, read_corpus(args.data)
        else:
            path = default_corpus(log=lambda m: print(m, flush=True))
            source, raw = str(path), path.read_bytes()
    except DataError as err:
        fail(f"--data {args.data}: {err}" if args.data else
             f"{err}; pass --data PATH to train on your own UTF-8 text")
    split = split_point(raw, args.val_fraction)
    start.corpus = {"source": source, "bytes": len(raw), "sha256": hashlib.sha256(raw).hexdigest()}
    trained_on = start.record.corpus if start.record is not None else None
    if trained_on is not None and trained_on["sha256"] != start.corpus["sha256"]:
        fail(f"--resume {args.resume}: the corpus is not the one this run trained on ({trained_on['source']}, "
             f"{trained_on['bytes']:,} bytes; now {source}, {len(raw):,} bytes): resume on that text, or start a new "
             "run from these weights with --init-from")
    try:
        if start.resumed is not None:
            tokenizer = start.record.load_tokenizer(args.resume)
        else:
            tokenizer = start.tokenizer or build_tokenizer(args, raw, raw[:split], source)
        parts = (tokenizer.encode_corpus(raw[:split], source), tokenizer.encode_corpus(raw[split:], source))
    except NotUTF8Error as err:
        fail(err)  # it says that a byte-level tokenizer reads any bytes
    except (DataError, CheckpointError) as err:
        fail(err)
    if isinstance(tokenizer, CharTokenizer):
        report_unknown_chars(tokenizer, decode_utf8(raw, source))
    return source, tokenizer, parts, (split, len(raw) - split)


def report_unknown_chars(tokenizer, text):
    """Say which of the corpus's characters a char vocabulary lacks (--chars, or --init-from's vocabulary), and how
    many of the text's the model will never see."""
    counts = Counter(tokenizer.normal(text))  # one pass, however many characters are missing
    missing = sorted(set(counts) - tokenizer.index.keys())
    if missing:
        count, total = sum(counts[c] for c in missing), sum(counts.values())
        what = f"replaced by {tokenizer.replacement!r}" if tokenizer.unknown == "replace" else "left out"
        shown = ", ".join(map(repr, missing[:10])) + (f" and {len(missing) - 10} more" if len(missing) > 10 else "")
        print(f"the model's vocabulary lacks {len(missing)} of the corpus's characters: {count:,} of its {total:,} "
              f"are {what} ({shown})")


def build_tokenizer(args, raw, train_raw, source):
    if args.tokenizer == "byte":
        return ByteTokenizer()
    if args.tokenizer == "bpe":
        pattern = None if args.bpe_pattern == "none" else args.bpe_pattern
        tokenizer = trained_bpe(train_raw, args.vocab_size, pattern, log=lambda m: print(m, flush=True))
        if tokenizer.vocab_size < args.vocab_size:
            fail(f"--vocab-size {args.vocab_size}: the training text repeats enough pairs for only "
                 f"{len(tokenizer.merges)} merges (a vocabulary of {tokenizer.vocab_size}); lower --vocab-size "
                 "or give more text")
        return tokenizer
    tokenizer = CharTokenizer.from_text(decode_utf8(raw, source), allowed=args.chars,
                                        unknown="replace" if args.replace_unknown else "drop",
                                        replacement=args.replace_unknown,
                                        normalize=None if args.unicode == "as-is" else "NFC")
    absent = sorted(set(tokenizer.normal(args.chars or "")) - tokenizer.index.keys())
    if absent:  # a vocabulary is the corpus's characters: these could never be learned
        some = f"{len(absent)} characters the corpus lacks" if len(absent) > 1 else "a character the corpus lacks"
        print(f"--chars names {some} ({', '.join(map(repr, absent[:10]))}{' and more' if len(absent) > 10 else ''})"
              f": the vocabulary leaves {'them' if len(absent) > 1 else 'it'} out")
    return tokenizer


@dataclass
class Run:
    """What a training run holds between steps; its checkpoints save all of it."""
    args: argparse.Namespace
    config: GPTConfig
    tokenizer: object
    dataset: TokenDataset
    model: GPT
    optimizer: optim.Optimizer
    device: str
    out_dir: Path
    batch_rng: np.random.Generator
    step: int = 0
    best_val: float = math.inf
    val_bytes: int = 0
    lora: dict = None            # the adapters' settings, for a LoRA run
    base: dict = None            # and the base they belong to
    stored: set = None           # the weights a checkpoint stores (None: all; a LoRA run: the adapters)
    corpus: dict = None          # what it trains on: source, bytes, SHA-256 (a resume on other text is refused)
    tokens: int = 0              # trained on so far, and the seconds that took, across resumes (metrics.jsonl)
    elapsed: float = 0.0

    @property
    def tokens_per_step(self):
        return self.args.batch_size * self.args.grad_accum * self.config.block_size


def build_model(args, tokenizer, start):
    """The model configuration: the checkpoint's when resuming, the source's with --init-from (with --dropout and
    --ffn-dropout, the training settings of the model that may change), else the preset with the flags' overrides."""
    if start.resumed is not None or start.model is not None:
        config = GPTConfig.from_dict(start.record.config if start.record else start.model.config.to_dict())
        for key in ("dropout", "ffn_dropout"):
            if getattr(args, key) is not None:
                setattr(config, key, getattr(args, key))
        return config
    overrides = {k: getattr(args, k) for k in ["n_layer", "n_head", "n_embd", "ffn_hidden", "block_size", "dropout",
                                               "ffn_dropout", *ARCHITECTURE] if getattr(args, k) is not None}
    try:
        return preset_config(args.preset, vocab_size=tokenizer.vocab_size, **overrides)
    except ValueError as err:
        fail(f"--preset {args.preset} with these overrides: {err}")


def build_optimizer(args, model):
    """The optimizer over the parameters that train (with LoRA: only the adapters)."""
    params = [p for p in model.parameters() if p.requires_grad]
    if args.optimizer == "sgd":
        return optim.SGD(params, lr=args.lr, momentum=args.momentum)
    if args.optimizer == "adam":
        return optim.Adam(params, lr=args.lr, betas=(args.beta1, args.beta2))
    return optim.AdamW(model.optimizer_groups(args.weight_decay), lr=args.lr, betas=(args.beta1, args.beta2))


def start_lora(args, start, model):
    """A LoRA run (--lora-rank, also when resuming one): the frozen base's weights in `model` (a resumed run loads
    the base its checkpoint names, checked by digest), the adapters attached, and what its checkpoints record:
    (settings, base record, the names of the weights they store). (None, None, None) for any other run. With
    parse_args's flag checks and describe's report, the only code that knows about LoRA."""
    if not args.lora_rank:
        return None, None, None
    settings = {"rank": args.lora_rank, "alpha": args.lora_alpha or float(args.lora_rank),
                "targets": adapters.target_patterns(args.lora_targets or "attn"), "dropout": args.lora_dropout or 0.0}
    if start.record is not None:
        try:
            model.load_state_dict(load_lora_base(start.record.base).state_dict())
        except (CheckpointError, TypeError) as err:  # TypeError: no base recorded
            fail(f"--resume {args.resume}: {err}")
        base = start.record.base
    else:
        base = adapters.base_record(args.init_from, start.model)
    try:
        adapters.attach(model, settings)
    except ValueError as err:
        fail(f"--lora-rank {args.lora_rank} --lora-targets {args.lora_targets or 'attn'}: {err}")
    return settings, base, trainable_names(model)


RUN_FILES = ("last.npz", "best.npz", "last.safetensors", "best.safetensors", "metrics.jsonl")


def claim_out_dir(out_dir):
    """Make this process the run folder's owner: out_dir/.lock holds its process id, created only if absent. A
    lock whose process is gone (a run killed with -9), or is this one, is taken over; a live owner means another
    run is writing there, and this one stops before touching anything of it."""
    lock = out_dir / ".lock"
    for _ in range(3):
        try:
            with open(lock, "x") as f:
                f.write(str(os.getpid()))
            return lock
        except FileExistsError:
            owner = lock.read_text().strip() if lock.is_file() else ""
            if owner.isdigit() and int(owner) != os.getpid() and process_alive(int(owner)):
                fail(f"--out-dir {out_dir}: another run (process {owner}) is writing there; wait for it to end, "
                     "or choose another --out-dir")
            lock.unlink(missing_ok=True)
    fail(f"--out-dir {out_dir}: could not take {lock} (another run keeps taking it)")


def process_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    return True


def release_out_dir(out_dir):
    lock = Path(out_dir) / ".lock"
    if lock.is_file() and lock.read_text().strip() == str(os.getpid()):
        lock.unlink()


def prepare_out_dir(args, record):
    """The run's folder, writable, owned by this run (.lock), holding no other run (unless --overwrite), without
    stale temporary files. A resumed run keeps its metrics up to its checkpoint's step: rows written after it, by
    a run that was killed before its next checkpoint, are dropped, so the curve never zig-zags."""
    out_dir = Path(args.out_dir)
    if args.data and Path(args.data).is_dir() and out_dir.resolve().is_relative_to(Path(args.data).resolve()):
        fail(f"--out-dir {out_dir} is inside the --data folder {args.data}: the run's checkpoints and metrics would "
             "be read as corpus (by a resume, or the next run); choose an --out-dir outside it")
    # the folder the checkpoint was named in (a symbolic link to a checkpoint elsewhere resumes where the link is)
    resuming_here = record is not None and out_dir.resolve() in (Path(args.resume).parent.resolve(),
                                                                 Path(args.resume).resolve().parent)
    base = Path(args.init_from).resolve() if args.init_from and args.lora_rank else None
    if args.overwrite and base is not None and base in [(out_dir / name).resolve() for name in RUN_FILES]:
        fail(f"--init-from {args.init_from} is in --out-dir {out_dir}, whose run --overwrite would replace: a LoRA "
             "run's adapters need their base kept; choose another --out-dir (or copy the base out first)")
    if resuming_here and args.overwrite:
        fail(f"--overwrite: a resumed run continues in its own folder ({out_dir}) and replaces no other run; "
             "--overwrite replaces the run in a new run's --out-dir")
    if out_dir.exists() and not out_dir.is_dir():
        fail(f"--out-dir {out_dir} is a file, not a folder: choose a folder for the run's checkpoints and metrics")
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        claim_out_dir(out_dir)  # before anything in the folder is touched: its *.tmp may be a live run's
    except OSError as err:
        fail(f"--out-dir {out_dir}: cannot write there ({err.strerror or err})")
    for stale in out_dir.glob("*.tmp"):
        stale.unlink()
    present = [name for name in RUN_FILES if (out_dir / name).exists()]
    for name in present:
        if not (out_dir / name).is_file():
            fail(f"--out-dir {out_dir}: its {name} is not a regular file (a folder?), where a run keeps one: move "
                 "it away, or choose another --out-dir")
    if present and not resuming_here:
        if not args.overwrite:
            checkpoints = [name for name in present if not name.endswith(".jsonl")]
            resume = f"resume it with --resume {out_dir / checkpoints[0]}, " if checkpoints else ""
            fail(f"--out-dir {out_dir} already holds a run ({', '.join(present)}): {resume}choose another "
                 "--out-dir, or pass --overwrite to replace it")
        for name in present:
            (out_dir / name).unlink()
    if record is not None:
        history = Path(args.resume).resolve().parent / "metrics.jsonl"
        rows = [row for row in read_metrics(history) if row["step"] < record.step]
        rows += [record.metrics] if record.metrics else []
        write_metrics(out_dir / "metrics.jsonl", rows)
    return out_dir


def build_run(args, tokenizer, parts, device, start):
    """Model, optimizer and data for a new run (from --init-from's weights if given), or restored exactly from the
    checkpoint being resumed."""
    config = build_model(args, tokenizer, start)
    try:
        dataset = TokenDataset(parts[0], config.block_size, val_tokens=parts[1])
    except DataError as err:
        fail(f"{err}; use more text or a smaller --block-size" + (", or a larger --val-fraction"
                                                                   if "validation part" in str(err) else ""))
    tp.manual_seed(args.seed)
    model = GPT(config)
    if start.model is not None:
        model.load_state_dict(start.model.state_dict())
    lora, base, stored = start_lora(args, start, model)
    model.to(device)
    optimizer = build_optimizer(args, model)
    # resolved once and saved with the run, so that a resume keeps the same schedule
    args.min_lr = args.min_lr if args.min_lr is not None else args.lr / 10
    args.lr_decay_steps = args.lr_decay_steps or args.steps
    out_dir = prepare_out_dir(args, start.record)
    run = Run(args, config, tokenizer, dataset, model, optimizer, device, out_dir,
              batch_rng=np.random.default_rng(args.seed), lora=lora, base=base, stored=stored, corpus=start.corpus)
    if start.resumed is not None:
        record, weights, optimizer_state = start.record, start.resumed.weights, start.resumed.optimizer
        try:
            adapters.load_weights(model, weights, stored)
        except ValueError as err:  # CheckpointError is one
            fail(f"--resume {args.resume}: {err}")
        trained_with = (record.args or {}).get("optimizer")
        if optimizer_state is not None and trained_with == args.optimizer:
            # the moments are the checkpoint's; the settings (betas, decay, momentum) are today's flags
            optimizer.load_state_dict({**optimizer_state, "param_groups": optimizer.state_dict()["param_groups"]})
        else:
            print(f"--optimizer {args.optimizer}: the checkpoint was trained with {trained_with}; "
                  "the new optimizer starts with empty state")
        run.step, run.best_val = record.step, record.best_val_loss
        done = record.metrics or {}  # its batch size may differ from today's: the count goes on from its own
        run.tokens = done.get("tokens", record.step * run.tokens_per_step)
        run.elapsed = done.get("elapsed_s", 0.0)
        run.batch_rng.bit_generator.state = record.batch_rng
        tp_rng.set_state(record.rng)
    return run


def describe(run, source, sizes):
    """Print what will run: corpus, tokenizer, model, every setting in force."""
    args = run.args
    print(f"device {run.device} | corpus {source}: {sum(sizes):,} bytes | train {len(run.dataset.train):,} tokens, "
          f"val {len(run.dataset.val):,} | vocabulary {run.tokenizer.vocab_size}, "
          f"{sizes[0] / len(run.dataset.train):.2f} bytes per token")
    origin = f"from {args.init_from}" if args.init_from else args.preset
    print(f"model {origin}: {run.model.num_parameters():,} parameters | {json.dumps(run.config.to_dict())}")
    if run.lora is not None:
        trained = sum(p.numel() for p in run.model.parameters() if p.requires_grad)
        layers = sum(isinstance(m, nn.LoRALinear) for m in run.model.modules())
        print(f"LoRA: rank {run.lora['rank']} on {layers} layers: training {trained:,} of "
              f"{run.model.num_parameters():,} parameters ({100 * trained / run.model.num_parameters():.2f}%); the "
              f"base ({run.base['source']}) stays frozen and checkpoints hold only the adapters")
    print("training:", json.dumps(settings_in_force(args)))
    floor = max(args.warmup, args.lr_decay_steps)  # a warm-up that ends later climbs until then
    if run.step:
        print(f"resumed from {args.resume} at step {run.step} (best validation loss {run.best_val:.4f})")
        if args.schedule == "cosine" and args.steps > floor:
            print(f"the cosine schedule reaches its floor (--min-lr {args.min_lr:g}) at step {floor}: "
                  f"steps {max(run.step, floor)} to {args.steps} train at that rate "
                  "(--lr-decay-steps sets where the floor is reached)")
    if args.schedule == "cosine" and args.warmup > args.steps:
        print(f"--warmup {args.warmup} outlasts this run of {args.steps} steps: the learning rate rises to "
              f"{learning_rate(args, args.steps - 1):.3g} at its last step and never reaches --lr {args.lr:g} (a "
              "--warmup below --steps reaches it)")


def learning_rate(args, step):
    """Linear warm-up, then cosine decay to --min-lr at --lr-decay-steps (or constant)."""
    if args.schedule == "constant":
        return args.lr
    return optim.cosine_lr(step, args.lr, args.warmup, args.lr_decay_steps, args.min_lr)


def get_batch(run, split, rng):
    x, y = run.dataset.batch(split, run.args.batch_size, rng)
    return tp.tensor(x, device=run.device), tp.tensor(y, device=run.device)


def estimate_loss(run):
    """Mean loss over --eval-batches fixed batches of each split (the same batches at every evaluation)."""
    run.model.eval()
    losses = {}
    with tp.no_grad():
        for split in ("train", "val"):
            eval_rng = np.random.default_rng(run.args.seed + 1)
            losses[split] = float(np.mean([run.model(*get_batch(run, split, eval_rng))[1].item()
                                           for _ in range(run.args.eval_batches)]))
    run.model.train()
    return losses


def sample(run):
    """--sample-tokens of text from the first validation token, the same draws at every evaluation."""
    start = run.dataset.val[:1][None, :]
    ids = run.model.generate(start, run.args.sample_tokens, temperature=0.8, top_k=40,
                             rng=np.random.default_rng(run.args.seed + 2))
    return run.tokenizer.decode(ids[0])


def trainable_names(model):
    return {name for name, p in model.named_parameters() if p.requires_grad}


def checkpoint_path(run, name):
    return run.out_dir / f"{name}.{run.args.format}"


def save(run, name, metrics_row=None):
    """out_dir/name.npz (or .safetensors): weights, optimizer moments, step, RNG states and settings (everything a
    resume needs), and the metrics row of the evaluation that wrote it (a resume repairs metrics.jsonl from it)."""
    args = {k: v for k, v in vars(run.args).items() if k not in NOT_SAVED}
    if args.get("data"):  # a resume from another folder reads the same corpus
        args["data"] = os.path.abspath(args["data"])
    record = RunRecord(config=run.config.to_dict(), tokenizer=run.tokenizer.to_dict(), step=run.step,
                       best_val_loss=run.best_val, args=args,
                       rng=tp_rng.get_state(), batch_rng=run.batch_rng.bit_generator.state, metrics=metrics_row,
                       lora=run.lora, base=run.base, corpus=run.corpus)
    return save_checkpoint(checkpoint_path(run, name), run.model, run.optimizer, parameters=run.stored,
                           **record.as_meta())


class Diverged(Exception):
    """The loss or the gradients became NaN or Inf; the weights were not updated."""


def train_step(run, lr):
    """One optimizer step: --grad-accum micro-batches forward and backward, clip, update. Returns the last
    micro-batch's loss as a float. The device is read once: every micro-batch's loss and the gradient norm (computed
    once: clipping returns it) in one transfer; a non-finite one raises Diverged before the weights change."""
    for group in run.optimizer.param_groups:
        group["lr"] = lr
    micro_batches = []
    for _ in range(run.args.grad_accum):
        rng_state = tp_rng.get_state()  # to replay this micro-batch under detect_anomaly() if it diverges
        x, y = get_batch(run, "train", run.batch_rng)
        _, loss = run.model(x, y)
        (loss / run.args.grad_accum if run.args.grad_accum > 1 else loss).backward()
        micro_batches.append((x, y, rng_state, loss))
    params = run.model.parameters()
    norm = optim.clip_grad_norm_(params, run.args.grad_clip) if run.args.grad_clip > 0 else optim.grad_norm(params)
    on_device = [micro_loss.data for *_, micro_loss in micro_batches] + [norm.data]
    *losses, norm_value = loss.xp.stack(on_device).tolist()  # the step's one read of the device
    for (x, y, rng_state, _), value in zip(micro_batches, losses):
        if not math.isfinite(value):
            run.optimizer.zero_grad()
            raise Diverged(x, y, rng_state, value, math.nan)
    if not math.isfinite(norm_value):  # the gradients (not the loss) became NaN/Inf
        run.optimizer.zero_grad()
        raise Diverged(x, y, rng_state, losses[-1], norm_value)
    run.optimizer.step()
    run.optimizer.zero_grad()
    run.step += 1
    return losses[-1]


def report_divergence(run, diverged):
    """Replay the failing micro-batch under detect_anomaly() to name the op that first made a NaN/Inf, then stop
    with one line (status 1). The checkpoints on disk are the last good ones."""
    x, y, rng_state, loss, norm = diverged.args
    tp_rng.set_state(rng_state)
    culprit = "no op produced it again when replayed"
    try:
        with tp.detect_anomaly():
            run.model(x, y)[1].backward()
    except tp.AnomalyError as err:
        culprit = str(err).split("; the op was created at")[0]
    run.optimizer.zero_grad()
    saved = checkpoint_path(run, "last")
    kept = f"the last good checkpoint is {saved}" if saved.exists() else "no checkpoint was saved yet"
    fail(f"training diverged at step {run.step + 1} (loss {loss}, gradient norm {norm}): {culprit}; {kept}. "
         "Lower --lr, or clip gradients with --grad-clip 1.0", status=1)


def evaluate_and_save(run, lr, metrics, started):
    """Losses on both splits, best.npz on a new best, last.npz, then a row in metrics.jsonl, in that order: a kill
    between them leaves no metrics row that last.npz does not hold (a resume writes a missing one back)."""
    losses = estimate_loss(run)
    improved = losses["val"] < run.best_val
    run.best_val = min(run.best_val, losses["val"])
    # validation loss per byte of text (bits), comparable across tokenizers: nats/token × tokens/byte ÷ ln 2
    val_bpb = losses["val"] * len(run.dataset.val) / run.val_bytes / math.log(2)
    row = {"step": run.step, "train_loss": losses["train"], "val_loss": losses["val"], "val_bpb": val_bpb, "lr": lr,
           "elapsed_s": round(run.elapsed + time.time() - started, 2), "tokens": run.tokens}
    try:
        if improved:
            save(run, "best", row)
        save(run, "last", row)
        metrics.write(json.dumps(row) + "\n")
        metrics.flush()
    except OSError as err:  # a full disk: the files saved before are whole (each written, then renamed)
        err.filename = err.filename or str(run.out_dir / "metrics.jsonl")  # written through an open handle
        raise WriteFailed(err) from None
    tqdm.write(f"step {run.step}: train loss {losses['train']:.4f}, val loss {losses['val']:.4f} "
               f"({val_bpb:.3f} bits per byte){' (best)' if improved else ''}")
    if run.args.sample_tokens:
        tqdm.write("----\n" + sample(run) + "\n----")


class WriteFailed(Exception):
    """A checkpoint or the metrics row of an evaluation could not be written (args[0]: the OSError)."""


def report_write_failure(run, err):
    """A checkpoint or metrics row could not be written: one line saying what, what is kept, and how to go on."""
    last = checkpoint_path(run, "last")
    remedy = "make room" if err.errno in RAN_OUT else "make the folder writable"
    kept = (f"the checkpoints saved before are whole; {remedy} and resume with --resume {last}" if last.is_file()
            else "no checkpoint was saved yet")
    fail(f"could not write {err.filename} at step {run.step} ({err.strerror or err}): {kept}",
         status=1 if err.errno in RAN_OUT else 2)


class StopRequest:
    """The first Ctrl-C or SIGTERM (a notebook's stop button, `timeout`, a cluster scheduler) asks the loop to
    finish its step, save and stop; a second one stops at once, keeping the checkpoint last saved."""

    def __init__(self, last):
        self.requested, self.last = False, last

    def __call__(self, signum, frame):
        if self.requested:
            saved = f"the last saved checkpoint is {self.last}" if Path(self.last).exists() else \
                "no checkpoint was saved yet (the first is written at the first evaluation)"
            print(f"\nstopped at once; {saved}", file=sys.stderr)
            raise SystemExit(130)
        self.requested = True
        tqdm.write(f"interrupted: saving a checkpoint after this step ({signal.Signals(signum).name}; "
                   "again to stop at once)")


def train(run):
    """The loop: step, log every --log-interval, evaluate and save every --eval-interval, stop on request."""
    args = run.args
    stop = StopRequest(checkpoint_path(run, "last"))
    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    tokens_per_step = run.tokens_per_step
    metrics = open(run.out_dir / "metrics.jsonl", "a")
    bar = tqdm(total=args.steps, initial=run.step, desc="train", unit="step", dynamic_ncols=True)
    started = step_time = time.time()
    try:
        while run.step < args.steps:
            lr = learning_rate(args, run.step)
            try:
                loss = train_step(run, lr)
                run.tokens += tokens_per_step
            except Diverged as diverged:
                bar.close()
                report_divergence(run, diverged)
            if run.step % args.log_interval == 0 or run.step == args.steps:
                done = args.log_interval if run.step % args.log_interval == 0 else run.step % args.log_interval
                bar.set_postfix(loss=f"{loss:.4f}", lr=f"{lr:.2e}",
                                tok_s=f"{tokens_per_step * done / (time.time() - step_time):,.0f}")
                step_time = time.time()
            bar.update(1)
            if args.time_limit and time.time() - started >= 60 * args.time_limit and not stop.requested:
                tqdm.write(f"--time-limit {args.time_limit:g} minutes reached")
                stop.requested = True
            if run.step % args.eval_interval == 0 or run.step == args.steps or stop.requested:
                try:
                    evaluate_and_save(run, lr, metrics, started)
                except WriteFailed as failed:
                    bar.close()
                    report_write_failure(run, failed.args[0])
                step_time = time.time()
            if stop.requested:
                tqdm.write(f"saved {checkpoint_path(run, 'last')} at step {run.step}; "
                           f"resume with --resume {checkpoint_path(run, 'last')}")
                break
    finally:
        bar.close()
        metrics.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return run.best_val


@console
def main(argv=None):
    if argv is None and not isinstance(sys.stdout, OutputOrNothing):
        sys.stdout = OutputOrNothing(sys.stdout)  # a script run: a closed pipe must not end the training
    args, start = parse_args(sys.argv[1:] if argv is None else argv)
    tp.device.reuse_host_memory()  # the same temporaries every step: keep their pages (about 10% on a CPU step)
    device = pick_device(args.device)
    source, tokenizer, parts, sizes = load_data(args, start)
    run = build_run(args, tokenizer, parts, device, start)
    run.val_bytes = sizes[1]
    describe(run, source, sizes)
    try:
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):  # a NaN/Inf is caught by train_step
            return train(run)
    finally:
        release_out_dir(run.out_dir)


if __name__ == "__main__":
    main()
