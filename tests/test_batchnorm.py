"""nn.BatchNorm1d beside torch.nn.BatchNorm1d: a module of each configuration (inputs (N, C) and (N, C, L), momentum
0.1 and None, without affine parameters, without bias, without running statistics) runs three training steps and
then one in eval, and every output, every gradient (input, weight, bias), the running statistics and the batch count
are PyTorch's: float64 to 1e-12, float32 within its rounding of PyTorch's float64 on the same inputs, on each device.
The statistics change in place, with no graph, keeping their dtype and device; a state_dict goes from one library to
the other and back; the training gradient agrees with finite differences; wrong inputs get PyTorch's errors.
(F.batch_norm's own cases are in test_ops.py.)"""
import numpy as np
import pytest

import tinygrad_proust as tp
from tinygrad_proust import functional as F

CONFIGS = {
    "NC": ((6, 4), {}),
    "NCL": ((3, 4, 5), {}),
    "NC-momentum-None": ((6, 4), {"momentum": None}),
    "NCL-momentum-None": ((3, 4, 5), {"momentum": None}),
    "NCL-no-affine": ((3, 4, 5), {"affine": False}),
    "NC-no-bias": ((6, 4), {"bias": False}),
    "NC-no-running-stats": ((6, 4), {"track_running_stats": False}),
    "NCL-no-running-stats-no-affine": ((2, 4, 3), {"track_running_stats": False, "affine": False}),
    "NCL-eps-momentum": ((2, 4, 3), {"eps": 1e-3, "momentum": 0.5}),
}
# float32 against float64 truth: a few roundings of float32 (6e-8) on values and sums of order 1 to 10
TOLERANCE = {"float64": dict(rtol=1e-12, atol=1e-12), "float32": dict(rtol=1e-5, atol=1e-5)}


def both(torch, kwargs, dtype, device):
    """Ours in `dtype` on `device`, PyTorch's in float64 (the truth), with the same weight and bias, not 1 and 0."""
    ours, theirs = tp.nn.BatchNorm1d(4, **kwargs).to(device, dtype), torch.nn.BatchNorm1d(4, **kwargs).double()
    rng = np.random.default_rng(0)
    with torch.no_grad():
        for p in theirs.parameters():
            p.copy_(torch.tensor(rng.standard_normal(4).astype(dtype)))  # values float32 holds exactly
    ours.load_state_dict(theirs.state_dict())
    return ours, theirs


def close(mine, ref, tolerance, name):
    np.testing.assert_allclose(mine.numpy(), ref.detach().numpy(), err_msg=name, **tolerance)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("config", list(CONFIGS))
def test_training_steps_then_eval_match_pytorch(config, dtype, device, torch):
    shape, kwargs = CONFIGS[config]
    ours, theirs = both(torch, kwargs, dtype, device)
    tolerance, rng = TOLERANCE[dtype], np.random.default_rng(1)
    offsets = (4,) + (1,) * (len(shape) - 2)                 # a mean of each channel's own, so the statistics move
    for step in range(4):
        if step == 3:
            ours.eval(), theirs.eval()
        x = (rng.standard_normal(shape) * 2 + rng.standard_normal(offsets) * 3).astype(dtype)
        upstream = rng.standard_normal(shape).astype(dtype)
        mine, truth = tp.tensor(x, device=device, requires_grad=True), torch.tensor(x.astype(np.float64),
                                                                                    requires_grad=True)
        out, ref = ours(mine), theirs(truth)
        out.backward(tp.tensor(upstream, device=device))
        ref.backward(torch.tensor(upstream.astype(np.float64)))
        assert out.dtype == dtype and out.device == device and out.shape == shape
        close(out, ref, tolerance, f"output, step {step}")
        close(mine.grad, truth.grad, tolerance, f"input gradient, step {step}")
        their_params = dict(theirs.named_parameters())
        assert list(their_params) == [name for name, _ in ours.named_parameters()]
        for name, p in ours.named_parameters():                  # accumulated over the steps, in both
            assert p.grad.dtype == dtype
            close(p.grad, their_params[name].grad, tolerance, f"{name} gradient, step {step}")
        their_buffers = dict(theirs.named_buffers())
        assert list(their_buffers) == [name for name, _ in ours.named_buffers()]
        for name, b in ours.named_buffers():
            assert b.device == device and b.dtype == (np.int64 if name == "num_batches_tracked" else dtype)
            close(b, their_buffers[name], tolerance, f"{name}, step {step}")
    assert ours.num_batches_tracked is None or ours.num_batches_tracked.item() == 3  # eval counts nothing


