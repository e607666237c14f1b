"""Race tinygrad_proust against PyTorch on the same model, batch and machine, in one process.

    python bench.py                      # training steps, default CPU cases, plus the numerical-gradient step
    python bench.py --device gpu         # the GPU cases (needs CuPy; PyTorch with CUDA for its side)
    python3 gpu_smoke.py                 # on a machine with a GPU: the GPU tests, a training run, these tables
    python bench.py --generate           # generation speed with and without the KV cache
    python bench.py --train-race         # nanoGPT's CPU recipe end to end: train.py against the PyTorch twin
    python bench.py --cases proust:32x256 byte-gpt:64x128

A training step is forward, loss, backward, gradient clipping (1.0) and AdamW, in float32 on both sides, with
each preset's own dropout. PyTorch runs the same model twice: with its fused scaled_dot_product_attention (SDPA,
nanoGPT's setup and the default reference) and with eager attention (one op per step, as ours is written). All
three alternate step by step on the same batches after warm-up, each step after a short idle pause (so neither
framework's spinning threads slow the other's step); the table shows medians.
Benchmarks are not tests: nothing here asserts a speed.
"""
import os

# Both frameworks keep thread pools (NumPy's OpenBLAS, PyTorch's OpenMP) whose idle threads spin-wait for the next
# job, which is what makes each fast on its own: a GEMM or a parallel elementwise op starts without waking a
# sleeping thread. Alternating in one process, one framework's spinning threads steal the cores from the other's
# step. So each keeps its own spin-waiting, bounded: OpenBLAS's threads sleep after 2^24 cycles (about 7 ms here,
# longer than any gap inside our step; its default, 2^28, spins on for about 0.1 s), libgomp's after its default
# spin count, and every timed step starts after PAUSE_S of idling, when both pools are asleep.
# Measured on nanoGPT's recipe: PyTorch alone 53-65 ms/step, alternating this way 58-62; making idle threads sleep
# at once instead (OMP_WAIT_POLICY=PASSIVE, the old setting here) slowed PyTorch to 95 ms and us far less.
USER_ENV = dict(os.environ)  # what train.py runs under in --train-race: the user's own settings
os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "24")
PAUSE_S = 0.02

import argparse  # noqa: E402
import math  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import tracemalloc  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

import tinygrad_proust as tp  # noqa: E402
from models.gpt import GPT, preset_config  # noqa: E402
from models.loading import load_model  # noqa: E402
from tinygrad_proust import optim  # noqa: E402

DEFAULT_CASES = {"cpu": ["nanogpt-cpu", "baby-gpt:8x128", "byte-gpt:16x128", "proust:8x256", "char-small:32x64"],
                 "gpu": ["proust:32x256", "byte-gpt:64x128", "baby-gpt:64x256"]}
# nanoGPT's README recipe for a CPU (shakespeare-char, --device=cpu --compile=False --block_size=64 --batch_size=12
# --n_layer=4 --n_head=4 --n_embd=128 --dropout=0.0): its baby GPT made small
NAMED_CASES = {"nanogpt-cpu": ("baby-gpt", dict(n_layer=4, n_head=4, n_embd=128, ffn_hidden=512, dropout=0.0), 12, 64)}
# the same recipe as train.py flags, with its shakespeare-char config (lr 1e-3 decaying to 1e-4 over the 2000
# steps, warm-up 100, beta2 0.99, weight decay 0.1, clip 1.0, evaluation every 250 steps on 20 batches)
NANOGPT_RECIPE = ("--preset baby-gpt --n-layer 4 --n-head 4 --n-embd 128 --ffn-hidden 512 --block-size 64 --dropout 0 "
                  "--batch-size 12 --steps 2000 --lr 1e-3 --min-lr 1e-4 --warmup 100 --beta2 0.99 --weight-decay 0.1 "
                  "--grad-clip 1.0 --eval-interval 250 --eval-batches 20").split()


def parse_case(text):
    """(preset, config overrides, batch, block) from "preset:BATCHxBLOCK" or a named case."""
    if text in NAMED_CASES:
        return NAMED_CASES[text]
    preset, shape = text.split(":")
    batch, block = shape.lower().split("x")
    return preset, {}, int(batch), int(block)


