"""Train a GPT on text.

    python train.py                                  # the default model on Shakespeare, on the CPU
    python train.py --device gpu                     # the same through CuPy on a GPU
    python train.py --preset proust --data my_book.txt --steps 5000
    python train.py --resume out/last.npz --steps 8000   # continue a run exactly where it stopped

Every --eval-interval steps: train and validation loss, a text sample, a row in out/metrics.jsonl, and the
checkpoints out/last.npz (always) and out/best.npz (on a new best validation loss). Ctrl-C saves and exits.
"""
import argparse
import json
import math
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

import tinygrad_proust as tp
from models.corpus import DataError, NotUTF8Error, TokenDataset, decode_utf8, default_corpus, read_corpus
from models.gpt import GPT, PRESETS, GPTConfig, preset_config
from models.tokenizer import ByteTokenizer, CharTokenizer, tokenizer_from_dict
from tinygrad_proust import optim, rng as tp_rng
from tinygrad_proust.checkpoint import CheckpointError, load_checkpoint, save_checkpoint


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    g = p.add_argument_group("model")
    g.add_argument("--preset", default="char-small", choices=sorted(PRESETS), help="architecture (default: %(default)s)")
    g.add_argument("--n-layer", type=int, help="override the preset's number of blocks")
    g.add_argument("--n-head", type=int, help="override the number of attention heads")
    g.add_argument("--n-embd", type=int, help="override the model width")
    g.add_argument("--ffn-hidden", type=int, help="override the feed-forward width")
    g.add_argument("--block-size", type=int, help="context length (default: the preset's)")
    g.add_argument("--dropout", type=float, help="override the preset's dropout")
    g = p.add_argument_group("data")
    g.add_argument("--data", help="a UTF-8 text file or a folder of them (default: Shakespeare, fetched once)")
    g.add_argument("--tokenizer", default="char", choices=["char", "byte"])
    g.add_argument("--chars", help="char tokenizer: only these characters form the vocabulary; the corpus's other "
                                   "characters are dropped, or replaced by --replace-unknown")
    g.add_argument("--replace-unknown", metavar="CHAR", help="with --chars: put CHAR in place of other characters")
    g.add_argument("--val-fraction", type=float, default=0.1, help="the end of the corpus kept for validation")
    g = p.add_argument_group("optimisation")
    g.add_argument("--batch-size", type=int, default=32)
    g.add_argument("--grad-accum", type=int, default=1, help="micro-batches per optimizer step")
    g.add_argument("--steps", type=int, default=2500, help="optimizer steps in all")
    g.add_argument("--optimizer", default="adamw", choices=["adamw", "adam", "sgd"])
    g.add_argument("--lr", type=float, default=3e-3, help="peak learning rate")
    g.add_argument("--min-lr", type=float, help="floor of the cosine decay (default: lr / 10)")
    g.add_argument("--warmup", type=int, default=100, help="linear warm-up steps")
    g.add_argument("--schedule", default="cosine", choices=["cosine", "constant"])
    g.add_argument("--lr-decay-steps", type=int,
                   help="step at which the cosine reaches the floor (default: --steps of the first run)")
    g.add_argument("--weight-decay", type=float, default=0.1, help="AdamW decay of the weight matrices")
    g.add_argument("--beta1", type=float, default=0.9)
    g.add_argument("--beta2", type=float, default=0.99)
    g.add_argument("--momentum", type=float, default=0.0, help="SGD momentum")
    g.add_argument("--grad-clip", type=float, default=1.0, help="max global gradient norm (0: no clipping)")
    g = p.add_argument_group("evaluation, logging, checkpoints")
    g.add_argument("--eval-interval", type=int, default=250)
    g.add_argument("--eval-batches", type=int, default=20)
    g.add_argument("--sample-tokens", type=int, default=200, help="length of the sample printed at each evaluation")
    g.add_argument("--log-interval", type=int, default=10, help="steps between progress-bar updates (reads the loss)")
    g.add_argument("--out-dir", default="out")
    g.add_argument("--resume", metavar="CHECKPOINT", help="continue from a checkpoint (its settings, unless overridden)")
    g = p.add_argument_group("system")
    g.add_argument("--device", default="cpu", choices=["cpu", "gpu", "cuda", "auto"])
    g.add_argument("--seed", type=int, default=1337)
    args = p.parse_args(argv)
    args.explicit = {a[2:].split("=")[0].replace("-", "_") for a in argv if a.startswith("--")}
    return args


def fail(message):
    """Bad input ends the run with one clear line, not a traceback."""
    print(f"error: {message}", file=sys.stderr)
    sys.exit(2)


# ------------------------------------------------------------------------------------------------
# the phases of a run, in the order main() calls them
# ------------------------------------------------------------------------------------------------