def test_the_running_statistics_change_in_place_without_a_graph(device):
    bn = tp.nn.BatchNorm1d(3).to(device)
    mean, var, count = bn.running_mean, bn.running_var, bn.num_batches_tracked
    assert (mean.tolist(), var.tolist(), count.item()) == ([0.0] * 3, [1.0] * 3, 0)
    x = tp.tensor(np.random.default_rng(0).standard_normal((5, 3)) * 2 + 1, dtype="float32", device=device,
                  requires_grad=True)
    out = bn(x)
    assert out.requires_grad and bn.running_mean is mean and bn.running_var is var and bn.num_batches_tracked is count
    assert np.abs(mean.numpy() - 0.1 * x.numpy().mean(0)).max() < 1e-6                 # moved, in the same tensor
    for b in (mean, var, count):
        assert b.is_leaf and not b.requires_grad and b.device == device
    assert (mean.dtype, var.dtype, count.dtype, count.shape) == (np.float32, np.float32, np.int64, ())
    with tp.no_grad():
        bn(x)                                                    # training under no_grad moves them too
    assert count.item() == 2
    bn.eval()
    bn(x).sum().backward()                                       # eval: no gradient into the statistics
    assert mean.grad is None and var.grad is None and x.grad is not None and count.item() == 2
    bn.train().double()
    bn(x.double())
    assert (mean.dtype, var.dtype, count.dtype, count.item()) == (np.float64, np.float64, np.int64, 3)


@pytest.mark.parametrize("shape", [(5, 3), (3, 3, 4)])
@pytest.mark.parametrize("momentum", [0.1, None])
def test_the_training_gradient_matches_finite_differences(shape, momentum, device):
    bn = tp.nn.BatchNorm1d(3, momentum=momentum).double().to(device)
    rng = np.random.default_rng(0)
    with tp.no_grad():
        bn.weight.copy_(tp.tensor(rng.standard_normal(3), device=device))
        bn.bias.copy_(tp.tensor(rng.standard_normal(3), device=device))
    x = tp.tensor(rng.standard_normal(shape) * 2 + 1, device=device, requires_grad=True)
    assert tp.gradcheck(lambda x, weight, bias: bn(x), x, bn.weight, bn.bias)  # bn reads the perturbed weight and bias


@pytest.mark.parametrize("kwargs", [{}, {"affine": False}, {"momentum": None}, {"track_running_stats": False}])
def test_a_state_dict_goes_to_pytorch_and_back(kwargs, torch):
    ours, theirs = tp.nn.BatchNorm1d(4, **kwargs), torch.nn.BatchNorm1d(4, **kwargs)
    assert repr(ours) == repr(theirs)
    assert list(ours.state_dict()) == list(theirs.state_dict())
    assert [n for n, _ in ours.named_buffers()] == [n for n, _ in theirs.named_buffers()]
    rng = np.random.default_rng(0)
    batches = [(rng.standard_normal((5, 4)) * 3 + 1).astype(np.float32) for _ in range(5)]
    for x in batches[:3]:
        theirs(torch.tensor(x))
    with torch.no_grad():
        for p in theirs.parameters():
            p.copy_(torch.tensor(rng.standard_normal(4), dtype=torch.float32))
    ours.load_state_dict(theirs.state_dict())                    # PyTorch's into ours
    for (name, mine), (ref_name, ref) in zip(ours.state_dict().items(), theirs.state_dict().items(), strict=True):
        assert name == ref_name and mine.shape == tuple(ref.shape) and f"torch.{mine.dtype}" == str(ref.dtype)
        assert mine.tolist() == ref.tolist()
    ours.eval(), theirs.eval()
    np.testing.assert_allclose(ours(tp.tensor(batches[3])).numpy(), theirs(torch.tensor(batches[3])).detach().numpy(),
                               rtol=1e-5, atol=1e-6)
    ours.train(), theirs.train()
    for x in batches[3:]:
        ours(tp.tensor(x)), theirs(torch.tensor(x))
    back = torch.nn.BatchNorm1d(4, **kwargs)
    back.load_state_dict({name: torch.from_numpy(t.numpy()) for name, t in ours.state_dict().items()})  # and back
    for (name, mine), ref in zip(back.state_dict().items(), theirs.state_dict().values(), strict=True):
        assert mine.dtype == ref.dtype and mine.shape == ref.shape, name
        np.testing.assert_allclose(mine.numpy(), ref.numpy(), rtol=1e-6, atol=1e-7, err_msg=name)
    if theirs.track_running_stats:
        assert back.num_batches_tracked.item() == ours.num_batches_tracked.item() == 5