def flops_per_step(config, batch, block):
    """Forward + backward FLOPs of a training step, as nanoGPT's estimate_mfu counts them (after the PaLM paper):
    6 N per token for the weights (N: parameters without the position table; 2 for the forward multiply-add,
    4 for the backward), plus 12 L C T per token for attention's two T-long matmuls (counted whole, although
    causal attention needs half). Optimizer, norms and softmax are left out."""
    tp.manual_seed(0)
    model = GPT(config)
    n = model.num_parameters() - (model.wpe.weight.numel() if config.positions == "learned" else 0)
    return (6 * n + 12 * config.n_layer * config.n_embd * block) * batch * block


def practical_peak_gflops(size=2048, repeats=5):
    """What NumPy's own BLAS reaches on one big float32 GEMM here: the ceiling a step made of GEMMs could reach."""
    a = np.random.default_rng(0).standard_normal((size, size)).astype(np.float32)
    a @ a
    start = time.perf_counter()
    for _ in range(repeats):
        a @ a
    return 2 * size ** 3 * repeats / (time.perf_counter() - start) / 1e9


def sync(device):
    if device == "gpu":
        tp.device.cupy_module().cuda.get_current_stream().synchronize()


def our_step(model, opt, x, y):
    _, loss = model(x, y)
    loss.backward()
    optim.clip_grad_norm_(model.parameters(), 1.0)
    opt.step()
    opt.zero_grad()
    return loss


PHASES = ("batch", "forward", "dropout masks", "backward", "clipping", "optimizer")
COUNT_CASES = ["proust:32x256", "byte-gpt:64x128", "baby-gpt:64x256"]


def use_standin():
    """The CuPy stand-in (tests/cupy_standin) as `cupy` in this process: it counts what real CuPy would launch."""
    sys.path.insert(0, str(Path(__file__).resolve().parent / "tests"))
    from cupy_standin import install
    if getattr(sys.modules.get("cupy"), "is_standin", False) is False:
        install()
        tp.device._cupy = None
    return sys.modules["cupy_standin"]


def count_step(preset, batch, block, overrides=None, extrapolate=True):
    """What one training step (the second, so AdamW's state exists) asks of a GPU, phase by phase, counted through
    the CuPy stand-in: {phase: {kind: [calls, bytes]}}. Every count but bytes is independent of the batch size, and
    bytes are affine in it (activations scale with the batch, parameters do not): the step runs at batches 1 and 2
    and the bytes are extrapolated to `batch` (a test checks that against a step run at the batch itself, which
    extrapolate=False does)."""
    standin = use_standin()
    tables = []
    for b in ((1, 2) if extrapolate else (batch, batch)):
        tp.manual_seed(0)
        model = GPT(preset_config(preset, block_size=block, **(overrides or {}))).to("gpu")
        opt = optim.AdamW(model.optimizer_groups(0.1), lr=3e-4)  # as train.py makes it
        data = np.random.default_rng(0).integers(0, model.config.vocab_size, (2, 2, b, block))
        for x, y in data:
            with standin.count_kernels() as counts:
                with counts.phase("batch"):
                    x, y = tp.tensor(x, device="gpu"), tp.tensor(y, device="gpu")
                with counts.phase("forward"):
                    _, loss = model(x, y)
                with counts.phase("backward"):
                    loss.backward()
                with counts.phase("clipping"):
                    optim.clip_grad_norm_(model.parameters(), 1.0)
                with counts.phase("optimizer"):
                    opt.step()
                    opt.zero_grad()
        tables.append(counts.table)
    one, two = tables
    assert {p: {k: c for k, (c, _) in row.items()} for p, row in one.items()} == \
           {p: {k: c for k, (c, _) in row.items()} for p, row in two.items()}, "counts depend on the batch size"
    if not extrapolate:
        return two
    return {phase: {kind: [calls, one[phase][kind][1] + (batch - 1) * (nbytes - one[phase][kind][1])]
                    for kind, (calls, nbytes) in row.items()} for phase, row in two.items()}


