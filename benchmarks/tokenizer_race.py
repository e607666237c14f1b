"""The same model trained for the same time with each tokenizer (bench.py --tokenizer-race MINUTES)."""
import numpy as np

from benchmarks.common import run_train
from models.loading import load_model

TOKENIZER_RACE = {"char": ["--tokenizer", "char"], "byte": ["--tokenizer", "byte"],
                  "bpe-512": ["--tokenizer", "bpe", "--vocab-size", "512"],
                  "bpe-2048": ["--tokenizer", "bpe", "--vocab-size", "2048"]}


def tokenizer_race(minutes, out_root="out/tokenizers"):
    """The same model (train.py's default architecture) trained for the same wall-clock time with each tokenizer,
    one after another; validation loss in bits per byte of text, so the tokenizers compare, and a sample each.
    The BPE tokenizers are trained (and cached) before the clock starts."""
    import json
    print("| tokenizer | vocabulary | parameters | steps | best val loss (nats/token) | val bits per byte |")
    print("|---|---|---|---|---|---|")
    rows = []
    for name, flags in TOKENIZER_RACE.items():
        out = f"{out_root}/{name}"
        run_train(*flags, "--time-limit", str(minutes), "--steps", "1000000", "--eval-interval", "250",
                  "--out-dir", out, show_progress=True)
        metrics = [json.loads(line) for line in open(f"{out}/metrics.jsonl")]
        best = min(metrics, key=lambda r: r["val_loss"])
        model, tokenizer, _ = load_model(f"{out}/best.npz")
        prompt = tokenizer.encode("\n")[None]
        text = tokenizer.decode(model.generate(prompt, 600, temperature=0.8, top_k=40,
                                               rng=np.random.default_rng(0))[0])
        rows.append((name, model.num_parameters(), metrics[-1]["step"], best, text[:300]))
        print(f"| {name} | {tokenizer.vocab_size} | {model.num_parameters():,} | {metrics[-1]['step']:,} | "
              f"{best['val_loss']:.3f} | {best['val_bpb']:.3f} |", flush=True)
    for name, _, _, _, text in rows:
        print(f"\n{name}:\n{text}")
