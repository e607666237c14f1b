"""The GPU path, on a real GPU when CuPy sees one and otherwise through the strict CuPy stand-in: tensors made
from CuPy data, device errors everywhere, either device's arrays accepted, the same dropout masks on both devices,
a training step on both within float64 truth's tolerance, the GPU's whole-group AdamW equal to the CPU's
parameter-by-parameter one, no host sync inside a step, the scripts with --device gpu (every preset, an exact
resume with dropout, cached and uncached generation, the benchmark), and a static check that every CuPy name the
code uses exists in every supported CuPy version.

Where the GPU's results cannot match the CPU's bit for bit, the tests say so and use a stated tolerance: where the
framework picks another strategy for a GPU (device.launch_bound: one dot product for the gradient norm, attention
over all query rows), where Embedding's backward over a large vocabulary scatters with atomic adds (cupy.add.at,
whose order varies from run to run), and where cuBLAS sums in its own order. The same arithmetic on the same
device is bitwise equal, on the stand-in and on a real GPU.
"""
import ast
import builtins
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pytest

import bench
import generate
import test_autograd
import tinygrad_proust as tp
import train
from models.gpt import GPT, GPTConfig, PRESETS
from models.tokenizer import CharTokenizer
from tinygrad_proust import device as device_module
from tinygrad_proust import functional as F, kernels, optim
from tinygrad_proust.checkpoint import load_checkpoint, save_checkpoint

ROOT = Path(__file__).resolve().parent.parent
REAL_GPU_RTOL = 1e-4  # atomic adds in Embedding's backward and cuBLAS's summation order
TINY = dict(vocab_size=13, block_size=8, n_layer=2, n_head=2, n_embd=16, ffn_hidden=32)


@pytest.fixture
def gpu(request):
    if request.config.gpu_mode == "none" or not tp.gpu_available():
        pytest.skip("no GPU and no stand-in (--gpu=none or --gpu=real without a GPU)")
    return device_module.cupy_module()


@pytest.fixture
def rtol(request):
    """0: bitwise (the stand-in); a real GPU gets the stated tolerance."""
    return 0.0 if request.config.gpu_mode == "standin" else REAL_GPU_RTOL


def close(a, b, rtol):
    if rtol == 0:
        np.testing.assert_array_equal(a, b)
    else:
        np.testing.assert_allclose(a, b, rtol=rtol, atol=rtol * 1e-2)


# ---- tensors and devices ----

def test_tensors_made_from_cupy_data_stay_on_the_gpu_and_work_at_once(gpu, monkeypatch):
    monkeypatch.setattr(device_module, "_cupy", None)           # as in a fresh process: nothing asked for "gpu"
    t = tp.Tensor(gpu.ones(3, dtype=np.float32))
    assert t.device == "gpu" and (t * 2).sum().item() == 6.0
    assert tp.tensor(gpu.arange(3)).device == "gpu"             # tp.tensor keeps data where it is, as PyTorch
    assert tp.tensor(np.arange(3)).device == "cpu"


@pytest.mark.parametrize("case", ["target", "mask", "indices", "index", "condition", "attn_mask"])
def test_an_array_on_the_other_device_is_a_device_error_naming_the_op(gpu, case):
    x = tp.randn(4, 3)
    on_gpu = lambda a: gpu.asarray(np.asarray(a))
    calls = {
        "target": lambda: F.cross_entropy(x, tp.tensor(on_gpu([0, 1, 2, 0]))),
        "mask": lambda: x.masked_fill(tp.tensor(on_gpu(np.eye(4, 3, dtype=bool))), 0.0),
        "indices": lambda: F.embedding(tp.tensor(on_gpu([0, 1])), tp.randn(5, 2)),
        "index": lambda: x[tp.tensor(on_gpu([0, 2]))],
        "condition": lambda: F.where(tp.tensor(on_gpu(np.ones((4, 3), dtype=bool))), x, 0.0),
        "attn_mask": lambda: F.scaled_dot_product_attention(*(tp.randn(1, 2, 4, 3) for _ in range(3)),
                                                            attn_mask=on_gpu(np.ones((4, 4), dtype=bool))),
    }
    op = {"target": "CrossEntropy", "mask": "MaskedFill", "indices": "Embedding", "index": "GetItem",
          "condition": "Where", "attn_mask": "ScaledDotProductAttention"}[case]
    with pytest.raises(tp.DeviceError, match=rf"{op}: \w+ is on gpu but the input is on cpu"):
        calls[case]()