def print_counts(cases):
    """One table per case: kernels, bytes and the rest, per phase of a training step."""
    standin = use_standin()
    KERNELS, OTHERS = standin.KERNELS, standin.OTHERS
    for case in cases:
        preset, overrides, batch, block = parse_case(case)
        table = count_step(preset, batch, block, overrides)
        print(f"\n{case}: one training step (forward, backward, clipping 1.0, AdamW), as CuPy would run it\n")
        print("| phase | kernels | GB read + written | " + " | ".join(KERNELS + OTHERS) + " |")
        print("|---" * (3 + len(KERNELS + OTHERS)) + "|")
        rows = [phase for phase in PHASES if phase in table] + [p for p in table if p not in PHASES]
        for phase in rows + ["step"]:
            phases = None if phase == "step" else [phase]
            name = f"**{phase}**" if phase == "step" else phase
            print(f"| {name} | {standin.total(table, 'kernels', phases):,} | "
                  f"{standin.total(table, 'bytes', phases) / 1e9:.3f} | "
                  + " | ".join(f"{standin.total(table, k, phases):,}" for k in KERNELS + OTHERS) + " |")


def count_on_gpu(preset, batch, block, overrides=None):
    """What one training step (the third: AdamW's state exists, CuPy's kernels are compiled) asks of the real GPU,
    counted by CUPTI through PyTorch's profiler, for ours and for PyTorch's twin with SDPA:
    {"ours" | "sdpa": {"kernels", "memcpy", "memset"}}. The profiler sees every kernel of the process, CuPy's too.
    Counts, not timings: the profiler's own cost does not enter them."""
    import json
    import tempfile

    import torch
    from torch.profiler import ProfilerActivity, profile

    from models.torch_gpt import TorchGPT, copy_weights
    config = preset_config(preset, block_size=block, **(overrides or {}))
    tp.manual_seed(0)
    ours = GPT(config).to("gpu")
    twin = copy_weights(ours, TorchGPT(config, use_sdpa=True)).to("cuda")
    runs = {"ours": (ours, optim.AdamW(ours.optimizer_groups(0.1), lr=3e-4)),
            "sdpa": (twin, torch.optim.AdamW(twin_groups(ours, twin, 0.1), lr=3e-4))}
    data = np.random.default_rng(0).integers(0, config.vocab_size, (3, 2, batch, block))
    counts = {}
    for name, (model, opt) in runs.items():
        for i, (x, y) in enumerate(data):
            if name == "ours":
                x, y = tp.tensor(x, device="gpu"), tp.tensor(y, device="gpu")
                step = lambda: our_step(model, opt, x, y)
            else:
                x, y = torch.from_numpy(x).to("cuda"), torch.from_numpy(y).to("cuda")
                step = lambda: torch_step(torch, model, opt, x, y)
            torch.cuda.synchronize()
            sync("gpu")
            if i < len(data) - 1:
                step()
                continue
            with profile(activities=[ProfilerActivity.CUDA]) as prof:
                step()
                sync("gpu")
                torch.cuda.synchronize()
        with tempfile.TemporaryDirectory() as folder:
            prof.export_chrome_trace(f"{folder}/trace.json")
            events = json.loads(Path(f"{folder}/trace.json").read_text())["traceEvents"]
        categories = [e.get("cat") for e in events]
        counts[name] = {kind: categories.count(cat) for kind, cat in
                        (("kernels", "kernel"), ("memcpy", "gpu_memcpy"), ("memset", "gpu_memset"))}
    return counts


def twin_groups(model, twin, weight_decay):
    """The PyTorch twin's AdamW groups: the parameters of model.optimizer_groups, matched by name."""
    ids = [{id(p) for p in group["params"]} for group in model.optimizer_groups(weight_decay)]
    names = [{name for name, p in model.named_parameters() if id(p) in group} for group in ids]
    return [{"params": [p for name, p in twin.named_parameters() if name in group], "weight_decay": wd}
            for group, wd in zip(names, (weight_decay, 0.0))]