def test_a_state_dict_without_the_batch_count_loads_as_into_pytorch(torch):
    """A state_dict saved without num_batches_tracked (older PyTorch, or weights written out by hand) loads strictly,
    the module keeping its own count, as PyTorch's; any other missing name is still refused."""
    def model(lib):
        return lib.nn.Sequential(lib.nn.Linear(3, 4), lib.nn.BatchNorm1d(4))

    reference = model(torch)
    saved = {name: value for name, value in reference.state_dict().items() if "num_batches_tracked" not in name}
    for lib in (tp, torch):
        m = model(lib)
        m[1].num_batches_tracked.fill_(5)
        m.load_state_dict({name: value if lib is torch else value.numpy() for name, value in saved.items()})
        assert m[1].num_batches_tracked.item() == 5 and m[1].running_var.tolist() == [1.0] * 4
    partial = {name: value.numpy() for name, value in saved.items() if name != "1.running_var"}
    with pytest.raises(ValueError, match=r"missing: 1\.running_var$"):
        model(tp).load_state_dict(partial)


def test_wrong_inputs_get_pytorchs_errors(torch):
    """PyTorch raises RuntimeError where a value cannot be taken, ValueError here (the README's rule)."""
    for lib in (tp, torch):
        value_error = ValueError if lib is tp else RuntimeError
        bn = lib.nn.BatchNorm1d(3)
        for x, error, match in [
                (lib.zeros(2, 3, 4, 5), ValueError, r"expected 2D or 3D input \(got 4D input\)"),
                (lib.zeros(3), ValueError, r"expected 2D or 3D input \(got 1D input\)"),
                (lib.zeros(2, 4), value_error, "running_mean should contain 4 elements not 3"),
                (lib.zeros(1, 3), ValueError, "Expected more than 1 value per channel when training, got input size"),
                (lib.zeros(1, 3, 1), ValueError, "Expected more than 1 value per channel when training")]:
            with pytest.raises(error, match=match):
                bn(x)
        if lib is tp:   # PyTorch counts a batch before it refuses it (3 by now); a refused batch is not counted here
            assert bn.num_batches_tracked.item() == 0
        assert bn.eval()(lib.ones(1, 3)).shape == (1, 3)          # one example is fine with the running statistics
        untracked = lib.nn.BatchNorm1d(3, track_running_stats=False).eval()  # but not with the batch's own
        with pytest.raises(ValueError, match="Expected more than 1 value per channel"):
            untracked(lib.ones(1, 3))
        x, functional = lib.zeros(4, 3), F if lib is tp else torch.nn.functional
        for call, error, match in [
                (lambda: functional.batch_norm(x, lib.zeros(3), None, training=True), ValueError,
                 "running_mean and running_var must either both be None or neither be None"),
                (lambda: functional.batch_norm(x, None, None), value_error,
                 "running_mean must be defined in evaluation mode"),
                (lambda: functional.batch_norm(x, lib.zeros(3), lib.ones(2)), value_error,
                 "running_var should contain 3 elements not 2"),
                (lambda: functional.batch_norm(x, None, None, lib.ones(2), training=True), value_error,
                 "weight should contain 3 elements not 2"),
                (lambda: functional.batch_norm(x, None, None, bias=lib.ones(4), training=True), value_error,
                 "bias should contain 3 elements not 4")]:
            with pytest.raises(error, match=match):
                call()
    with pytest.raises(ValueError, match=r"batch_norm: .*\(N, C, \.\.\.\).*\(3,\)"):
        F.batch_norm(tp.zeros(3), None, None, training=True)


def test_running_statistics_on_another_device_are_refused_and_left_as_they_were(standin):
    """Both new running values are made before either is written: when one cannot be (the statistics on the CPU, the
    batch on the GPU), neither moves."""
    running_mean, running_var = tp.zeros(3), tp.ones(3)
    with pytest.raises(tp.DeviceError):
        F.batch_norm(tp.randn(4, 3).to("gpu"), running_mean, running_var, training=True)
    assert running_mean.tolist() == [0.0] * 3 and running_var.tolist() == [1.0] * 3