def load_resume_checkpoint(args):
    """With --resume: the checkpoint (meta, weights, optimizer state), its saved settings applied to args
    except those given on the command line now. Without: None."""
    if not args.resume:
        return None
    try:
        checkpoint = load_checkpoint(args.resume)
    except CheckpointError as err:
        fail(err)
    for key, value in checkpoint[0]["args"].items():
        if key not in args.explicit and key not in ("resume", "explicit"):
            setattr(args, key, value)
    return checkpoint


def pick_device(name):
    """'cpu' or 'gpu'; 'auto' takes the GPU when CuPy sees one. A GPU that cannot be used is one clear line."""
    if name == "auto":
        name = "gpu" if tp.gpu_available() else "cpu"
    try:
        tp.zeros(1, device=name)
    except tp.DeviceError as err:
        fail(err)
    return "gpu" if name in ("gpu", "cuda") else "cpu"


def load_data(args, checkpoint):
    """(where the text came from, its size in bytes, the tokenizer, the corpus as token ids). The tokenizer is
    the checkpoint's when resuming, else built from the corpus as --tokenizer/--chars say."""
    try:
        if args.data:
            source, raw = args.data, read_corpus(args.data)
        else:
            path = default_corpus(log=lambda m: print(m, flush=True))
            source, raw = str(path), path.read_bytes()
    except DataError as err:
        fail(f"--data {args.data}: {err}" if args.data else
             f"{err}; pass --data PATH to train on your own UTF-8 text")
    try:
        if checkpoint is not None:
            tokenizer = tokenizer_from_dict(checkpoint[0]["tokenizer"])
        elif args.tokenizer == "byte":
            tokenizer = ByteTokenizer()
        else:
            tokenizer = CharTokenizer.from_text(decode_utf8(raw, source), allowed=args.chars,
                                                unknown="replace" if args.replace_unknown else "drop",
                                                replacement=args.replace_unknown)
        tokens = tokenizer.encode_corpus(raw, source)
    except NotUTF8Error as err:
        fail(f"{err} (--tokenizer byte reads any bytes)")
    except DataError as err:
        fail(err)
    return source, len(raw), tokenizer, tokens


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


def build_model(args, tokenizer, checkpoint):
    """The model configuration: the checkpoint's when resuming, else the preset with the flags' overrides."""
    if checkpoint is not None:
        return GPTConfig.from_dict(checkpoint[0]["config"])
    overrides = {k: getattr(args, k) for k in ("n_layer", "n_head", "n_embd", "ffn_hidden", "block_size", "dropout")
                 if getattr(args, k) is not None}
    try:
        return preset_config(args.preset, vocab_size=tokenizer.vocab_size, **overrides)
    except ValueError as err:
        fail(err)


def build_optimizer(args, model):
    if args.optimizer == "sgd":
        return optim.SGD(model.parameters(), lr=args.lr, momentum=args.momentum)
    if args.optimizer == "adam":
        return optim.Adam(model.parameters(), lr=args.lr, betas=(args.beta1, args.beta2))
    return optim.AdamW(model.parameters(), lr=args.lr, betas=(args.beta1, args.beta2), weight_decay=args.weight_decay)


def build_run(args, tokenizer, tokens, device, checkpoint):
    """Model, optimizer and data for a new run, or restored exactly from the checkpoint being resumed."""
    config = build_model(args, tokenizer, checkpoint)
    try:
        dataset = TokenDataset(tokens, config.block_size, args.val_fraction)
    except DataError as err:
        fail(f"{err}; use more text or a smaller --block-size")
    tp.manual_seed(args.seed)
    model = GPT(config).to(device)
    optimizer = build_optimizer(args, model)
    # resolved once and saved with the run, so that a resume keeps the same schedule
    args.min_lr = args.min_lr if args.min_lr is not None else args.lr / 10
    args.lr_decay_steps = args.lr_decay_steps or args.steps
    run = Run(args, config, tokenizer, dataset, model, optimizer, device, Path(args.out_dir),
              batch_rng=np.random.default_rng(args.seed))
    if checkpoint is not None:
        meta, weights, optimizer_state = checkpoint
        model.load_state_dict(weights)
        if optimizer_state is not None:
            optimizer.load_state_dict(optimizer_state)
        run.step, run.best_val = meta["step"], meta["best_val_loss"]
        run.batch_rng.bit_generator.state = meta["batch_rng"]
        tp_rng.set_state(meta["rng"])
    run.out_dir.mkdir(parents=True, exist_ok=True)
    return run