def test_load_state_dict_generate_and_stream_take_either_devices_arrays(gpu):
    model = GPT(GPTConfig(**TINY))
    state = {name: gpu.asarray(t.numpy() * 2) for name, t in model.state_dict().items()}
    model.load_state_dict(state)
    np.testing.assert_array_equal(model.wte.weight.numpy(), state["wte.weight"].get())
    prompt = np.array([[1, 2, 3]])
    expected = model.generate(prompt, 4, temperature=0)
    np.testing.assert_array_equal(model.generate(gpu.asarray(prompt), 4, temperature=0), expected)
    np.testing.assert_array_equal(model.generate(tp.tensor(gpu.asarray(prompt)), 4, temperature=0), expected)
    assert [int(t[0]) for t in model.stream(gpu.asarray(prompt), 4, temperature=0)] == list(expected[0, 3:])


def test_cpu_and_gpu_draw_the_same_dropout_masks(gpu):
    tp.manual_seed(5)
    on_cpu = F.dropout(tp.ones(3, 50), 0.3).numpy()
    tp.manual_seed(5)
    on_gpu = F.dropout(tp.ones(3, 50, device="gpu"), 0.3).numpy()
    np.testing.assert_array_equal(on_cpu, on_gpu)
    assert 0.5 < (on_cpu > 0).mean() < 0.9


def _with_and_without_kernels(run, monkeypatch, kernel):
    """run() with the compiled kernels, then with the plain path, on the same seed: the two results. Each kernel
    launch is counted: the first run must launch `kernel`, the second nothing (else both took the plain path)."""
    launched, function = [], kernels._function

    def counted(xp, name, dtype):
        launched.append(name)
        return function(xp, name, dtype)
    monkeypatch.setattr(kernels, "_function", counted)
    results = []
    for compiled in (True, False):
        monkeypatch.setattr(kernels, "enabled", compiled)
        tp.manual_seed(3)
        count = len(launched)
        results.append(run())
        assert (kernel in launched[count:]) if compiled else len(launched) == count, (compiled, launched[count:])
    return results


@pytest.mark.parametrize("index", test_autograd.BASIC_INDICES, ids=repr)
def test_every_basic_index_adds_its_gradient_on_the_gpu_too(gpu, index):
    """As on the CPU: CuPy gives a 0-d view for a single element where NumPy gives a number."""
    test_autograd.test_every_basic_index_adds_its_gradient_where_its_values_came_from(index, device="gpu")


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_the_compiled_dropout_mask_is_the_plain_paths_bit_for_bit(gpu, monkeypatch, dtype):
    """kernels.keep_mask (one launch) against functional._keep_mask's CuPy calls and the CPU's NumPy: integer hashing
    and one comparison, so equal bit for bit; an odd size (the last word's high half unused), and the stream left
    at the same position for the next mask."""
    def draw(where):
        x = tp.ones(5, 7, 3, device=where, dtype=dtype)
        return [F.dropout(x, p).numpy() for p in (0.1, 0.5, 0.9)] + [F.dropout(x, 0.3).numpy()]
    masks = dict(zip([("gpu", True), ("gpu", False)], _with_and_without_kernels(lambda: draw("gpu"), monkeypatch,
                                                                               "keep_mask")))
    tp.manual_seed(3)
    masks["cpu", False] = draw("cpu")
    for key in (("gpu", False), ("gpu", True)):
        for a, b in zip(masks["cpu", False], masks[key]):
            assert a.dtype == b.dtype == np.dtype(dtype)
            np.testing.assert_array_equal(a, b, err_msg=str(key))
    kept = [(m > 0).mean() for m in masks["gpu", True][:3]]  # p = 0.1, 0.5, 0.9 of 105 elements
    assert 0.8 < kept[0] < 1 and 0.35 < kept[1] < 0.65 and 0 < kept[2] < 0.2, kept


