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
from pathlib import Path

import numpy as np
from tqdm import tqdm

import tinygrad_proust as tp
from models.gpt import GPT, PRESETS, GPTConfig, preset_config
from tinygrad_proust import optim, rng as tp_rng
from tinygrad_proust.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from tinygrad_proust.data import (ByteTokenizer, CharTokenizer, DataError, TokenDataset, decode_utf8,
                                  default_corpus, read_corpus, tokenizer_from_dict)


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


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)

    # ---- resume: the checkpoint's settings, overridden by the flags given now ----
    checkpoint = None
    if args.resume:
        try:
            checkpoint = load_checkpoint(args.resume)
        except CheckpointError as err:
            fail(err)
        saved = checkpoint[0]["args"]
        for key, value in saved.items():
            if key not in args.explicit and key not in ("resume", "explicit"):
                setattr(args, key, value)

    # ---- device ----
    device = args.device
    if device == "auto":
        device = "gpu" if tp.gpu_available() else "cpu"
    try:
        tp.zeros(1, device=device)
    except tp.DeviceError as err:
        fail(err)
    device = "gpu" if device in ("gpu", "cuda") else "cpu"

    # ---- data ----
    try:
        if args.data:
            source, raw = args.data, read_corpus(args.data)
        else:
            path = default_corpus(log=lambda m: print(m, flush=True))
            source, raw = str(path), path.read_bytes()
        if checkpoint is not None:
            tokenizer = tokenizer_from_dict(checkpoint[0]["tokenizer"])
        elif args.tokenizer == "byte":
            tokenizer = ByteTokenizer()
        else:
            tokenizer = CharTokenizer.from_text(decode_utf8(raw, source), allowed=args.chars,
                                                unknown="replace" if args.replace_unknown else "drop",
                                                replacement=args.replace_unknown)
        text = raw if tokenizer.kind == "byte" else decode_utf8(raw, source)
        tokens = tokenizer.encode(text)
    except DataError as err:
        fail(err)

    # ---- model ----
    if checkpoint is not None:
        config = GPTConfig.from_dict(checkpoint[0]["config"])
    else:
        overrides = {k: getattr(args, k) for k in ("n_layer", "n_head", "n_embd", "ffn_hidden", "block_size", "dropout")
                     if getattr(args, k) is not None}
        try:
            config = preset_config(args.preset, vocab_size=tokenizer.vocab_size, **overrides)
        except ValueError as err:
            fail(err)
    try:
        dataset = TokenDataset(tokens, config.block_size, args.val_fraction)
    except DataError as err:
        fail(err)
    tp.manual_seed(args.seed)
    model = GPT(config).to(device)

    # ---- optimizer ----
    if args.optimizer == "sgd":
        optimizer = optim.SGD(model.parameters(), lr=args.lr, momentum=args.momentum)
    elif args.optimizer == "adam":
        optimizer = optim.Adam(model.parameters(), lr=args.lr, betas=(args.beta1, args.beta2))
    else:
        optimizer = optim.AdamW(model.parameters(), lr=args.lr, betas=(args.beta1, args.beta2),
                                weight_decay=args.weight_decay)
    # resolved once and saved with the run, so that a resume keeps the same schedule
    args.min_lr = args.min_lr if args.min_lr is not None else args.lr / 10
    args.lr_decay_steps = args.lr_decay_steps or args.steps

    def get_lr(step):
        if args.schedule == "constant":
            return args.lr
        return optim.cosine_lr(step, args.lr, args.warmup, args.lr_decay_steps, args.min_lr)

    batch_rng = np.random.default_rng(args.seed)
    step, best_val = 0, math.inf
    if checkpoint is not None:
        meta, weights, optimizer_state = checkpoint
        model.load_state_dict(weights)
        if optimizer_state is not None:
            optimizer.load_state_dict(optimizer_state)
        step, best_val = meta["step"], meta["best_val_loss"]
        batch_rng.bit_generator.state = meta["batch_rng"]
        tp_rng.set_state(meta["rng"])

    out_dir = Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)

    def xy(split, rng):
        x, y = dataset.batch(split, args.batch_size, rng)
        return tp.tensor(x, device=device), tp.tensor(y, device=device)

    def estimate_loss():
        """Mean loss over --eval-batches fixed batches of each split (the same batches at every evaluation)."""
        model.eval()
        losses = {}
        with tp.no_grad():
            for split in ("train", "val"):
                eval_rng = np.random.default_rng(args.seed + 1)
                losses[split] = float(np.mean([model(*xy(split, eval_rng))[1].item() for _ in range(args.eval_batches)]))
        model.train()
        return losses

    def sample():
        start = dataset.val[:1][None, :]  # the first validation token as the prompt
        ids = model.generate(start, args.sample_tokens, temperature=0.8, top_k=40,
                             rng=np.random.default_rng(args.seed + 2))
        return tokenizer.decode(ids[0])

    def save(name):
        return save_checkpoint(out_dir / f"{name}.npz", model, optimizer, step=step, best_val_loss=best_val,
                               config=config.to_dict(), tokenizer=tokenizer.to_dict(),
                               args={k: v for k, v in vars(args).items() if k not in ("explicit", "resume")},
                               rng=tp_rng.get_state(), batch_rng=batch_rng.bit_generator.state)

    # ---- the start: what will run ----
    print(f"device {device} | corpus {source}: {len(text):,} {'bytes' if tokenizer.kind == 'byte' else 'characters'}, "
          f"vocabulary {tokenizer.vocab_size} | train {len(dataset.train):,} tokens, val {len(dataset.val):,}")
    print(f"model {args.preset}: {model.num_parameters():,} parameters | {json.dumps(config.to_dict())}")
    print("training:", json.dumps({k: v for k, v in vars(args).items() if k != "explicit"}))
    if step:
        print(f"resumed from {args.resume} at step {step} (best validation loss {best_val:.4f})")

    # Ctrl-C: finish the step, save, stop. A second Ctrl-C stops at once.
    stop = {"requested": False}

    def on_interrupt(signum, frame):
        if stop["requested"]:
            raise KeyboardInterrupt
        stop["requested"] = True
        tqdm.write("interrupted: saving a checkpoint after this step (Ctrl-C again to stop at once)")

    previous_handler = signal.signal(signal.SIGINT, on_interrupt)
    tokens_per_step = args.batch_size * args.grad_accum * config.block_size
    metrics = open(out_dir / "metrics.jsonl", "a")
    bar = tqdm(total=args.steps, initial=step, desc="train", unit="step", dynamic_ncols=True)
    started, step_time, loss = time.time(), time.time(), None
    try:
        while step < args.steps:
            lr = get_lr(step)
            for group in optimizer.param_groups:
                group["lr"] = lr
            for _ in range(args.grad_accum):
                x, y = xy("train", batch_rng)
                _, loss = model(x, y)
                (loss / args.grad_accum if args.grad_accum > 1 else loss).backward()
            if args.grad_clip > 0:
                optim.clip_grad_norm_(model.parameters(), args.grad_clip)
            optimizer.step()
            optimizer.zero_grad()
            step += 1

            if step % args.log_interval == 0 or step == args.steps:
                elapsed = time.time() - step_time
                done = args.log_interval if step % args.log_interval == 0 else step % args.log_interval
                bar.set_postfix(loss=f"{loss.item():.4f}", lr=f"{lr:.2e}", tok_s=f"{tokens_per_step * done / elapsed:,.0f}")
                step_time = time.time()
            bar.update(1)

            if step % args.eval_interval == 0 or step == args.steps or stop["requested"]:
                losses = estimate_loss()
                improved = losses["val"] < best_val
                best_val = min(best_val, losses["val"])
                row = {"step": step, "train_loss": losses["train"], "val_loss": losses["val"], "lr": lr,
                       "elapsed_s": round(time.time() - started, 2), "tokens": step * tokens_per_step}
                metrics.write(json.dumps(row) + "\n")
                metrics.flush()
                save("last")
                if improved:
                    save("best")
                tqdm.write(f"step {step}: train loss {losses['train']:.4f}, val loss {losses['val']:.4f}"
                           f"{' (best)' if improved else ''}")
                if args.sample_tokens:
                    tqdm.write("----\n" + sample() + "\n----")
                step_time = time.time()
            if stop["requested"]:
                tqdm.write(f"saved {out_dir / 'last.npz'} at step {step}; resume with --resume {out_dir / 'last.npz'}")
                break
    finally:
        bar.close()
        metrics.close()
        signal.signal(signal.SIGINT, previous_handler)
    return best_val


if __name__ == "__main__":
    main()
