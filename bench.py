"""Race tinygrad_proust against PyTorch on the same model, batch and machine, in one process.

    python bench.py                      # training steps, default CPU cases, plus the numerical-gradient step
    python bench.py --device gpu         # the GPU cases (needs CuPy; PyTorch with CUDA for its side)
    python3 gpu_smoke.py                 # on a machine with a GPU: the GPU tests, a training run, these tables
    python bench.py --generate           # generation speed with and without the KV cache
    python bench.py --train-race         # nanoGPT's CPU recipe end to end: train.py against the PyTorch twin
    python bench.py --cases proust:32x256 byte-gpt:64x128
    python bench.py --count --by-op      # what a GPU training step asks of the device, by phase and by op

A training step is forward, loss, backward, gradient clipping (1.0) and AdamW, in float32 on both sides, with
each preset's own dropout. PyTorch runs the same model twice: with its fused scaled_dot_product_attention (SDPA,
nanoGPT's setup and the default reference) and with eager attention (one op per step, as ours is written). All
three alternate step by step on the same batches after warm-up, each step after a short idle pause (so neither
framework's spinning threads slow the other's step); the table shows medians.
Benchmarks are not tests: nothing here asserts a speed.
"""
# The experiments live in benchmarks/, one module each. That package comes first: importing it sets
# OPENBLAS_THREAD_TIMEOUT (benchmarks/__init__.py), which OpenBLAS reads only when NumPy loads.
import argparse
import math

from benchmarks.bpe import bpe_speed
from benchmarks.common import parse_case, torch_device_for
from benchmarks.counts import launch_counts
from benchmarks.finetune import finetune
from benchmarks.generation import generation_table
from benchmarks.hf_generate import hf_generation_race
from benchmarks.steps import machine, step_table
from benchmarks.tokenizer_race import tokenizer_race
from benchmarks.train_race import train_race
from models.cli import Parser, chosen_mode, console, fail
from models.gpt import PRESETS
import tinygrad_proust as tp


