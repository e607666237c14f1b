"""The GPU smoke: one command that settles whether `train.py --device gpu` works, how exactly, and how fast.

    python3 gpu_smoke.py --prepare     # once, where there is network: the default corpus into .gpu_smoke/
    python3 gpu_smoke.py               # on the machine with the GPU: 3-6 minutes on an H100/H200, a table at the end
    python3 gpu_smoke.py --timeout-scale 3     # a slower GPU (a Colab T4): every stage's timeout times 3
    python3 gpu_smoke.py --dry-run     # the same plumbing on the CuPy stand-in with tiny settings (CI runs it)
    python3 gpu_smoke.py --make-reference  # the CPU run the train stage is compared with (gpu_smoke_reference.json)

Stages, in order, each under its own timeout, each printing its seconds and a one-line verdict; a failed stage
does not stop the next:
  versions  Python, NumPy, CuPy, CUDA, the GPU's name, PyTorch
  tests     the GPU test cases on the real CuPy (pytest --gpu=real -k "gpu and not smoke"); failures named
  train     train.py --device gpu --preset proust --batch-size 32 for 300 steps on the default corpus: its
            validation loss at the last step against the CPU's (gpu_smoke_reference.json, with its tolerance)
  resume    the same run stopped halfway and resumed: its weights against the straight run's
  generate  generate.py --device gpu from that checkpoint, with and without the KV cache
  bench     bench.py --device gpu: ours against PyTorch with SDPA and with eager attention
  launches  bench.py --count --device gpu: kernels of one training step counted on the GPU (CUPTI, through
            PyTorch's profiler), ours against PyTorch's and against the stand-in's model of ours
  kernels   how many distinct GPU kernels CuPy compiled (the files in its kernel cache, a fresh one for this run)
Everything the stages print goes to the log (--log); the screen gets the verdicts and the benchmark's table,
which fit in the last 12,000 characters of the output. The exit status is 1 if any stage failed.
"""
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from models.cli import Parser, chosen_mode, integer, real

ROOT = Path(__file__).resolve().parent
CARRIED = ROOT / ".gpu_smoke"                    # the corpus to carry to a machine without network (git ignores it)
REFERENCE = ROOT / "gpu_smoke_reference.json"

# the headline run: the proust model at the batch its author trained with, a few hundred steps
STEPS = 300
RUN = ["--preset", "proust", "--batch-size", "32", "--eval-batches", "20", "--sample-tokens", "0", "--seed", "1337"]
# the dry run: the same stages on a tiny model and corpus, through the stand-in
DRY_STEPS = 6
DRY_RUN = ["--preset", "proust", "--n-layer", "1", "--n-embd", "16", "--n-head", "2", "--ffn-hidden", "32",
           "--block-size", "16", "--batch-size", "4", "--eval-batches", "2", "--sample-tokens", "0", "--warmup", "2",
           "--seed", "1337"]
DRY_TEXT = "to be or not to be, that is the question; whether tis nobler in the mind to suffer\n" * 40

# what the stand-in's subprocesses run first: the scripts then see the stand-in as `cupy`
STANDIN_BOOT = ("import sys, runpy; sys.path.insert(0, 'tests'); from cupy_standin import install; install(); "
                "sys.argv = sys.argv[1:]; runpy.run_path(sys.argv[0], run_name='__main__')")

VERSIONS = """
import platform, numpy
print("python", platform.python_version(), "| numpy", numpy.__version__)
import tinygrad_proust as tp
cp = tp.device.cupy_module()
props = cp.cuda.runtime.getDeviceProperties(0)
if b"stand-in" in props["name"]:
    print("gpu: none, the CuPy stand-in (NumPy underneath)")
else:
    print("gpu", props["name"].decode(), "| memory", props["totalGlobalMem"] // 2**20, "MiB",
          "| compute capability", f"{props['major']}.{props['minor']}")
    print("cupy", cp.__version__, "| CUDA runtime", cp.cuda.runtime.runtimeGetVersion(),
          "| driver", cp.cuda.runtime.driverGetVersion())
try:
    import torch
    print("torch", torch.__version__, "| CUDA", torch.cuda.is_available())
except ImportError:
    print("torch: not installed (the benchmark's PyTorch columns will be n/a)")
"""