def describe(run, source, n_bytes):
    """Print what will run: corpus, model, every setting."""
    print(f"device {run.device} | corpus {source}: {n_bytes:,} bytes, vocabulary {run.tokenizer.vocab_size} | "
          f"train {len(run.dataset.train):,} tokens, val {len(run.dataset.val):,}")
    print(f"model {run.args.preset}: {run.model.num_parameters():,} parameters | {json.dumps(run.config.to_dict())}")
    print("training:", json.dumps({k: v for k, v in vars(run.args).items() if k != "explicit"}))
    if run.step:
        print(f"resumed from {run.args.resume} at step {run.step} (best validation loss {run.best_val:.4f})")


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


def save(run, name):
    """out_dir/name.npz: weights, optimizer moments, step, RNG states and settings (everything a resume needs)."""
    return save_checkpoint(run.out_dir / f"{name}.npz", run.model, run.optimizer, step=run.step,
                           best_val_loss=run.best_val, config=run.config.to_dict(), tokenizer=run.tokenizer.to_dict(),
                           args={k: v for k, v in vars(run.args).items() if k not in ("explicit", "resume")},
                           rng=tp_rng.get_state(), batch_rng=run.batch_rng.bit_generator.state)


def train_step(run, lr):
    """One optimizer step: --grad-accum micro-batches forward and backward, clip, update. Returns the last loss."""
    for group in run.optimizer.param_groups:
        group["lr"] = lr
    for _ in range(run.args.grad_accum):
        x, y = get_batch(run, "train", run.batch_rng)
        _, loss = run.model(x, y)
        (loss / run.args.grad_accum if run.args.grad_accum > 1 else loss).backward()
    if run.args.grad_clip > 0:
        optim.clip_grad_norm_(run.model.parameters(), run.args.grad_clip)
    run.optimizer.step()
    run.optimizer.zero_grad()
    run.step += 1
    return loss


def evaluate_and_save(run, lr, metrics, started):
    """Losses on both splits, a row in metrics.jsonl, last.npz (and best.npz on a new best), a sample."""
    losses = estimate_loss(run)
    improved = losses["val"] < run.best_val
    run.best_val = min(run.best_val, losses["val"])
    tokens_per_step = run.args.batch_size * run.args.grad_accum * run.config.block_size
    row = {"step": run.step, "train_loss": losses["train"], "val_loss": losses["val"], "lr": lr,
           "elapsed_s": round(time.time() - started, 2), "tokens": run.step * tokens_per_step}
    metrics.write(json.dumps(row) + "\n")
    metrics.flush()
    save(run, "last")
    if improved:
        save(run, "best")
    tqdm.write(f"step {run.step}: train loss {losses['train']:.4f}, val loss {losses['val']:.4f}"
               f"{' (best)' if improved else ''}")
    if run.args.sample_tokens:
        tqdm.write("----\n" + sample(run) + "\n----")


class StopRequest:
    """The first Ctrl-C asks the loop to finish its step, save and stop; a second one stops at once."""

    def __init__(self):
        self.requested = False

    def __call__(self, signum, frame):
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        tqdm.write("interrupted: saving a checkpoint after this step (Ctrl-C again to stop at once)")


def train(run):
    """The loop: step, log every --log-interval, evaluate and save every --eval-interval, stop on Ctrl-C."""
    args = run.args
    stop = StopRequest()
    previous_handler = signal.signal(signal.SIGINT, stop)
    tokens_per_step = args.batch_size * args.grad_accum * run.config.block_size
    metrics = open(run.out_dir / "metrics.jsonl", "a")
    bar = tqdm(total=args.steps, initial=run.step, desc="train", unit="step", dynamic_ncols=True)
    started = step_time = time.time()
    try:
        while run.step < args.steps:
            lr = learning_rate(args, run.step)
            loss = train_step(run, lr)
            if run.step % args.log_interval == 0 or run.step == args.steps:
                done = args.log_interval if run.step % args.log_interval == 0 else run.step % args.log_interval
                bar.set_postfix(loss=f"{loss.item():.4f}", lr=f"{lr:.2e}",
                                tok_s=f"{tokens_per_step * done / (time.time() - step_time):,.0f}")
                step_time = time.time()
            bar.update(1)
            if run.step % args.eval_interval == 0 or run.step == args.steps or stop.requested:
                evaluate_and_save(run, lr, metrics, started)
                step_time = time.time()
            if stop.requested:
                tqdm.write(f"saved {run.out_dir / 'last.npz'} at step {run.step}; "
                           f"resume with --resume {run.out_dir / 'last.npz'}")
                break
    finally:
        bar.close()
        metrics.close()
        signal.signal(signal.SIGINT, previous_handler)
    return run.best_val


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    checkpoint = load_resume_checkpoint(args)
    device = pick_device(args.device)
    source, n_bytes, tokenizer, tokens = load_data(args, checkpoint)
    run = build_run(args, tokenizer, tokens, device, checkpoint)
    describe(run, source, n_bytes)
    return train(run)


if __name__ == "__main__":
    main()