def case(text):
    """A --cases entry, checked as it is read: a named case, or a preset and a batch and block size in range."""
    try:
        preset, _, batch, block = parse_case(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected preset:BATCHxBLOCK, e.g. proust:8x256") from None
    if preset not in PRESETS:
        raise argparse.ArgumentTypeError(f"{text!r}: no preset {preset!r} (one of {', '.join(PRESETS)})")
    if not (1 <= batch <= 4096 and 1 <= block <= 8192):
        raise argparse.ArgumentTypeError(f"{text!r}: the batch must be 1 to 4096 and the block 1 to 8192")
    return text


def build_parser():
    p = Parser(description=__doc__)
    p.add_argument("--device", default="cpu", choices=["cpu", "gpu"])
    p.add_argument("--cases", nargs="*", type=case, help="preset:BATCHxBLOCK, e.g. proust:8x256")
    p.add_argument("--steps", type=int, default=20, help="timed steps per framework and case")
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--generate", action="store_true", help="measure generation with and without the KV cache")
    p.add_argument("--new-tokens", type=int, default=500)
    p.add_argument("--no-numerical", action="store_true", help="skip the numerical-gradient comparison (CPU)")
    p.add_argument("--no-reuse-memory", action="store_true",
                   help="leave glibc's allocator as it is (the 'before' of tinygrad_proust.device.reuse_host_memory)")
    p.add_argument("--hf-generate", action="store_true",
                   help="generation against Hugging Face Transformers' generate on the same exported model")
    p.add_argument("--bpe", action="store_true", help="BPE training and encoding speed on the default corpus")
    p.add_argument("--finetune", nargs=2, type=float, metavar=("PRETRAIN_MINUTES", "STEPS"),
                   help="pre-train on the plays, adapt to the Sonnets (none, LoRA 4/8/16, full), then int8/int4")
    p.add_argument("--lora-targets", default="attn", help="--finetune: the layers LoRA adapts (default: attn)")
    p.add_argument("--tokenizer-race", type=float, metavar="MINUTES",
                   help="train the default model for MINUTES with each tokenizer (char, byte, BPE 512, BPE 2048) "
                        "and compare validation bits per byte")
    p.add_argument("--train-race", action="store_true",
                   help="nanoGPT's CPU recipe end to end: train.py against the PyTorch twin's training loop")
    p.add_argument("--train-steps", type=int, help="--train-race: fewer steps than the recipe's 2000")
    p.add_argument("--count", action="store_true",
                   help="kernels, bytes and syncs of a GPU training step per phase, counted through the CuPy stand-in "
                        "(no GPU needed; --cases to choose); with --device gpu, kernels counted on the real GPU "
                        "(through PyTorch's profiler), ours against PyTorch's")
    p.add_argument("--by-op", action="store_true",
                   help="--count: also by the op (forward or backward) that launched each kernel")
    return p


# each experiment (named by its option; the default, the training-step race, by "default") and the options it reads
EXPERIMENTS = {"default": {"device", "cases", "steps", "warmup", "no_numerical", "no_reuse_memory"},
               "count": {"device", "cases", "by_op"},
               "generate": {"device", "new_tokens", "no_reuse_memory"},
               "hf_generate": {"new_tokens", "no_reuse_memory"},
               "bpe": {"no_reuse_memory"},
               "train_race": {"train_steps", "no_reuse_memory"},
               "finetune": {"lora_targets", "no_reuse_memory"},
               "tokenizer_race": {"no_reuse_memory"}}


@console
def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    experiment = chosen_experiment(parser, argv, args)
    if args.device == "gpu" and not tp.gpu_available():
        fail("--device gpu: no GPU here (CuPy with a CUDA device is needed); the counts through the stand-in need "
             "no GPU: python bench.py --count")
    if experiment == "count":
        return launch_counts(args.cases, args.device, args.by_op)
    if not args.no_reuse_memory:
        tp.device.reuse_host_memory()  # as train.py does; the whole process, so PyTorch's side gets it too
    print(f"machine: {machine(args.device)}\n")
    if torch_device_for(args.device) is None:
        print("PyTorch here has no CUDA: its columns are n/a\n")
    run = {"bpe": lambda: bpe_speed(),
           "train_race": lambda: train_race(args.train_steps),
           "finetune": lambda: finetune(args.finetune[0], int(args.finetune[1]), args.lora_targets),
           "hf_generate": lambda: hf_generation_race(args.new_tokens),
           "tokenizer_race": lambda: tokenizer_race(args.tokenizer_race),
           "generate": lambda: generation_table(args.new_tokens, args.device),
           "default": lambda: step_table(args.device, args.cases, args.steps, args.warmup, not args.no_numerical)}
    run[experiment]()


def chosen_experiment(parser, argv, args):
    """The one experiment the options name (the training-step race when none does): see models.cli.chosen_mode;
    and counts that make sense."""
    experiment = chosen_mode(parser, argv, EXPERIMENTS, "the training-step race", kind="experiment")
    flag = lambda name: "--" + name.replace("_", "-")
    for name, value, least in (("steps", args.steps, 1), ("warmup", args.warmup, 0), ("new_tokens", args.new_tokens, 1),
                               ("train_steps", args.train_steps, 1), ("tokenizer_race", args.tokenizer_race, 1e-9),
                               ("finetune", min(args.finetune or [1]), 1e-9)):
        if value is not None and value < least:
            parser.error(f"{flag(name)} must be {'at least 0' if least == 0 else 'positive'}, got {value:g}")
    if args.finetune and not (math.isfinite(args.finetune[1]) and args.finetune[1] == int(args.finetune[1]) >= 4):
        parser.error(f"--finetune: STEPS must be a whole number, at least 4, got {args.finetune[1]:g}")
    if args.by_op and args.device == "gpu":
        parser.error("--by-op counts through the stand-in: leave out --device gpu (the GPU count is kernels only)")
    if args.no_numerical and args.device == "gpu":
        parser.error("--no-numerical: the numerical-gradient step runs only with --device cpu")
    return experiment


if __name__ == "__main__":
    main()