def print_gpu_counts(cases):
    """Kernels per training step counted on the real GPU, ours against PyTorch's, beside the stand-in's model of
    ours (bench.py --count, run in its own process: the stand-in replaces CuPy where it is installed)."""
    import subprocess
    print("| case | ours: kernels on the GPU | memcpy | memset | the stand-in's model: kernels | "
          "PyTorch SDPA: kernels | memcpy | memset | ours / PyTorch (kernels) |")
    print("|---|---|---|---|---|---|---|---|---|")
    for case in cases:
        modelled = subprocess.run([sys.executable, __file__, "--count", "--cases", case], capture_output=True,
                                  text=True, check=True).stdout
        step_row = [line for line in modelled.splitlines() if line.startswith("| **step**")][0]
        model_kernels = step_row.split("|")[2].strip()
        preset, overrides, batch, block = parse_case(case)
        counts = count_on_gpu(preset, batch, block, overrides)
        ours, sdpa = counts["ours"], counts["sdpa"]
        print(f"| {case} | {ours['kernels']:,} | {ours['memcpy']} | {ours['memset']} | {model_kernels} | "
              f"{sdpa['kernels']:,} | {sdpa['memcpy']} | {sdpa['memset']} | "
              f"{ours['kernels'] / max(sdpa['kernels'], 1):.2f} |", flush=True)


def torch_step(torch, model, opt, x, y):
    _, loss = model(x, y)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    opt.step()
    opt.zero_grad(set_to_none=True)
    return loss


TWINS = {"sdpa": True, "eager": False}  # PyTorch's attention: fused SDPA (as nanoGPT runs it), or one op per step


def torch_device_for(device):
    """Where PyTorch runs for our `device`, or None when it cannot (no PyTorch, or one without CUDA on a GPU run):
    its columns then read n/a."""
    try:
        import torch
    except ImportError:
        return None
    if device == "gpu":
        return "cuda" if torch.cuda.is_available() else None
    return "cpu"


def race(preset, batch, block, device, steps, warmup, overrides=None):
    """Median ms/step of ours and of PyTorch's twin with SDPA and with eager attention, alternating step by step
    on the same batches, plus our peak traced host memory per step."""
    config = preset_config(preset, block_size=block, **(overrides or {}))
    tp.manual_seed(0)
    ours = GPT(config).to(device)
    opt = optim.AdamW(ours.parameters(), lr=3e-4, weight_decay=0.1)
    torch_device = torch_device_for(device)
    twins = {}
    if torch_device is not None:
        import torch
        from models.torch_gpt import TorchGPT, copy_weights
        for name, use_sdpa in TWINS.items():
            twin = copy_weights(ours, TorchGPT(config, use_sdpa=use_sdpa)).to(torch_device)
            twins[name] = (twin, torch.optim.AdamW(twin.parameters(), lr=3e-4, weight_decay=0.1))
    rng = np.random.default_rng(0)
    data = rng.integers(0, config.vocab_size, (steps + warmup, 2, batch, block))
    times = {"ours": [], **{name: [] for name in twins}}
    peak = 0
    for i in range(steps + warmup):
        x, y = tp.tensor(data[i, 0], device=device), tp.tensor(data[i, 1], device=device)
        measure_memory = device == "cpu" and i == warmup
        if measure_memory:
            tracemalloc.start()
        time.sleep(PAUSE_S)
        start = time.perf_counter()
        our_step(ours, opt, x, y)
        sync(device)
        elapsed = time.perf_counter() - start
        if measure_memory:
            peak = tracemalloc.get_traced_memory()[1]
            tracemalloc.stop()
        elif i >= warmup:
            times["ours"].append(elapsed)
        for name, (twin, twin_opt) in twins.items():
            tx, ty = (torch.from_numpy(data[i, j]).to(torch_device) for j in (0, 1))
            time.sleep(PAUSE_S)
            start = time.perf_counter()
            torch_step(torch, twin, twin_opt, tx, ty)
            if torch_device == "cuda":
                torch.cuda.synchronize()
            if i >= warmup:
                times[name].append(time.perf_counter() - start)
    return {k: 1000 * statistics.median(v) for k, v in times.items()}, peak, ours.num_parameters()


