"""The training-step race (bench.py without an experiment flag): ours against the PyTorch twin with SDPA and with
eager attention, alternating step by step (see bench.py's docstring), and the numerical-gradient step."""
import os
import platform
import statistics
import time
import tracemalloc

import numpy as np

import tinygrad_proust as tp
from benchmarks import PAUSE_S
from benchmarks.common import TWINS, our_step, parse_case, sync, torch_device_for, torch_step
from models.gpt import GPT, preset_config
from tinygrad_proust import optim

DEFAULT_CASES = {"cpu": ["nanogpt-cpu", "baby-gpt:8x128", "byte-gpt:16x128", "proust:8x256", "char-small:32x64"],
                 "gpu": ["proust:32x256", "byte-gpt:64x128", "baby-gpt:64x256"]}


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
    memory_steps = 1 if device == "cpu" else 0  # after the warm-up, one step untimed that measures our peak memory
    data = rng.integers(0, config.vocab_size, (steps + warmup + memory_steps, 2, batch, block))
    times = {"ours": [], **{name: [] for name in twins}}
    peak = 0
    for i in range(steps + warmup + memory_steps):
        x, y = tp.tensor(data[i, 0], device=device), tp.tensor(data[i, 1], device=device)
        measure_memory = memory_steps and i == warmup
        timed = i >= warmup and not measure_memory
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
        elif timed:
            times["ours"].append(elapsed)
        for name, (twin, twin_opt) in twins.items():
            tx, ty = (torch.from_numpy(data[i, j]).to(torch_device) for j in (0, 1))
            time.sleep(PAUSE_S)
            start = time.perf_counter()
            torch_step(torch, twin, twin_opt, tx, ty)
            if torch_device == "cuda":
                torch.cuda.synchronize()
            if timed:
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


def step_table(device, cases, steps, warmup, with_numerical=True):
    """bench.py's default: the training-step race, one row per case, then (on a CPU, with_numerical) the
    numerical-gradient step."""
    if device == "cpu":
        print(f"peak float32 GFLOP/s: NumPy's BLAS on a 2048³ GEMM reaches {practical_peak_gflops():.0f} here\n")
    print("| case | batch x block | params | ours ms/step | PyTorch SDPA ms/step | ours / SDPA | PyTorch eager "
          "ms/step | ours / eager | ours tok/s | GFLOP/s ours / SDPA | our peak host memory |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for case in cases or DEFAULT_CASES[device]:
        preset, overrides, batch, block = parse_case(case)
        ms, peak, n = race(preset, batch, block, device, steps, warmup, overrides)
        flops = flops_per_step(preset_config(preset, block_size=block, **overrides), batch, block)
        tokens = batch * block
        memory = f"{peak / 2**20:.0f} MiB" if peak else "n/a"
        columns = [f"{ms[name]:.1f} | {ms['ours'] / ms[name]:.2f}" if name in ms else "n/a | n/a" for name in TWINS]
        gflops = " / ".join(f"{flops / ms[k] / 1e6:.0f}" if k in ms else "n/a" for k in ("ours", "sdpa"))
        print(f"| {case} | {batch} x {block} | {n:,} | {ms['ours']:.1f} | {' | '.join(columns)} | "
              f"{tokens / ms['ours'] * 1000:,.0f} | {gflops} | {memory} |", flush=True)

    if device == "cpu" and with_numerical:
        numerical, autograd, n = numerical_gradient_step()
        print(f"\nnumerical-gradient step, byte-gpt, 1 x 32 tokens, {n:,} parameters: "
              f"{numerical:,.1f} s/step (extrapolated from 64 parameters); "
              f"our autograd step: {autograd * 1000:.1f} ms; "
              f"ratio {numerical / autograd:,.0f}x")