class StageFailed(Exception):
    """A stage's one-line verdict when it failed."""


class Smoke:
    def __init__(self, args):
        self.args = args
        self.dry = args.dry_run
        self.steps = DRY_STEPS if self.dry else args.steps
        self.run_flags = DRY_RUN if self.dry else RUN
        self.work = Path(tempfile.mkdtemp(prefix="gpu_smoke_"))
        self.log = open(args.log, "w", encoding="utf-8")
        self.rows = []
        self.env = {**os.environ, "PYTHONUNBUFFERED": "1", "TQDM_DISABLE": "1", "PYTHONPATH": str(ROOT),
                    "CUPY_CACHE_DIR": str(self.work / "kernels")}
        if (CARRIED / "cache" / "shakespeare.txt").exists():
            self.env["TINYGRAD_PROUST_CACHE"] = str(CARRIED / "cache")
        self.data = []
        if self.dry:
            corpus = self.work / "corpus.txt"
            corpus.write_text(DRY_TEXT)
            self.data = ["--data", str(corpus)]

    # ---- running things ----
    def python(self, script, *args):
        if self.dry:
            return [sys.executable, "-c", STANDIN_BOOT, script, *args]
        return [sys.executable, script, *args]

    def run(self, command, timeout):
        """Run one command from the repository root, its output into the log; (exit status, output)."""
        self.log.write(f"\n$ {' '.join(command)}\n")
        self.log.flush()
        try:
            done = subprocess.run(command, cwd=ROOT, env=self.env, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired as e:
            output = (e.stdout or b"").decode() if isinstance(e.stdout, bytes) else (e.stdout or "")
            self.log.write(output + f"\n[timed out after {timeout:.0f} s]\n")
            raise StageFailed(f"timed out after {timeout:.0f} s: {' '.join(command[-6:])}") from None
        self.log.write(done.stdout + done.stderr)
        self.log.flush()
        return done.returncode, done.stdout + done.stderr

    def run_ok(self, command, timeout):
        status, output = self.run(command, timeout)
        if status != 0:
            last = [line for line in output.strip().splitlines() if line.strip()][-1:] or ["(no output)"]
            raise StageFailed(f"exit status {status}: {last[0][:200]}")
        return output

    def stage(self, name, timeout, body):
        start = time.monotonic()
        print(f"-- {name} (at most {timeout:g} s) ...", flush=True)
        try:
            verdict, ok = body(timeout), True
        except StageFailed as e:
            verdict, ok = f"FAILED: {e}", False
        except Exception as e:  # a bug in a stage must not stop the others
            verdict, ok = f"FAILED: {type(e).__name__}: {e}", False
        seconds = time.monotonic() - start
        self.rows.append((name, seconds, verdict, ok))
        print(f"   {name}: {seconds:.1f} s: {verdict}", flush=True)

    # ---- the stages ----
    def versions(self, timeout):
        script = self.work / "versions.py"
        script.write_text(VERSIONS)
        lines = self.run_ok(self.python(str(script)), timeout).strip().splitlines()
        for line in lines:
            print("   " + line)
        self.gpu = next((line for line in lines if line.startswith("gpu")), "gpu: unknown")
        return self.gpu

    def tests(self, timeout):
        selection = ["-k", "gpu_path and (dropout_masks or both_devices)"] if self.dry else ["-k", "gpu and not smoke"]
        gpu = "--gpu=standin" if self.dry else "--gpu=real"
        status, output = self.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", gpu, *selection,
                                   "tests"], timeout)
        summary = [line for line in output.splitlines() if " passed" in line or " failed" in line or "error" in line]
        verdict = summary[-1].strip("= ") if summary else "no summary line"
        if status != 0:
            for line in [line for line in output.splitlines() if line.startswith(("FAILED", "ERROR"))][:20]:
                print("   " + line[:300])
            raise StageFailed(verdict)
        return verdict

    def train_command(self, device, out_dir, steps, *extra):
        return self.python("train.py", *self.run_flags, *self.data, "--device", device, "--steps", str(steps),
                           "--eval-interval", str(self.steps // 2), "--lr-decay-steps", str(self.steps),
                           "--out-dir", str(out_dir), "--overwrite", *extra)

    def train(self, timeout):
        out = self.work / "straight"
        start = time.monotonic()
        self.run_ok(self.train_command("gpu", out, self.steps), timeout)
        seconds = time.monotonic() - start
        val = last_validation(out)
        reference = self.reference()
        timing = (f"{seconds:.0f} s for {self.steps} steps and 2 evaluations, process start included "
                  f"({val['tokens'] / max(val['elapsed_s'], seconds / 100):,.0f} tokens/s)")
        if reference is None:
            return f"val loss {val['val_loss']:.4f} at step {val['step']} (no CPU reference for this run); {timing}"
        difference = abs(val["val_loss"] - reference["val_loss"])
        verdict = (f"val loss {val['val_loss']:.4f} at step {val['step']}, CPU {reference['val_loss']:.4f}: "
                   f"|difference| {difference:.4f} (tolerance {reference['tolerance']}); {timing}")
        if difference > reference["tolerance"]:
            raise StageFailed(verdict)
        return verdict

    def reference(self):
        """The CPU's run of the same settings: gpu_smoke_reference.json, or in a dry run one made now."""
        if self.dry:
            out = self.work / "cpu"
            self.run_ok(self.train_command("cpu", out, self.steps), 120)
            # the stand-in runs the GPU's strategies on NumPy: the same math, the gradient norm summed in another order
            return {"val_loss": last_validation(out)["val_loss"], "tolerance": 1e-4}
        if not REFERENCE.exists():
            return None
        reference = json.loads(REFERENCE.read_text())
        return reference if reference["flags"] == self.reference_flags() else None

    def reference_flags(self):
        return [*self.run_flags, "--steps", str(self.steps)]

    def resume(self, timeout):
        halves = self.work / "halves"
        self.run_ok(self.train_command("gpu", halves, self.steps // 2), timeout / 2)
        self.run_ok(self.python("train.py", "--resume", str(halves / "last.npz"), "--steps", str(self.steps)),
                    timeout / 2)
        straight, resumed = (np.load(self.work / run / "last.npz") for run in ("straight", "halves"))
        names = [name for name in straight.files if name.startswith("model/")]
        worst = max(np.abs(resumed[n] - straight[n]).max() / max(np.abs(straight[n]).max(), 1e-30) for n in names)
        if worst == 0:
            return f"bitwise equal to the straight run ({len(names)} weights)"
        verdict = f"largest relative difference from the straight run {worst:.2g} ({len(names)} weights)"
        if worst > 1e-4:
            raise StageFailed(verdict)
        return verdict + ", within 1e-4"

    def generate(self, timeout):
        texts, speeds = [], []
        tokens = 40 if self.dry else 300
        for extra in ([], ["--no-cache"]):
            output = self.run_ok(self.python("generate.py", "--checkpoint", str(self.work / "straight" / "last.npz"),
                                             "--device", "gpu", "--prompt", "to be" if self.dry else "ROMEO.",
                                             "--max-new-tokens", str(tokens), "--seed", "1", *extra), timeout / 2)
            speed = re.search(r"^\[\d+ tokens in [\d.]+ s: (\d+) tokens/s\]$", output, re.M)
            if speed is None:
                raise StageFailed("generate.py printed no speed line")
            texts.append(output[:speed.start()])
            speeds.append(speed.group(1))
        same = "the same text" if texts[0] == texts[1] else "different texts"
        return f"{tokens} tokens at {speeds[0]} tokens/s with the KV cache, {speeds[1]} without: {same}"

    def bench(self, timeout):
        cases = ["--cases", "raven:2x8", "--steps", "1", "--warmup", "1"] if self.dry else []
        output = self.run_ok(self.python("bench.py", "--device", "gpu", *cases), timeout)
        table = [line for line in output.splitlines() if line.startswith("|")]
        self.bench_table = table
        return f"{max(len(table) - 2, 0)} cases raced (table below)"

    def launches(self, timeout):
        # the stand-in has no GPU to count on: a dry run checks the plumbing with the stand-in's own count
        device = [] if self.dry else ["--device", "gpu"]
        cases = ["--cases", "raven:2x8"] if self.dry else []
        output = self.run_ok(self.python("bench.py", "--count", *device, *cases), timeout)
        table = [line for line in output.splitlines() if line.startswith("|")]
        self.bench_table += [""] + table
        return f"{max(len(table) - 2, 0)} rows counted (table below)"

    def kernels(self, timeout):
        cache = Path(self.env["CUPY_CACHE_DIR"])
        files = [p for p in cache.rglob("*") if p.is_file()] if cache.exists() else []
        return f"{len(files)} distinct kernels compiled by CuPy in this run" + (
            " (the stand-in compiles none)" if self.dry else "")

    # ---- the whole ----
    def main(self):
        self.bench_table = []
        timeouts = DRY_TIMEOUTS if self.dry else TIMEOUTS
        for name in ("versions", "tests", "train", "resume", "generate", "bench", "launches", "kernels"):
            self.stage(name, timeouts[name] * self.args.timeout_scale, getattr(self, name))
        self.log.close()
        print(f"\n{machine_line(self.dry)}\n")
        print("| stage | seconds | verdict |\n|---|---|---|")
        for name, seconds, verdict, _ in self.rows:
            print(f"| {name} | {seconds:.1f} | {verdict} |")
        if self.bench_table:
            print("\n" + "\n".join(self.bench_table))
        failed = [name for name, _, _, ok in self.rows if not ok]
        print(f"\nsmoke: {len(self.rows) - len(failed)} of {len(self.rows)} stages passed"
              + (f"; failed: {', '.join(failed)}" if failed else "") + f"; the whole output is in {self.args.log}")
        shutil.rmtree(self.work, ignore_errors=True)
        return 1 if failed else 0


# seconds each stage may take: 6 minutes in all, cold kernel compilation included
# each stage's seconds on an H200 (2026-12-04: 7-9, 38-45, 10-14, 8-11, 5-7, 19-22 and 13-18 s), with room for a
# cold kernel cache and a busier host (2.5x and more)
TIMEOUTS = {"versions": 20, "tests": 100, "train": 60, "resume": 50, "generate": 25, "bench": 45, "launches": 50,
            "kernels": 5}
DRY_TIMEOUTS = {"versions": 30, "tests": 120, "train": 120, "resume": 120, "generate": 60, "bench": 60,
                "launches": 60, "kernels": 5}


def last_validation(out_dir):
    rows = [json.loads(line) for line in (Path(out_dir) / "metrics.jsonl").read_text().splitlines() if line.strip()]
    if not rows:
        raise StageFailed(f"{out_dir}/metrics.jsonl has no evaluation")
    return rows[-1]


def machine_line(dry):
    cpu, flags = platform.machine(), set()
    try:
        info = Path("/proc/cpuinfo").read_text().splitlines()
        cpu = next(line.split(":", 1)[1].strip() for line in info if line.startswith("model name"))
        flags = set(next(line.split(":", 1)[1].split() for line in info if line.startswith("flags")))
    except (OSError, StopIteration):
        pass
    isa = " + ".join(name for name, flag in (("AVX-512", "avx512f"), ("AVX2", "avx2"), ("AMX", "amx_tile"))
                     if flag in flags and not (name == "AVX2" and "avx512f" in flags)) or "no AVX2"
    where = "the CuPy stand-in" if dry else "the GPU named in the versions stage"
    return (f"machine: {where}; host CPU {cpu} ({isa}), {os.cpu_count()} cores, NumPy {np.__version__}; "
            f"{time.strftime('%Y-%m-%d')}")


def prepare():
    """Copy the default corpus (fetched once, with network) where the smoke finds it on a machine without."""
    sys.path.insert(0, str(ROOT))
    from models.corpus import default_corpus
    target = CARRIED / "cache" / "shakespeare.txt"
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(default_corpus(), target)
    print(f"{target.relative_to(ROOT)}: {target.stat().st_size:,} bytes; carry the folder .gpu_smoke with the "
          "repository to the GPU machine (git ignores it)")


# The reference is trained twice on the CPU, with the machine's own BLAS kernels and threads and with OpenBLAS's
# AVX kernels on one thread: two float32 roundings of the same run. A GPU's rounding is a third; the tolerance is
# ten times the gap the two CPU runs show, and never under 0.01 nats.
OTHER_ROUNDING = {"OPENBLAS_CORETYPE": "Sandybridge", "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}


def make_reference(steps):
    """Train the smoke's run on the CPU, twice, and write its last validation loss with a tolerance."""
    flags = [*RUN, "--steps", str(steps)]
    losses = []
    for extra_env in ({}, OTHER_ROUNDING):
        with tempfile.TemporaryDirectory() as tmp:
            subprocess.run([sys.executable, "train.py", *flags, "--eval-interval", str(steps // 2), "--lr-decay-steps",
                            str(steps), "--device", "cpu", "--out-dir", tmp, "--overwrite"], cwd=ROOT, check=True,
                           env={**os.environ, "TQDM_DISABLE": "1", **extra_env})
            val = last_validation(tmp)
        losses.append(val["val_loss"])
        print(f"CPU run {len(losses)} ({extra_env or 'default rounding'}): val loss {val['val_loss']:.5f}")
    reference = {"flags": flags, "step": val["step"], "val_loss": round(losses[0], 5),
                 "val_loss_other_rounding": round(losses[1], 5),
                 "tolerance": round(max(0.01, 10 * abs(losses[0] - losses[1])), 4),
                 "machine": machine_line(False).split("host CPU ")[1], "other_rounding": OTHER_ROUNDING}
    REFERENCE.write_text(json.dumps(reference, indent=1) + "\n")
    print(f"wrote {REFERENCE.name}: {reference}")


# each mode (named by its option; the default, the smoke on a GPU, by "default") and the options it reads
MODES = {"default": {"steps", "log", "timeout_scale"}, "prepare": set(), "make_reference": {"steps"},
         "dry_run": {"log", "timeout_scale"}}


def build_parser():
    p = Parser(description=__doc__)
    p.add_argument("--prepare", action="store_true", help="copy the default corpus into .gpu_smoke/ and exit")
    p.add_argument("--dry-run", action="store_true", help="tiny settings through the CuPy stand-in (no GPU)")
    p.add_argument("--make-reference", action="store_true",
                   help="train the smoke's run on the CPU and print its last validation loss")
    p.add_argument("--steps", type=integer(2), default=STEPS,  # the resume stage trains half of them
                   help=f"training steps of the train stage (default {STEPS}; the dry run trains {DRY_STEPS})")
    p.add_argument("--log", default=str(Path(tempfile.gettempdir()) / "gpu_smoke.log"),
                   help="where every stage's whole output goes (on a lent machine: under $OUT, to get it back)")
    p.add_argument("--timeout-scale", type=real(0, low_open=True), default=1.0,
                   help="multiply every stage's timeout (e.g. 3 on a Colab T4, slower than an H100/H200)")
    return p


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    chosen_mode(parser, argv, MODES, "the smoke")  # --dry-run trains its own tiny steps
    if args.prepare:
        return prepare()
    if args.make_reference:
        return make_reference(args.steps)
    return Smoke(args).main()


if __name__ == "__main__":
    sys.exit(main())