def numerical_gradient_step(samples=64):
    """A step without autograd: one forward pass per parameter (finite differences), byte-gpt on a 32-token
    sequence; timed on `samples` parameters and extrapolated. Against our autograd step on the same input."""
    tp.manual_seed(0)
    model = GPT.from_preset("byte-gpt").eval()
    rng = np.random.default_rng(0)
    x, y = rng.integers(0, 256, (1, 32)), rng.integers(0, 256, (1, 32))
    flat = [(p, i) for p in model.parameters() for i in range(p.numel())]
    chosen = [flat[j] for j in rng.choice(len(flat), samples, replace=False)]
    start = time.perf_counter()
    with tp.no_grad():
        base = model(x, y)[1].item()
        for p, i in chosen:
            view = p.data.reshape(-1)
            old = view[i].item()
            view[i] = old + 1e-3
            _ = (model(x, y)[1].item() - base) / 1e-3
            view[i] = old
    per_parameter = (time.perf_counter() - start) / samples
    numerical = per_parameter * len(flat)
    model.train()
    opt = optim.AdamW(model.parameters(), lr=3e-4)
    xt, yt = tp.tensor(x), tp.tensor(y)
    for _ in range(3):
        our_step(model, opt, xt, yt)
    runs = []
    for _ in range(10):
        start = time.perf_counter()
        our_step(model, opt, xt, yt)
        runs.append(time.perf_counter() - start)
    return numerical, statistics.median(runs), len(flat)


def generation_speed(preset, new_tokens, device):
    """tokens/s for new_tokens sampled after a prompt that fills the whole context window, cache on and off."""
    tp.manual_seed(0)
    model = GPT.from_preset(preset).to(device)
    prompt = np.random.default_rng(0).integers(0, model.config.vocab_size, (1, model.config.block_size))
    speeds = {}
    for use_cache in (True, False):
        model.generate(prompt, 5, use_cache=use_cache, rng=np.random.default_rng(0))  # warm-up
        start = time.perf_counter()
        model.generate(prompt, new_tokens, temperature=0.8, top_k=40, use_cache=use_cache,
                       rng=np.random.default_rng(0))
        speeds[use_cache] = new_tokens / (time.perf_counter() - start)
    return speeds


def hf_generation_race(new_tokens, repeats=3):
    """Our generate (KV cache) against Transformers' generate (its own cache) on the same exported model: CPU,
    batch 1, greedy, new_tokens after a prompt of 512 tokens, with a context of 1,024 so that prompt and
    continuation fit GPT-2's position table. Both alternate; medians. The tokens must agree."""
    import tempfile
    import torch
    import transformers
    from models.export import export_pretrained
    from models.tokenizer import ByteTokenizer
    transformers.logging.set_verbosity_error()
    families = {"GPT-2 (char-small, context 1024)": dict(),
                "LLaMA (same size: RMSNorm, SwiGLU, RoPE)": dict(norm="rmsnorm", ffn="swiglu", positions="rope",
                                                                 attn_bias=False, ffn_bias=False)}
    for name, changes in families.items():
        tp.manual_seed(0)
        model = GPT(preset_config("char-small", vocab_size=256, block_size=1024, **changes)).eval()
        with tempfile.TemporaryDirectory() as folder:
            theirs = transformers.AutoModelForCausalLM.from_pretrained(
                export_pretrained(model, ByteTokenizer(), f"{folder}/hf")).eval()
        prompt = np.random.default_rng(0).integers(0, 256, (1, 512))
        times, outputs = {"ours": [], "transformers": []}, {}
        for _ in range(repeats):
            start = time.perf_counter()
            outputs["ours"] = model.generate(prompt, new_tokens, temperature=0)[0, 512:]
            times["ours"].append(time.perf_counter() - start)
            start = time.perf_counter()
            with torch.no_grad():
                out = theirs.generate(torch.from_numpy(prompt), max_new_tokens=new_tokens, min_new_tokens=new_tokens,
                                      do_sample=False)
            times["transformers"].append(time.perf_counter() - start)
            outputs["transformers"] = out[0, 512:].numpy()
        ours, hf = (new_tokens / statistics.median(times[k]) for k in ("ours", "transformers"))
        same = np.array_equal(outputs["ours"], outputs["transformers"])
        print(f"| {name} | {model.num_parameters():,} | {new_tokens} | {ours:,.0f} | {hf:,.0f} | {ours / hf:.2f} | "
              f"{'yes' if same else 'no'} |", flush=True)


def run_train(*flags, env=None, show_progress=False):
    """`python train.py FLAGS --overwrite --sample-tokens 0` in a process of its own, as a user runs it; its
    output stays out of the tables (its progress bar and errors on stderr with show_progress)."""
    import subprocess
    import sys
    subprocess.run([sys.executable, "train.py", *flags, "--overwrite", "--sample-tokens", "0"], check=True, env=env,
                   stdout=subprocess.DEVNULL, stderr=None if show_progress else subprocess.DEVNULL)

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