@pytest.mark.parametrize("optimizer", ["Adam", "AdamW"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_the_compiled_adam_step_is_the_plain_update_bit_for_bit(gpu, monkeypatch, optimizer, dtype):
    """kernels.adam (one launch for a group) against optim.Adam.update's CuPy calls, three steps with weight decay
    (L2 for Adam, decoupled for AdamW): the same operations in the same order, each rounded once (the kernel is
    compiled without fused multiply-adds), so equal bit for bit, the moments too."""
    rng = np.random.default_rng(0)
    weights, grads = rng.standard_normal((2, 1000)).astype(dtype), rng.standard_normal((3, 2, 1000)).astype(dtype)

    def run():
        params = [tp.tensor(w, device="gpu", requires_grad=True) for w in weights]
        opt = getattr(optim, optimizer)([{"params": params, "weight_decay": 0.1}], lr=1e-2)
        for step_grads in grads:
            for p, g in zip(params, step_grads):
                p.grad = tp.tensor(g, device="gpu")
            opt.step()
        return [p.numpy() for p in params], [tp.tensor(s["exp_avg_sq"]).numpy() for s in opt.state]
    runs = _with_and_without_kernels(run, monkeypatch, "adam")
    for a, b in zip(*(weights + moments for weights, moments in runs)):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(runs[0][0][0], weights[0])


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_the_compiled_gelu_is_the_plain_paths_bit_for_bit(gpu, monkeypatch, dtype):
    """GELU's tanh form and its gradient, one launch each, against fused.GeluTanh's plain lines: the same operations in
    the same order, so equal bit for bit, far in both tails too (exp overflows to inf left of -10)."""
    x = np.concatenate([np.linspace(-30, 30, 601), np.random.default_rng(0).standard_normal(400)]).astype(dtype)
    g = np.random.default_rng(1).standard_normal(x.size).astype(dtype)

    def run():
        t = tp.tensor(x, device="gpu", requires_grad=True)
        y = F.gelu(t, approximate="tanh")
        y.backward(tp.tensor(g, device="gpu"))
        return y.numpy(), t.grad.numpy()
    (y_fast, dx_fast), (y_plain, dx_plain) = _with_and_without_kernels(run, monkeypatch, "gelu_tanh_backward")
    np.testing.assert_array_equal(y_fast, y_plain)
    np.testing.assert_array_equal(dx_fast, dx_plain)
    assert np.isfinite(dx_fast).all() and y_fast[0] == 0 and dx_fast[0] == 0


@pytest.mark.parametrize("dtype, rtol", [("float32", 1e-5), ("float64", 1e-13)])
@pytest.mark.parametrize("case", ["causal", "full", "causal, dropout", "causal, 5 queries of 8 keys"])
def test_the_compiled_attention_softmax_matches_the_plain_path(gpu, monkeypatch, dtype, rtol, case):
    """Attention's softmax (causal mask and dropout inside) and its backward, a row a warp, against the plain lines
    of fused.ScaledDotProductAttention: each row's sum is taken in another order, so equal within the dtype's
    rounding (a few units in the last place, more where dS cancels), not bit for bit; the same dropout mask."""
    rng = np.random.default_rng(0)
    T = 5 if "5 queries" in case else 8
    q, k, v = (rng.standard_normal(shape).astype(dtype) for shape in ((2, 3, T, 4), (2, 3, 8, 4), (2, 3, 8, 4)))
    g = rng.standard_normal((2, 3, T, 4)).astype(dtype)

    def run():
        ts = [tp.tensor(a, device="gpu", requires_grad=True) for a in (q, k, v)]
        out = F.scaled_dot_product_attention(*ts, is_causal="causal" in case,
                                             dropout_p=0.3 if "dropout" in case else 0.0)
        out.backward(tp.tensor(g, device="gpu"))
        return [out.numpy()] + [t.grad.numpy() for t in ts]
    fast, plain = _with_and_without_kernels(run, monkeypatch, "attention_softmax_backward")
    for name, a, b in zip(["out", "dq", "dk", "dv"], fast, plain):
        np.testing.assert_allclose(a, b, rtol=rtol, atol=rtol, err_msg=name)


@pytest.mark.parametrize("arch", ["sm_75", "sm_90"])  # a Colab T4; an H100/H200
def test_the_kernels_compile_for_a_t4_and_for_hopper(nvcc, tmp_path, arch):
    """kernels.SOURCE as CuPy compiles it (same options, both dtypes), by nvcc here: an edit that breaks the CUDA
    fails on a machine without a GPU. (Whether it computes the right thing: the tests above, on a real GPU.)"""
    source = tmp_path / "kernels.cu"
    source.write_text(kernels.SOURCE)
    for scalar in kernels.TYPES.values():
        done = subprocess.run([nvcc, *kernels.OPTIONS, f"-Dscalar_t={scalar}", f"-arch={arch}", "--cubin", "-o",
                               str(tmp_path / f"{scalar}.cubin"), str(source)], capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
        assert (tmp_path / f"{scalar}.cubin").stat().st_size > 1000


def train_two_steps(device, dtype="float32"):
    # Adam's step g / (sqrt(v) + eps) is ill-conditioned where g is tiny: with the default eps (1e-8) a gradient of
    # 1e-9 whose rounding differs by 1e-10 moves its weight by 10% of lr, differently on each device. eps = 1e-3
    # bounds that (a step changes by at most lr / eps times a change in g) while every other gradient keeps its
    # Adam step. attn_bias=False: the key bias's gradient is exactly 0 in exact arithmetic (softmax ignores a
    # constant added to every score), so in float32 it is pure rounding noise.
    tp.manual_seed(0)
    model = GPT(GPTConfig(**TINY, dropout=0.1, attn_bias=False)).to(device, dtype=dtype)
    opt = optim.AdamW(model.parameters(), lr=1e-2, eps=1e-3)
    batches = np.random.default_rng(0).integers(0, 13, (2, 2, 3, 8))
    for x, y in batches:
        _, loss = model(tp.tensor(x, device=device), tp.tensor(y, device=device))
        loss.backward()
        optim.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad()
    return {name: t.numpy().astype(np.float64) for name, t in model.state_dict().items()}, loss.item()


def test_a_training_step_gives_the_same_weights_on_both_devices(gpu):
    """Each device's float32 against float64 truth, which holds on any CPU and any GPU (measured: float32 lands
    within 1.1e-7 of it, at most 2% of the tolerance, under three BLAS kernels). Not bitwise, even on the
    stand-in: the GPU clips with one dot product over all gradients, the CPU sums parameter by parameter."""
    truth, truth_loss = train_two_steps("cpu", "float64")
    for device in ("cpu", "gpu"):
        weights, loss = train_two_steps(device)
        assert abs(loss - truth_loss) <= 1e-5 * abs(truth_loss), device
        for name in truth:
            np.testing.assert_allclose(weights[name], truth[name], rtol=1e-4, atol=1e-6, err_msg=f"{device} {name}")


def _train_tiny(one_parameter_at_a_time, steps=3, drop_grad_at=None):
    """A few AdamW steps of a tiny GPT on the GPU, each group as one vector (the GPU's path) or parameter by
    parameter (the CPU's)."""
    tp.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=7, block_size=4, n_layer=1, n_head=2, n_embd=8, ffn_hidden=8)).to("gpu")
    opt = optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.1)
    if one_parameter_at_a_time:
        opt.step_group = lambda group, states: optim.Optimizer.step_group(opt, group, states)
    idx = np.random.default_rng(0).integers(0, 7, (steps, 2, 2, 4))
    for step, (x, y) in enumerate(idx):
        model(tp.tensor(x, device="gpu"), tp.tensor(y, device="gpu"))[1].backward()
        optim.clip_grad_norm_(model.parameters(), 0.5)
        if step == drop_grad_at:
            model.blocks[0].ln_1.bias.grad = None            # a parameter without a gradient this step
        opt.step()
        opt.zero_grad()
    return model, opt


