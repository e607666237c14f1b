"""After training: LoRA and full fine-tuning on the Sonnets, then quantised weights (bench.py --finetune)."""
import os
import time

import numpy as np

import tinygrad_proust as tp
from benchmarks.common import run_train
from models.loading import load_model


def sonnets_apart(text):
    """(the corpus without the Sonnets, the Sonnets): the 154 sonnets sit between "THE SONNETS" and the next play."""
    start = text.index("THE SONNETS")
    end = text.index("THE TAMING OF THE SHREW", start)
    return text[:start] + text[end:], text[start:end]


def val_loss(checkpoint, data, batches=40, batch_size=32, seed=0):
    """Mean validation loss (nats per token) of a checkpoint on the last tenth of a text file, fixed batches."""
    from models.corpus import TokenDataset, split_point
    model, tokenizer, _ = load_model(checkpoint)
    raw = open(data, "rb").read()
    at = split_point(raw, 0.1)
    dataset = TokenDataset(tokenizer.encode_corpus(raw[:at], data), model.config.block_size,
                           val_tokens=tokenizer.encode_corpus(raw[at:], data))
    rng = np.random.default_rng(seed)
    with tp.no_grad():
        return float(np.mean([model(*dataset.batch("val", batch_size, rng))[1].item() for _ in range(batches)]))


def finetune_experiment(pretrain_minutes, steps, targets="attn", full=True, root="out/finetune"):
    """Pre-train the default model on the plays (the corpus without the Sonnets), then adapt it to the Sonnets:
    not at all, with LoRA (r = 4, 8, 16) on `targets`, and fully, each for the same number of steps."""
    from models.corpus import default_corpus
    from tinygrad_proust.checkpoint import load_checkpoint
    os.makedirs(root, exist_ok=True)
    plays, sonnets = sonnets_apart(default_corpus().read_text())
    open(f"{root}/plays.txt", "w").write(plays)
    open(f"{root}/sonnets.txt", "w").write(sonnets)
    base = f"{root}/base/best.npz"
    if not os.path.exists(base):
        run_train("--data", f"{root}/plays.txt", "--time-limit", str(pretrain_minutes), "--steps", "1000000",
                  "--out-dir", f"{root}/base")
    print(f"base: the default model pre-trained {pretrain_minutes:g} minutes on {len(plays):,} characters of plays "
          f"(val loss on them {val_loss(base, f'{root}/plays.txt'):.3f}); the Sonnets: {len(sonnets):,} characters\n")
    print("| adaptation | trainable parameters | optimizer memory | ms/step | Sonnets val loss (nats/char) |")
    print("|---|---|---|---|---|")
    model = load_model(base)[0]
    print(f"| none | 0 | 0 | - | {val_loss(base, f'{root}/sonnets.txt'):.3f} |", flush=True)
    common = ["--init-from", base, "--data", f"{root}/sonnets.txt", "--steps", str(steps), "--eval-interval",
              str(steps // 4), "--warmup", "20", "--lr", "1e-3"]
    runs = [(f"LoRA r = {r} ({targets})", f"lora{r}-{targets.replace(',', '-')}",
             ["--lora-rank", str(r), "--lora-alpha", str(2 * r), "--lora-targets", targets]) for r in (4, 8, 16)]
    for name, folder, flags in runs + ([("full fine-tuning", "full", [])] if full else []):
        out = f"{root}/{folder}"
        started = time.perf_counter()
        run_train(*common, *flags, "--out-dir", out)
        seconds = time.perf_counter() - started
        trained = sum(w.size for w in load_checkpoint(f"{out}/last.npz")[1].values())  # adapters only, or all
        print(f"| {name} | {trained:,} ({100 * trained / model.num_parameters():.1f}%) | "
              f"{2 * 4 * trained / 2**20:.2f} MiB "
              f"| {1000 * seconds / steps:.0f} (whole run / steps) | "
              f"{val_loss(f'{out}/best.npz', f'{root}/sonnets.txt'):.3f} |",
              flush=True)


def quantization_table(root="out/finetune"):
    """The pre-trained model of finetune_experiment in float32, int8 and int4: file, loss on the plays, speed."""
    from models.quantize import quantize_checkpoint
    from tinygrad_proust.checkpoint import save_checkpoint
    model, tokenizer, _ = load_model(f"{root}/base/best.npz")
    base = str(save_checkpoint(f"{root}/base-float32.npz", model, config=model.config.to_dict(),
                               tokenizer=tokenizer.to_dict()))            # weights only, as the quantised files
    print("| weights | file | plays val loss (nats/char) | change | generation (tok/s) |")
    print("|---|---|---|---|---|")
    reference = val_loss(base, f"{root}/plays.txt")
    for bits in (None, 8, 4):
        path = base if bits is None else str(quantize_checkpoint(base, f"{root}/base-int{bits}.npz", bits, 32))
        loss = val_loss(path, f"{root}/plays.txt")
        generator = load_model(path)[0]
        prompt = np.zeros((1, 32), dtype=np.int64)
        generator.generate(prompt, 30, temperature=0.8, rng=np.random.default_rng(0))  # warm-up
        start = time.perf_counter()
        generator.generate(prompt, 300, temperature=0.8, top_k=40, rng=np.random.default_rng(0))
        speed = 300 / (time.perf_counter() - start)
        label = "float32" if bits is None else f"int{bits}" + (" (groups of 32)" if bits == 4 else " (per channel)")
        print(f"| {label} | {os.path.getsize(path):,} bytes | {loss:.4f} | {loss - reference:+.4f} | {speed:,.0f} |",
              flush=True)


def finetune(pretrain_minutes, steps, targets="attn"):
    """bench.py --finetune: pre-train, adapt to the Sonnets (none, LoRA, full), then the int8/int4 table."""
    finetune_experiment(pretrain_minutes, steps, targets)
    print()
    quantization_table()
