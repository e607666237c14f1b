"""Making tensors: tensor, zeros, ones, full, randn, rand, arange, *_like, cat, stack, where."""
import numpy as np

from . import ops, rng
from .device import canonical_device, module_for, to_device
from .tensor import Tensor, _promoted, _shape_arg, float32, to_dtype


def _make(array, device, requires_grad):
    return Tensor(to_device(array, canonical_device(device)), requires_grad=requires_grad)


def tensor(data, dtype=None, device=None, requires_grad=False):
    """A leaf tensor from a number, a (nested) list or an array; Python floats become float32. Without `device`
    it stays where its data is (a CuPy array on the GPU, anything else on the CPU), as in PyTorch. Always a copy
    (torch.tensor's rule): changing the array later does not change the tensor."""
    t = Tensor(data, requires_grad=requires_grad, device=device, dtype=dtype)
    if isinstance(data, Tensor) or t.data is data or getattr(t.data, "base", None) is not None:
        t.data = t.data.copy()
    return t


def zeros(*shape, dtype=float32, device="cpu", requires_grad=False):
    return Tensor(module_for(device).zeros(_shape_arg(shape), dtype=to_dtype(dtype)), requires_grad=requires_grad)


def ones(*shape, dtype=float32, device="cpu", requires_grad=False):
    return Tensor(module_for(device).ones(_shape_arg(shape), dtype=to_dtype(dtype)), requires_grad=requires_grad)


def full(shape, fill_value, dtype=None, device="cpu", requires_grad=False):
    """The dtype follows fill_value when not given, as in PyTorch: bool, int64 for an int, float32 for a float."""
    if dtype is None:
        dtype = np.bool_ if isinstance(fill_value, bool) else np.int64 if isinstance(fill_value, int) else float32
    return Tensor(module_for(device).full(_shape_arg((shape,)), fill_value, dtype=to_dtype(dtype)),
                  requires_grad=requires_grad)


def full_like(t, fill_value, dtype=None, requires_grad=False):
    return Tensor(t.xp.full(t.shape, fill_value, dtype=to_dtype(dtype) or t.dtype), requires_grad=requires_grad)


def empty(*shape, dtype=float32, device="cpu", requires_grad=False):
    """Uninitialised values (whatever the memory held), as torch.empty."""
    return Tensor(module_for(device).empty(_shape_arg(shape), dtype=to_dtype(dtype)), requires_grad=requires_grad)


def eye(n, m=None, dtype=float32, device="cpu", requires_grad=False):
    return Tensor(module_for(device).eye(n, m, dtype=to_dtype(dtype)), requires_grad=requires_grad)


def zeros_like(t, dtype=None, requires_grad=False):
    return Tensor(t.xp.zeros(t.shape, dtype=to_dtype(dtype) or t.dtype), requires_grad=requires_grad)


def ones_like(t, dtype=None, requires_grad=False):
    return Tensor(t.xp.ones(t.shape, dtype=to_dtype(dtype) or t.dtype), requires_grad=requires_grad)


def randn(*shape, dtype=float32, device="cpu", requires_grad=False, generator=None):
    """Standard normal samples, drawn on the host from the seeded generator (same values on every device)."""
    array = rng.generator(generator).standard_normal(_shape_arg(shape), dtype=np.float64).astype(to_dtype(dtype))
    return _make(array, device, requires_grad)


def rand(*shape, dtype=float32, device="cpu", requires_grad=False, generator=None):
    """Uniform samples in [0, 1), drawn on the host from the seeded generator."""
    array = rng.generator(generator).random(_shape_arg(shape)).astype(to_dtype(dtype))
    return _make(array, device, requires_grad)


def randint(low, high, size, device="cpu", generator=None):
    """Integers in [low, high), int64."""
    return _make(rng.generator(generator).integers(low, high, size=_shape_arg((size,)), dtype=np.int64), device, False)


def arange(start, end=None, step=1, dtype=None, device="cpu"):
    """Like torch.arange: integers give int64, any float gives float32."""
    if end is None:
        start, end = 0, start
    if dtype is None:
        is_float = any(isinstance(v, float) for v in (start, end, step))
        dtype = float32 if is_float else np.int64
    return Tensor(module_for(device).arange(start, end, step, dtype=to_dtype(dtype)))


def linspace(start, end, steps, dtype=None, device="cpu", requires_grad=False):
    """`steps` evenly spaced values from start to end, both included: start + i (end - start) / (steps - 1)."""
    if not isinstance(steps, int) or steps < 0:
        raise ValueError(f"linspace: steps must be an int >= 0, got {steps!r}")
    return _make(np.linspace(start, end, steps).astype(to_dtype(dtype) or float32), device, requires_grad)


def randperm(n, generator=None, dtype=np.int64, device="cpu", requires_grad=False):
    """0, ..., n - 1 in a random order, drawn on the host from the seeded generator (or `generator`)."""
    return _make(rng.generator(generator).permutation(n).astype(to_dtype(dtype)), device, requires_grad)


def cat(tensors, dim=0):
    """Join tensors along an existing dim (in the dtype PyTorch promotes them to)."""
    tensors = list(tensors)
    if not tensors:
        raise ValueError("cat: needs at least one tensor")
    return ops.Cat.apply(*_promoted(*tensors), dim=dim)


def stack(tensors, dim=0):
    """Join tensors along a new dim."""
    tensors = list(tensors)
    if not tensors:
        raise ValueError("stack: needs at least one tensor")
    if len({t.shape for t in tensors}) != 1:
        raise ValueError(f"stack: all tensors need the same shape, got {[t.shape for t in tensors]}")
    return cat([t.unsqueeze(dim) for t in tensors], dim=dim)


def multinomial(input, num_samples, replacement=False, generator=None):
    """Indices drawn from each row of non-negative weights (1-D or 2-D), as torch.multinomial, from the project's
    host generator (manual_seed): with replacement by the inverse CDF, without by the Gumbel top-k trick. int64,
    on input's device; no gradient."""
    if not isinstance(num_samples, int) or num_samples < 1 or input.dtype.kind != "f":
        raise ValueError(f"multinomial: need float weights and num_samples >= 1, got {input.dtype} and {num_samples!r}")
    weights = np.asarray(to_device(input.data, "cpu"), dtype=np.float64)
    rows = weights.reshape(-1, weights.shape[-1]) if weights.ndim in (1, 2) else None
    if rows is None or not np.isfinite(rows).all() or (rows < 0).any() or (rows.sum(1) <= 0).any():
        raise ValueError("multinomial: need 1-D or 2-D finite, non-negative weights with a positive sum per row, "
                         f"got shape {input.shape}")
    if not replacement and num_samples > (rows > 0).sum(1).min():
        raise ValueError(f"multinomial: {num_samples} samples without replacement from a row with fewer non-zero "
                         "weights")
    draw = rng.generator(generator)
    if replacement:
        cdf = np.cumsum(rows / rows.sum(1, keepdims=True), axis=1)
        picked = (draw.random((len(rows), num_samples, 1)) >= cdf[:, None, :-1]).sum(-1)
    else:  # the num_samples largest of log w + Gumbel noise are a draw without replacement
        with np.errstate(divide="ignore"):
            keys = np.log(rows) - np.log(-np.log(draw.random(rows.shape)))
        picked = np.argsort(-keys, axis=1, kind="stable")[:, :num_samples]
    picked = picked.reshape(weights.shape[:-1] + (num_samples,)).astype(np.int64)
    return Tensor._wrap(to_device(picked, input.device), False, None)
