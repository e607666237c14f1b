"""nanoGPT's CPU recipe end to end: train.py against the PyTorch twin's training loop (bench.py --train-race)."""
import math
import os
import time

import numpy as np

from benchmarks import USER_ENV
from benchmarks.common import run_train, twin_groups

# the same recipe as train.py flags, with its shakespeare-char config (lr 1e-3 decaying to 1e-4 over the 2000
# steps, warm-up 100, beta2 0.99, weight decay 0.1, clip 1.0, evaluation every 250 steps on 20 batches)
NANOGPT_RECIPE = ("--preset baby-gpt --n-layer 4 --n-head 4 --n-embd 128 --ffn-hidden 512 --block-size 64 --dropout 0 "
                  "--batch-size 12 --steps 2000 --lr 1e-3 --min-lr 1e-4 --warmup 100 --beta2 0.99 --weight-decay 0.1 "
                  "--grad-clip 1.0 --eval-interval 250 --eval-batches 20").split()


def train_race(steps=None, out_root="out/train-race"):
    """nanoGPT's CPU recipe end to end: `python train.py` (in its own process, as a user runs it) against the
    PyTorch twin trained by the loop below, nanoGPT's: the same data, initial weights, batches, schedule,
    evaluations (and a checkpoint on each new best). Prints both wall-clock times and validation losses."""
    import torch
    import train
    from models.metrics import read_metrics
    from models.torch_gpt import TorchGPT, copy_weights
    print("| run | train.py | PyTorch twin (SDPA) | ours / twin | our val loss (last) | twin val loss (last) | "
          "one evaluation, ours | one evaluation, twin |")
    print("|---|---|---|---|---|---|---|---|")
    flags = NANOGPT_RECIPE + (["--steps", str(steps), "--lr-decay-steps", str(steps)] if steps else [])
    ours_dir = os.path.join(out_root, "ours")
    start = time.perf_counter()
    run_train(*flags, "--out-dir", ours_dir, env=USER_ENV)
    ours_s = time.perf_counter() - start
    ours_val = [row["val_loss"] for row in read_metrics(os.path.join(ours_dir, "metrics.jsonl"))]

    # the twin: train.py's own setup gives the data, the initial weights and the batch generator
    start = time.perf_counter()
    args = train.parse_args(flags + ["--out-dir", os.path.join(out_root, "twin"), "--overwrite"])[0]
    _, tokenizer, parts, _ = train.load_data(args, train.Start())
    run = train.build_run(args, tokenizer, parts, "cpu", train.Start())
    twin = copy_weights(run.model, TorchGPT(run.config, use_sdpa=True))
    opt = torch.optim.AdamW(twin_groups(run.model, twin, args.weight_decay), lr=args.lr,
                            betas=(args.beta1, args.beta2))

    def batch(split, rng):
        return (torch.from_numpy(np.ascontiguousarray(a)) for a in run.dataset.batch(split, args.batch_size, rng))

    def twin_losses():  # nanoGPT's estimate_loss: the same fixed batches as train.py's
        twin.eval()
        with torch.no_grad():
            losses = {split: float(np.mean([twin(*batch(split, rng))[1].item() for _ in range(args.eval_batches)]))
                      for split in ("train", "val") for rng in [np.random.default_rng(args.seed + 1)]}
        twin.train()
        return losses

    twin_val, best = [], float("inf")
    for step in range(args.steps):
        for group in opt.param_groups:
            group["lr"] = train.learning_rate(args, step)
        _, loss = twin(*batch("train", run.batch_rng))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(twin.parameters(), args.grad_clip)
        opt.step()
        opt.zero_grad(set_to_none=True)
        if (step + 1) % args.eval_interval == 0 or step + 1 == args.steps:
            losses = twin_losses()
            twin_val.append(losses["val"])
            if losses["val"] < best:
                best = losses["val"]
                torch.save({"model": twin.state_dict(), "optimizer": opt.state_dict()}, run.out_dir / "best.pt")
    twin_s = time.perf_counter() - start
    evaluation = {}
    for name, evaluate in (("ours", lambda: train.estimate_loss(run)), ("twin", twin_losses)) * 3:
        start = time.perf_counter()
        evaluate()
        evaluation[name] = min(evaluation.get(name, math.inf), time.perf_counter() - start)
    print(f"| nanoGPT's CPU recipe, {args.steps} steps | {ours_s:.0f} s | {twin_s:.0f} s | {ours_s / twin_s:.2f} | "
          f"{ours_val[-1]:.4f} (best {min(ours_val):.4f}) | {twin_val[-1]:.4f} (best {min(twin_val):.4f}) | "
          f"{evaluation['ours']:.2f} s | {evaluation['twin']:.2f} s |")
