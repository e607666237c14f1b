"""What a GPU training step asks of the device, phase by phase (bench.py --count): counted through the CuPy
stand-in, as real CuPy would run it (no GPU needed), or on a real GPU by CUPTI through PyTorch's profiler, ours
against PyTorch's."""
import sys
from pathlib import Path

import numpy as np

import tinygrad_proust as tp
from benchmarks.common import our_step, parse_case, sync, torch_step, twin_groups
from benchmarks.steps import machine
from models.gpt import GPT, preset_config
from tinygrad_proust import optim

PHASES = ("batch", "forward", "dropout masks", "backward", "clipping", "optimizer")
COUNT_CASES = ["proust:32x256", "byte-gpt:64x128", "baby-gpt:64x256"]
BENCH = Path(__file__).resolve().parent.parent / "bench.py"  # print_gpu_counts runs it once per case


def use_standin():
    """The CuPy stand-in (tests/cupy_standin) as `cupy` in this process: it counts what real CuPy would launch."""
    # The stand-in is the test suite's model of CuPy (it stays in tests/, next to the tests that check it against
    # real CuPy's names); borrowed here to count a GPU step's launches on a machine without a GPU.
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
    from cupy_standin import install
    if getattr(sys.modules.get("cupy"), "is_standin", False) is False:
        install()
        tp.device._cupy = None
    return sys.modules["cupy_standin"]


def count_step(preset, batch, block, overrides=None, extrapolate=True, by="phase"):
    """What one training step (the second, so AdamW's state exists) asks of a GPU, phase by phase, counted through
    the CuPy stand-in: {phase: {kind: [calls, bytes]}}; by="op": {op: ...}, by the op's forward or backward (or
    the engine's or optimizer's function) that made each call; by=("phase", "op"): both. Every count but bytes is
    independent of the batch
    size, and bytes are affine in it (activations scale with the batch, parameters do not): the step runs at
    batches 1 and 2 and the bytes are extrapolated to `batch` (a test checks that against a step run at the batch
    itself, which extrapolate=False does)."""
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
        tables.append({"phase": counts.table, "op": counts.by_op})
    result = {}
    for key in ("phase", "op"):
        one, two = tables[0][key], tables[1][key]
        assert {p: {k: c for k, (c, _) in row.items()} for p, row in one.items()} == \
               {p: {k: c for k, (c, _) in row.items()} for p, row in two.items()}, "counts depend on the batch size"
        result[key] = two if not extrapolate else {
            group: {kind: [calls, one[group][kind][1] + (batch - 1) * (nbytes - one[group][kind][1])]
                    for kind, (calls, nbytes) in row.items()} for group, row in two.items()}
    return result[by] if isinstance(by, str) else tuple(result[key] for key in by)


def print_counts(cases, by_op=False):
    """One table per case: kernels, bytes and the rest, per phase of a training step; with by_op, a second one by
    the op (forward or backward) that launched them, the ops moving the most bytes first."""
    standin = use_standin()
    KERNELS, OTHERS = standin.KERNELS, standin.OTHERS

    def print_table(table, title, rows):
        print(f"| {title} | kernels | GB read + written | " + " | ".join(KERNELS + OTHERS) + " |")
        print("|---" * (3 + len(KERNELS + OTHERS)) + "|")
        for row in rows + ["step"]:
            keys = None if row == "step" else [row]
            name = f"**{row}**" if row == "step" else row
            print(f"| {name} | {standin.total(table, 'kernels', keys):,} | "
                  f"{standin.total(table, 'bytes', keys) / 1e9:.3f} | "
                  + " | ".join(f"{standin.total(table, k, keys):,}" for k in KERNELS + OTHERS) + " |")

    for case in cases:
        preset, overrides, batch, block = parse_case(case)
        table, ops = count_step(preset, batch, block, overrides, by=("phase", "op"))
        print(f"\n{case}: one training step (forward, backward, clipping 1.0, AdamW), as CuPy would run it\n")
        print_table(table, "phase", [p for p in PHASES if p in table] + [p for p in table if p not in PHASES])
        if by_op:
            print(f"\n{case}, by op:\n")
            print_table(ops, "op", sorted(ops, key=lambda op: (-standin.total(ops, "bytes", [op]), op)))


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


def print_gpu_counts(cases):
    """Kernels per training step counted on the real GPU, ours against PyTorch's, beside the stand-in's model of
    ours (bench.py --count, run in its own process: the stand-in replaces CuPy where it is installed)."""
    import subprocess
    print("| case | ours: kernels on the GPU | memcpy | memset | the stand-in's model: kernels | "
          "PyTorch SDPA: kernels | memcpy | memset | ours / PyTorch (kernels) |")
    print("|---|---|---|---|---|---|---|---|---|")
    for case in cases:
        modelled = subprocess.run([sys.executable, str(BENCH), "--count", "--cases", case], capture_output=True,
                                  text=True, check=True).stdout
        step_row = [line for line in modelled.splitlines() if line.startswith("| **step**")][0]
        model_kernels = step_row.split("|")[2].strip()
        preset, overrides, batch, block = parse_case(case)
        counts = count_on_gpu(preset, batch, block, overrides)
        ours, sdpa = counts["ours"], counts["sdpa"]
        print(f"| {case} | {ours['kernels']:,} | {ours['memcpy']} | {ours['memset']} | {model_kernels} | "
              f"{sdpa['kernels']:,} | {sdpa['memcpy']} | {sdpa['memset']} | "
              f"{ours['kernels'] / max(sdpa['kernels'], 1):.2f} |", flush=True)


def launch_counts(cases, device, by_op=False):
    """bench.py --count: the stand-in's tables of a GPU training step, one per case (by_op: and by op); with device
    "gpu", the kernels counted on the real GPU, ours against PyTorch's."""
    cases = cases or COUNT_CASES
    if device == "gpu":
        print(f"machine: {machine(device)}\n")
        return print_gpu_counts(cases)
    return print_counts(cases, by_op)