@pytest.mark.parametrize("drop_grad_at", [None, 1])
def test_adamw_over_whole_groups_equals_parameter_by_parameter(gpu, drop_grad_at):
    """The same elementwise arithmetic on the same values, one vector or many arrays: bitwise equal, also when a
    parameter misses a step (its group then goes parameter by parameter) and in the saved optimizer state."""
    (fast, fast_opt), (slow, slow_opt) = (_train_tiny(flag, drop_grad_at=drop_grad_at) for flag in (False, True))
    for (name, a), b in zip(fast.named_parameters(), slow.parameters()):
        np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=name)
    for a, b in zip(fast_opt.state_dict()["state"], slow_opt.state_dict()["state"]):
        assert a["step"] == b["step"]
        np.testing.assert_array_equal(tp.tensor(a["exp_avg_sq"]).numpy(), tp.tensor(b["exp_avg_sq"]).numpy())


def test_a_frozen_parameter_leaves_the_rest_of_its_group_one_vector(gpu):
    tp.manual_seed(0)
    model = GPT(GPTConfig(**TINY)).to("gpu")
    model.blocks[0].attn.c_attn.weight.requires_grad = False       # never a gradient (as LoRA's frozen base)
    opt = optim.AdamW(model.parameters(), lr=1e-2)
    x, y = (tp.tensor(a, device="gpu") for a in np.random.default_rng(0).integers(0, 13, (2, 3, 8)))
    model(x, y)[1].backward()
    opt.step()
    views = opt._flat[id(opt.param_groups[0])]["p"]["views"]
    assert any(p is model.blocks[0].attn.c_attn.weight for p in opt.param_groups[0]["params"])
    assert any(model.wte.weight.data is view for view in views) and opt.state[0]["step"] == 1


