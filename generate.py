"""Write with a trained GPT: load a checkpoint, give a prompt, watch the text appear token by token.

    python generate.py --prompt "To be"                      # newest out/**/best.npz, 500 tokens
    python generate.py --checkpoint out/best.npz --prompt "ROMEO." --temperature 0.8 --top-k 40
    python generate.py --prompt "The" --greedy               # always the most likely next token

The checkpoint carries the model configuration and the tokenizer: no corpus is needed.
From Python: model, tokenizer, _ = models.loading.load_model(path); model.generate(ids, 100, temperature=0.8, top_k=40)
A closed pipe (`python generate.py | head`) ends it quietly.
"""
import sys
import time
from pathlib import Path

import numpy as np

from models.cli import (Parser, console, fail, given_flags, integer, load_model_and_prompt, non_empty, pick_device,
                        real)


def parse_args(argv):
    p = Parser(description=__doc__)
    p.add_argument("--checkpoint", type=non_empty, help="a checkpoint written by train.py (default: the newest "
                                                        "best.npz or best.safetensors under --out-dir)")
    p.add_argument("--out-dir", default="out", type=non_empty,
                   help="where train.py wrote its checkpoints (default: %(default)s)")
    p.add_argument("--prompt", default="", help="text to continue (empty: start from a newline, or from the "
                                                "vocabulary's first token when it has no newline)")
    p.add_argument("--max-new-tokens", type=integer(0, 10**7), default=500)
    p.add_argument("--temperature", type=real(0, 1e6), default=0.8, help="0 is greedy; higher is more random")
    p.add_argument("--top-k", type=integer(0, 10**9), default=40, help="sample among the k most likely tokens (0: all)")
    p.add_argument("--top-p", type=real(0, 1, low_open=True), default=None,
                   help="sample among the most likely tokens covering p (the most likely one is always kept)")
    p.add_argument("--greedy", action="store_true", help="always take the most likely token (temperature 0)")
    p.add_argument("--num-samples", type=integer(1, 10**6), default=1)
    p.add_argument("--seed", type=integer(0, 2**32 - 1), default=None)
    p.add_argument("--device", default="cpu", choices=["cpu", "gpu", "cuda", "auto"])
    p.add_argument("--drop-unknown", action="store_true", help="drop prompt characters outside the vocabulary")
    p.add_argument("--no-cache", action="store_true", help="recompute the whole context for every token")
    args = p.parse_args(argv)
    refuse_unused_options(p, args, given_flags(p, argv))
    return args


def refuse_unused_options(parser, args, given):
    """No option that this run would not read: greedy decoding samples nothing, and --checkpoint looks for
    nothing under --out-dir."""
    if "checkpoint" in given and "out_dir" in given:
        parser.error("--out-dir is where a checkpoint is looked for without --checkpoint: give one of them")
    if args.greedy and "temperature" in given:
        parser.error("--temperature: --greedy is temperature 0; give one of them")
    if args.greedy or args.temperature == 0:
        mode = "--greedy" if args.greedy else "--temperature 0"
        unused = [f"--{name.replace('_', '-')}" for name in ("top_k", "top_p", "seed") if name in given]
        if unused:
            parser.error(f"{', '.join(unused)} {'does' if len(unused) == 1 else 'do'} not apply to greedy decoding "
                         f"({mode}): it always takes the most likely token")
        if args.num_samples > 1:
            parser.error(f"--num-samples {args.num_samples}: greedy decoding ({mode}) writes the same text every "
                         "time; sample with a temperature above 0")


def find_checkpoint(out_dir):
    """The most recently written best.npz (or best.safetensors) under out_dir, or None."""
    found = sorted((p for name in ("best.npz", "best.safetensors") for p in Path(out_dir).rglob(name)),
                   key=lambda p: p.stat().st_mtime) if Path(out_dir).is_dir() else []
    return found[-1] if found else None


def write_stream(token_ids, tokenizer, out):
    """Write each token's text to `out` as soon as it exists, flushing every time (whole characters only)."""
    decoder = tokenizer.stream_decoder()
    count = 0
    for token in token_ids:
        text = decoder.push(token)
        if text:
            out.write(text)
            out.flush()
        count += 1
    out.write(decoder.finish())
    return count


@console
def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    path = args.checkpoint
    if path is None:
        path = find_checkpoint(args.out_dir)
        if path is None:
            fail(f"no checkpoint given and none found under {args.out_dir}/: train one with `python train.py` "
                 "(or pass --checkpoint PATH)")
        print(f"using {path}", file=sys.stderr)
    device = pick_device(args.device)
    model, tokenizer, prompt_ids = load_model_and_prompt(path, args.prompt, args.drop_unknown, device)
    temperature = 0.0 if args.greedy else args.temperature
    rng = np.random.default_rng(args.seed)
    for sample in range(args.num_samples):
        if sample:
            print("\n----")
        sys.stdout.write(tokenizer.decode(prompt_ids) if args.prompt else "")  # what the model was given
        started = time.time()
        tokens = (int(ids[0]) for ids in model.stream(prompt_ids[None, :], args.max_new_tokens, temperature,
                                                      args.top_k or None, args.top_p, rng, use_cache=not args.no_cache))
        count = write_stream(tokens, tokenizer, sys.stdout)
        sys.stdout.write("\n")
        elapsed = time.time() - started
        print(f"[{count} tokens in {elapsed:.2f} s: {count / max(elapsed, 1e-9):.0f} tokens/s]", file=sys.stderr)


if __name__ == "__main__":
    main()