def bpe_speed(vocab_size=4096, slice_bytes=30_000, slice_merges=200):
    """BPE training and encoding on the default corpus, with and without pre-splitting, and our trainer against
    the slow, obviously correct implementation of the same rule (tests/test_bpe.py) on a slice."""
    from models.corpus import default_corpus
    from models.tokenizer import BPETokenizer
    from tests.test_bpe import reference_merges
    text = default_corpus().read_text()
    data = text.encode("utf-8")
    print(f"corpus: {len(data):,} bytes\n")
    print("| pre-split | vocabulary | training | encoding | bytes per token |")
    print("|---|---|---|---|---|")
    for pattern in ("gpt4", "gpt2", None):
        start = time.perf_counter()
        tokenizer = BPETokenizer.train(text if pattern else data, vocab_size, pattern)
        trained = time.perf_counter() - start
        start = time.perf_counter()
        ids = tokenizer.encode(text)
        encoded = time.perf_counter() - start
        assert tokenizer.decode(ids) == text
        print(f"| {pattern or 'none'} | {tokenizer.vocab_size:,} | {trained:.1f} s | "
              f"{len(data) / encoded / 1e6:.2f} MB/s | "
              f"{len(data) / len(ids):.2f} |", flush=True)
    start = time.perf_counter()
    BPETokenizer.train(data[:1_000_000], 256 + 1000)
    print(f"\n1,000 merges on 1 MB without pre-splitting: {time.perf_counter() - start:.1f} s")
    piece = data[:slice_bytes]
    start = time.perf_counter()
    ours = BPETokenizer.train(piece, 256 + slice_merges).merges
    fast = time.perf_counter() - start
    start = time.perf_counter()
    reference = reference_merges([piece], slice_merges)[0]
    slow = time.perf_counter() - start
    print(f"{slice_merges} merges on the first {slice_bytes:,} bytes: ours {fast:.2f} s, "
          f"the slow reference {slow:.1f} s "
          f"({slow / fast:.0f}x); merges identical: {ours == reference}")


TOKENIZER_RACE = {"char": ["--tokenizer", "char"], "byte": ["--tokenizer", "byte"],
                  "bpe-512": ["--tokenizer", "bpe", "--vocab-size", "512"],
                  "bpe-2048": ["--tokenizer", "bpe", "--vocab-size", "2048"]}


def tokenizer_race(minutes, out_root="out/tokenizers"):
    """The same model (train.py's default architecture) trained for the same wall-clock time with each tokenizer,
    one after another; validation loss in bits per byte of text, so the tokenizers compare, and a sample each.
    The BPE tokenizers are trained (and cached) before the clock starts."""
    import json
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


def train_race(steps=None, out_root="out/train-race"):
    """nanoGPT's CPU recipe end to end: `python train.py` (in its own process, as a user runs it) against the
    PyTorch twin trained by the loop below, nanoGPT's: the same data, initial weights, batches, schedule,
    evaluations (and a checkpoint on each new best). Prints both wall-clock times and validation losses."""
    import torch
    import train
    from models.metrics import read_metrics
    from models.torch_gpt import TorchGPT, copy_weights
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