def test_parameters_replaced_after_a_step_are_flattened_anew(gpu):
    model, opt = _train_tiny(False, steps=1)
    views = opt._flat[id(opt.param_groups[0])]["p"]["views"]
    assert any(model.wte.weight.data is view for view in views)    # a view of the group's vector
    model.load_state_dict({name: t.numpy() + 1 for name, t in model.state_dict().items()})
    before = model.wte.weight.numpy().copy()
    x, y = (tp.tensor(np.full((1, 4), value), device="gpu") for value in (0, 1))
    model(x, y)[1].backward()
    opt.step()
    assert not np.array_equal(model.wte.weight.numpy(), before)    # the loaded weights themselves were updated
    assert np.abs(model.wte.weight.numpy() - before).max() < 0.02  # by one small step


def test_a_training_step_does_no_host_sync(standin):
    from cupy_standin import count_syncs
    tp.manual_seed(0)
    model = GPT(GPTConfig(**TINY, dropout=0.1)).to("gpu")
    opt = optim.AdamW(model.parameters(), lr=1e-2)
    x, y = (tp.tensor(a, device="gpu") for a in np.random.default_rng(0).integers(0, 13, (2, 3, 8)))
    with count_syncs() as syncs:
        for _ in range(2):
            _, loss = model(x, y)
            loss.backward()
            optim.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            opt.zero_grad()
    assert syncs.count == 0
    with count_syncs() as syncs:
        loss.item()                                             # reading the loss is one (at the log interval)
    assert syncs.count == 1


# ---- the scripts on the GPU ----

@pytest.fixture
def corpus(tmp_path):
    path = tmp_path / "corpus.txt"
    path.write_text("to be or not to be, that is the question; whether tis nobler in the mind to suffer\n" * 30)
    return path


TINY_RUN = ["--n-layer", "1", "--n-embd", "16", "--n-head", "2", "--ffn-hidden", "32", "--block-size", "16",
            "--batch-size", "4", "--eval-batches", "2", "--sample-tokens", "10", "--warmup", "2", "--device", "gpu"]


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_train_script_runs_every_preset_on_the_gpu(tmp_path, corpus, gpu, preset, capsys):
    out = tmp_path / "out"
    train.main(["--preset", preset, "--data", str(corpus), "--steps", "3", "--eval-interval", "3", "--out-dir",
                str(out), *TINY_RUN])
    assert "device gpu" in capsys.readouterr().out
    assert load_checkpoint(out / "last.npz")[0]["step"] == 3


def test_gpu_resume_with_dropout_equals_a_straight_run(tmp_path, corpus, gpu, rtol):
    common = ["--data", str(corpus), "--eval-interval", "3", "--lr-decay-steps", "6", "--dropout", "0.1",
              "--grad-accum", "2", *TINY_RUN]
    train.main([*common, "--steps", "6", "--out-dir", str(tmp_path / "straight")])
    train.main([*common, "--steps", "3", "--out-dir", str(tmp_path / "halves")])
    train.main(["--resume", str(tmp_path / "halves" / "last.npz"), "--steps", "6"])
    straight, halves = (load_checkpoint(tmp_path / run / "last.npz")[1] for run in ("straight", "halves"))
    for name in straight:
        close(halves[name], straight[name], rtol)


def test_generate_script_on_the_gpu_cached_and_uncached_agree(tmp_path, gpu, capsys):
    tokenizer = CharTokenizer.from_text("to be or not to be, that is the question\n")
    tp.manual_seed(0)
    model = GPT(GPTConfig(**{**TINY, "vocab_size": tokenizer.vocab_size}))
    path = save_checkpoint(tmp_path / "best.npz", model, step=0, config=model.config.to_dict(),
                           tokenizer=tokenizer.to_dict())
    outputs = []
    for extra in ([], ["--no-cache"]):
        generate.main(["--checkpoint", str(path), "--device", "gpu", "--prompt", "to be", "--max-new-tokens", "20",
                       "--seed", "3", *extra])
        outputs.append(capsys.readouterr().out)
    assert outputs[0] == outputs[1] and len(outputs[0]) > len("to be")


def test_bench_runs_on_the_gpu(gpu, capsys):
    bench.main(["--device", "gpu", "--generate", "--new-tokens", "3"])
    bench.main(["--device", "gpu", "--cases", "raven:2x8", "--steps", "1", "--warmup", "1"])
    out = capsys.readouterr().out
    assert out.count("| byte-gpt | 128 (full) | 3 |") == 1 and "| raven:2x8 | 2 x 8 |" in out


# ---- which CuPy ----