def machine(device):
    """A one-line description of what ran the benchmark."""
    try:
        import torch
        pytorch = f"PyTorch {torch.__version__} ({torch.get_num_threads()} threads)"
    except ImportError:
        pytorch = "no PyTorch"
    text = (f"{os.cpu_count()} CPU cores ({platform.machine()}), Python {platform.python_version()}, "
            f"NumPy {np.__version__}, {pytorch}")
    if device == "gpu":
        cp = tp.device.cupy_module()
        name = cp.cuda.runtime.getDeviceProperties(0)["name"].decode()
        text = f"{name}, CuPy {cp.__version__}, " + text
    return text


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cpu", choices=["cpu", "gpu"])
    p.add_argument("--cases", nargs="*", help="preset:BATCHxBLOCK, e.g. proust:8x256")
    p.add_argument("--steps", type=int, default=20, help="timed steps per framework and case")
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--generate", action="store_true", help="measure generation with and without the KV cache")
    p.add_argument("--new-tokens", type=int, default=500)
    p.add_argument("--no-numerical", action="store_true", help="skip the numerical-gradient comparison")
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
    args = p.parse_args(argv)
    if args.count and args.device == "gpu":
        print(f"machine: {machine(args.device)}\n")
        return print_gpu_counts(args.cases or COUNT_CASES)
    if args.count:
        return print_counts(args.cases or COUNT_CASES)
    if not args.no_reuse_memory:
        tp.device.reuse_host_memory()  # as train.py does; the whole process, so PyTorch's side gets it too
    print(f"machine: {machine(args.device)}\n")
    if torch_device_for(args.device) is None:
        print("PyTorch here has no CUDA: its columns are n/a\n")

    if args.bpe:
        bpe_speed()
        return

    if args.train_race:
        print("| run | train.py | PyTorch twin (SDPA) | ours / twin | our val loss (last) | twin val loss (last) | "
              "one evaluation, ours | one evaluation, twin |")
        print("|---|---|---|---|---|---|---|---|")
        train_race(args.train_steps)
        return

    if args.finetune:
        finetune_experiment(args.finetune[0], int(args.finetune[1]), args.lora_targets)
        print()
        quantization_table()
        return

    if args.hf_generate:
        print("| model | parameters | new tokens | ours (tok/s) | Transformers (tok/s) | ours / Transformers | "
              "same tokens |")
        print("|---|---|---|---|---|---|---|")
        hf_generation_race(args.new_tokens)
        return

    if args.tokenizer_race:
        print("| tokenizer | vocabulary | parameters | steps | best val loss (nats/token) | val bits per byte |")
        print("|---|---|---|---|---|---|")
        tokenizer_race(args.tokenizer_race)
        return

    if args.generate:
        print("| preset | context | new tokens | with cache (tok/s) | without (tok/s) | speed-up |")
        print("|---|---|---|---|---|---|")
        for preset in ("byte-gpt", "proust"):
            speeds = generation_speed(preset, args.new_tokens, args.device)
            block = preset_config(preset).block_size
            print(f"| {preset} | {block} (full) | {args.new_tokens} | {speeds[True]:,.0f} | {speeds[False]:,.0f} | "
                  f"{speeds[True] / speeds[False]:.1f}x |", flush=True)
        return

    if args.device == "cpu":
        print(f"peak float32 GFLOP/s: NumPy's BLAS on a 2048³ GEMM reaches {practical_peak_gflops():.0f} here\n")
    print("| case | batch x block | params | ours ms/step | PyTorch SDPA ms/step | ours / SDPA | PyTorch eager "
          "ms/step | ours / eager | ours tok/s | GFLOP/s ours / SDPA | our peak host memory |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for case in args.cases or DEFAULT_CASES[args.device]:
        preset, overrides, batch, block = parse_case(case)
        ms, peak, n = race(preset, batch, block, args.device, args.steps, args.warmup, overrides)
        flops = flops_per_step(preset_config(preset, block_size=block, **overrides), batch, block)
        tokens = batch * block
        memory = f"{peak / 2**20:.0f} MiB" if peak else "n/a"
        columns = [f"{ms[name]:.1f} | {ms['ours'] / ms[name]:.2f}" if name in ms else "n/a | n/a" for name in TWINS]
        gflops = " / ".join(f"{flops / ms[k] / 1e6:.0f}" if k in ms else "n/a" for k in ("ours", "sdpa"))
        print(f"| {case} | {batch} x {block} | {n:,} | {ms['ours']:.1f} | {' | '.join(columns)} | "
              f"{tokens / ms['ours'] * 1000:,.0f} | {gflops} | {memory} |", flush=True)

    if args.device == "cpu" and not args.no_numerical:
        numerical, autograd, n = numerical_gradient_step()
        print(f"\nnumerical-gradient step, byte-gpt, 1 x 32 tokens, {n:,} parameters: "
              f"{numerical:,.1f} s/step (extrapolated from 64 parameters); "
              f"our autograd step: {autograd * 1000:.1f} ms; "
              f"ratio {numerical / autograd:,.0f}x")


if __name__ == "__main__":
    main()