def test_a_gpu_that_cannot_be_used_is_one_line_saying_what_to_do(monkeypatch):
    monkeypatch.setattr(device_module, "_cupy", None)
    real_import = builtins.__import__

    def failing(error):
        def fake_import(name, *args, **kwargs):
            if name == "cupy":
                raise error
            return real_import(name, *args, **kwargs)
        return fake_import

    broken = ModuleNotFoundError("No module named 'fastrlock'", name="fastrlock")
    no_driver = types.ModuleType("cupy")
    no_driver.cuda = types.SimpleNamespace(runtime=types.SimpleNamespace(
        getDeviceCount=lambda: (_ for _ in ()).throw(RuntimeError("cudaErrorInsufficientDriver"))))
    situations = [(ModuleNotFoundError("No module named 'cupy'", name="cupy"), "needs CuPy: pip install cupy-cuda12x"),
                  (broken, "CuPy is installed but cannot load"),
                  (ImportError("libcudart.so.12: cannot open shared object file"), "cupy-cuda12x[ctk]"),
                  (no_driver, "no CUDA GPU is usable (cudaErrorInsufficientDriver)")]
    for situation, expected in situations:
        if isinstance(situation, types.ModuleType):
            monkeypatch.setattr(builtins, "__import__", real_import)
            monkeypatch.setitem(sys.modules, "cupy", situation)
        else:
            monkeypatch.setattr(builtins, "__import__", failing(situation))
        with pytest.raises(tp.DeviceError) as info:
            tp.randn(2, device="gpu")
        assert "\n" not in str(info.value) and expected in str(info.value), str(info.value)


def cupy_names_used():
    """Every attribute chain the code reaches through an array module: `xp.exp`, `x.xp.random.default_rng`,
    `array_module(x).add.at`, `cupy_module().cuda.runtime.getDeviceCount`, ..."""
    roots = {"array_module", "module_for", "cupy_module"}
    used = set()
    files = [*(ROOT / "tinygrad_proust").rglob("*.py"), *(ROOT / "models").glob("*.py"),
             *(ROOT / "benchmarks").glob("*.py")]
    for path in files:
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.Attribute):
                continue
            chain, value = [node.attr], node.value
            while isinstance(value, ast.Attribute):
                chain.insert(0, value.attr)
                value = value.value
            if isinstance(value, ast.Call) and getattr(value.func, "id", getattr(value.func, "attr", None)) in roots:
                used.add((path.name, tuple(chain)))
            elif isinstance(value, ast.Name) and value.id == "xp":
                used.add((path.name, tuple(chain)))
            elif "xp" in chain[:-1]:
                used.add((path.name, tuple(chain[chain.index("xp") + 1:])))
    return used


def test_every_cupy_name_the_code_uses_exists_in_every_supported_version():
    from cupy_standin import NAMES, SNAPSHOTS
    assert len(SNAPSHOTS) >= 2                                   # CuPy 13 and 14
    used = cupy_names_used()
    assert len(used) > 40
    missing = []
    for where, chain in used:
        namespace, known = "cupy", NAMES["cupy"]
        for name in chain:
            if name not in known:
                missing.append(f"{where}: {'.'.join(chain)}")
                break
            if namespace == "cupy" and name in NAMES["ufuncs"]:
                namespace, known = "cupy.ufunc", NAMES["cupy.ufunc"]
            elif f"{namespace}.{name}" in NAMES:
                namespace = f"{namespace}.{name}"
                known = NAMES[namespace]
            else:
                known = set()                                    # nothing is looked up past a function
    assert not missing, missing


def test_the_repr_of_a_large_gpu_tensor_brings_only_its_statistics_to_the_host(standin):
    """A debugger shows a tensor's repr at every step: for a (B, T, V) tensor on the GPU that must not copy it."""
    from cupy_standin import count_kernels
    values = np.random.default_rng(0).standard_normal((64, 64)).astype(np.float32)
    t = tp.tensor(values, device="gpu", requires_grad=True)
    (t * t).sum().backward()
    with count_kernels() as counts:
        shown = repr(t)
    synced = counts.table["other"]["sync"]
    assert synced[0] == 5 and synced[1] <= 5 * 8  # norm, min, max, mean, grad_norm: one float64 each
    x = values.astype(np.float64)
    for part in (f"norm={np.sqrt((x * x).sum()):.4g}", f"min={x.min():.4g}", f"max={x.max():.4g}",
                 f"mean={x.mean():.4g}", f"grad_norm={2 * np.sqrt((x * x).sum()):.4g}"):
        assert part in shown, shown
