"""A strict CPU stand-in for CuPy: NumPy underneath, CuPy's rules on top, so the GPU path runs without a GPU.

What it enforces, as real CuPy does:
- its own array type (`ndarray`, module "cupy"), which the framework treats as a GPU array;
- no implicit conversion to NumPy: np.asarray(x) raises CuPy's TypeError; `.get()` and `cupy.asnumpy` are the
  ways out (and `.item()`, `float(x)`, `bool(x)`, printing, boolean-mask indexing: all device-to-host syncs);
- NumPy arrays are refused as operands of operators, ufuncs and functions (Python and NumPy scalars are fine;
  `asarray`/`array` copy host data to the device);
- only the names that exist in every supported CuPy version (the snapshots cupy-<version>.json beside this
  file, written by snapshot.py from a real install): module functions, ndarray attributes, ufunc methods,
  cupy.random.Generator methods; anything else is an AttributeError;
- a generator without state to save or restore (CuPy's has none);
- reductions return 0-d arrays, not NumPy scalars;
- elementwise kernels and reductions write a new C-contiguous array whatever their inputs' layout (NumPy's
  follow the inputs' layout);
- `where`'s condition is an array (CuPy calls its `astype`; a Python bool is an AttributeError);
- `RawModule` only for the framework's own kernels (tinygrad_proust/kernels.py), each run by a NumPy twin of its
  CUDA and counted as one kernel; the CUDA itself runs only on a real GPU.

What it counts: every device-to-host sync (`syncs`), so a test can assert that a training step does none; and,
inside `count_kernels()`, what real CuPy would ask of the GPU for each call, per phase of a step: kernels (GEMMs,
reductions, elementwise kernels, copies, memsets, including the operand copies and pointer kernels CuPy's batched
matmul makes, and concatenate's two ways), bytes read and written, allocations, views, host-to-device copies and
syncs. A model of CuPy (read from its source), not a measurement of it; but deterministic, the same on every
machine, so a test can bound the counts.

What it cannot catch: speed, memory, kernels that compile on a GPU, float differences of GPU math (atomic adds,
fused multiply-adds, cuBLAS's summation order), and real CuPy behaviour at the edges NumPy and CuPy differ on
silently (out-of-range indices wrap in CuPy and raise in NumPy).
"""
import contextlib
import json
import math
import sys
import types
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
SNAPSHOTS = sorted(HERE.glob("cupy-*.json"))


def supported_names():
    """{namespace: names present in every snapshotted CuPy version}."""
    tables = [json.loads(path.read_text()) for path in SNAPSHOTS]
    return {key: set.intersection(*(set(t[key]) for t in tables)) for key in tables[0] if key != "version"}


NAMES = supported_names()
syncs = 0  # device-to-host transfers since the last reset (read it through count_syncs())


def _sync(nbytes=0):
    global syncs
    syncs += 1
    if _counter is not None:
        _counter.add("sync", nbytes)


# ---- what a step asks of the GPU ----

# einsum counts as one GEMM: CuPy (without cuTENSOR) runs the norms' "...i,...i->..." as one batched matmul
GEMMS = {"matmul", "__matmul__", "__rmatmul__", "dot", "tensordot", "inner", "einsum"}
REDUCTIONS = {"sum", "mean", "max", "min", "amax", "amin", "argmax", "argmin", "prod", "var", "std", "all", "any",
              "cumsum", "cumprod", "count_nonzero", "nansum", "reduce"}
MEMSETS = {"zeros", "zeros_like"}
ALLOCATIONS = {"empty", "empty_like"}
# a view when the result lies in the input's memory, else a copy kernel (reshape of a non-contiguous array, ...)
VIEWS_OR_COPIES = {"reshape", "transpose", "swapaxes", "moveaxis", "expand_dims", "squeeze", "broadcast_to", "ravel",
                   "view", "T", "__getitem__", "split", "ascontiguousarray", "astype", "copy", "__copy__",
                   "diagonal", "broadcast_arrays", "asarray", "array", "flip", "flipud", "fliplr"}
KERNELS = ("gemm", "reduction", "elementwise", "copy", "memset")
OTHERS = ("allocation", "view", "host_to_device", "sync")
MASK_CODE = {"_keep_mask", "random_uint16"}  # functions whose calls count as the phase "dropout masks"
_counter = None


class count_kernels:
    """`with count_kernels() as counts:`, with `counts.phase(name)` around each phase of a step. Then
    counts.table[phase][kind] = [calls, bytes] for kind in KERNELS + OTHERS; calls made inside the dropout mask
    functions count as the phase "dropout masks" whatever phase is open. counts.by_op is the same by what made
    the call: an op's forward or backward ("LayerNorm.backward"), else the function it was made in
    ("Tensor.backward", the engine; "AdamW.step_group"; "optim.clip_grad_norm_")."""

    def __enter__(self):
        global _counter
        self.table, self.by_op, self.current, _counter = {}, {}, "other", self
        return self

    def __exit__(self, *exc):
        global _counter
        _counter = None

    @contextlib.contextmanager
    def phase(self, name):
        outer, self.current = self.current, name
        try:
            yield
        finally:
            self.current = outer

    def add(self, kind, nbytes=0, calls=1):
        frame, phase, maker = sys._getframe(2), self.current, None
        while frame is not None:
            if frame.f_code.co_name in MASK_CODE:
                phase = "dropout masks"
            if maker is None and _caller(frame):
                maker = _maker(frame)
            frame = frame.f_back
        for table, key in ((self.table, phase), (self.by_op, maker or "other")):
            entry = table.setdefault(key, {k: [0, 0] for k in KERNELS + OTHERS})[kind]
            entry[0] += calls
            entry[1] += int(nbytes)

    def total(self, what, phases=None):
        return total(self.table, what, phases)


def _caller(frame):
    """Whether a frame is code that calls CuPy (not the stand-in, NumPy, or the kernels' launch wrappers)."""
    name = frame.f_globals.get("__name__", "")
    return Path(frame.f_code.co_filename).parent != HERE and not name.startswith("numpy") and \
        not name.endswith(".kernels")


def _maker(frame):
    """What made a call, from the first frame that calls CuPy: the nearest op's forward, backward or backward_into
    above it (a Function's: an object with `parents`), else the outermost function of the same package it was made
    in, short of a module's forward ("Tensor.backward", the engine; "AdamW.step"; "optim.clip_grad_norm_";
    "functional.dropout"), as "Class.method" or "module.function"."""
    first, package = frame, frame.f_globals.get("__name__", "").split(".")[0]
    while frame is not None:
        owner = frame.f_locals.get("self")
        if frame.f_code.co_name in ("forward", "backward", "backward_into") and hasattr(owner, "parents"):
            return f"{type(owner).__name__}.{frame.f_code.co_name}"
        frame = frame.f_back
    frame = outer = first
    while frame is not None and frame.f_globals.get("__name__", "").split(".")[0] == package \
            and not hasattr(frame.f_locals.get("self"), "named_modules"):
        if not frame.f_code.co_name.startswith("<"):  # a comprehension's or lambda's: its function's
            outer = frame
        frame = frame.f_back
    owner = outer.f_locals.get("self")
    where = type(owner).__name__ if owner is not None else outer.f_globals["__name__"].rsplit(".", 1)[-1]
    return f"{where}.{outer.f_code.co_name}"


def total(table, what, phases=None):
    """Of a count_kernels table: kernels launched (what="kernels"), bytes they read and write ("bytes"), or the
    calls of one kind, over `phases` (all by default)."""
    rows = [row for phase, row in table.items() if phases is None or phase in phases]
    if what == "kernels":
        return sum(row[k][0] for row in rows for k in KERNELS)
    if what == "bytes":
        return sum(row[k][1] for row in rows for k in KERNELS)
    return sum(row[what][0] for row in rows)


def _device_arrays(value):
    if isinstance(value, ndarray):
        yield value._a
    elif isinstance(value, (list, tuple)):
        for v in value:
            yield from _device_arrays(v)
    elif isinstance(value, dict):
        for v in value.values():
            yield from _device_arrays(v)


def _without_out(kwargs):
    """An out= array is written, not read: the result counts it."""
    return {key: value for key, value in kwargs.items() if key != "out"}


def _record(name, inputs, result, owner=None):
    """Count one call as real CuPy would run it (see count_kernels). `owner`: the array whose method this is."""
    if _counter is None:
        return
    ins = list(_device_arrays(inputs)) + ([owner._a] if owner is not None else [])
    outs = list(_device_arrays(result))
    moved = sum(a.nbytes for a in ins) + sum(a.nbytes for a in outs)
    base, kind = name.rsplit(".", 1)[-1], _kind(name)
    if kind == "view_or_copy":
        copied = [o for o in outs if not any(np.may_share_memory(o, i) for i in ins)]
        if copied:
            _counter.add("copy", 2 * sum(o.nbytes for o in copied), len(copied))
        else:
            _counter.add("view")
    elif kind == "gemm":
        _count_gemm_operands(base, ins[:2])
        _counter.add("gemm", moved)
    elif kind == "concatenate":
        _count_concatenate(ins, moved)
    elif kind in ("reduction", "memset", "elementwise"):
        _counter.add(kind, moved)
    else:
        _counter.add("allocation")


def _kind(name):
    """How real CuPy runs a call of this name: "view_or_copy", "gemm", "concatenate", "reduction", "memset",
    "allocation" or (everything else) "elementwise"."""
    base = name.rsplit(".", 1)[-1]
    for kind, names in (("view_or_copy", VIEWS_OR_COPIES), ("gemm", GEMMS), ("concatenate", {"concatenate"}),
                        ("reduction", REDUCTIONS), ("memset", MEMSETS), ("allocation", ALLOCATIONS)):
        if base in names:
            return kind
    return "elementwise"


def _as_cupy_allocates(name, result):
    """The result of an elementwise kernel or a reduction in the layout CuPy gives it: a new C-contiguous array
    (CuPy's ufuncs and reductions allocate their output in C order), where NumPy follows its inputs' layout
    (`q.swapaxes(1, 2) * 2` is C-contiguous in CuPy, transposed in NumPy; the difference decides whether a batched
    matmul copies it). Call it only where no out= was given."""
    if _kind(name) not in ("elementwise", "reduction"):
        return result
    if isinstance(result, np.ndarray) and not result.flags.c_contiguous:
        return np.ascontiguousarray(result)
    if isinstance(result, tuple):
        return tuple(_as_cupy_allocates(name, r) for r in result)
    return result


def _count_gemm_operands(name, operands):
    """CuPy's matmul on more than 2 dimensions copies each operand that is not C-contiguous and, when the batch
    dimensions broadcast, builds three arrays of matrix pointers (ndim - 2 kernels each) for a batched GEMM; a
    2-D product copies an operand that is neither C- nor F-contiguous."""
    if len(operands) < 2 or "matmul" not in name and name != "dot":
        return
    ndim = max(a.ndim for a in operands)
    if ndim <= 2:
        bad = [a for a in operands if not (a.flags.c_contiguous or a.flags.f_contiguous)]
    else:
        bad = [a for a in operands if not a.flags.c_contiguous]
        batch = [(1,) * (ndim - a.ndim) + a.shape[:-2] for a in operands]
        if batch[0] != batch[1]:
            _counter.add("elementwise", 0, 3 * (ndim - 2))
    if bad:
        _counter.add("copy", 2 * sum(a.nbytes for a in bad), len(bad))


def _count_concatenate(arrays, moved):
    """CuPy joins more than 8 arrays of one dtype averaging under 2 MiB in one kernel, after copying their pointers
    to the device (and, unless they are C-contiguous pieces of one shape, their sizes and strides: 3 copies);
    otherwise one copy kernel an array."""
    if len(arrays) > 8 and len({a.dtype for a in arrays}) == 1 and sum(a.nbytes for a in arrays) < 2**21 * len(arrays):
        uniform = len({a.shape for a in arrays}) == 1 and all(a.flags.c_contiguous for a in arrays)
        _counter.add("host_to_device", 8 * len(arrays), 1 if uniform else 3)
        _counter.add("elementwise", moved)
    else:
        _counter.add("copy", moved, len(arrays))


class count_syncs:
    """`with count_syncs() as c: ...` then c.count: the device-to-host syncs inside the block."""

    def __enter__(self):
        self.start, self.count = syncs, 0
        return self

    def __exit__(self, *exc):
        self.count = syncs - self.start


# ---- wrapping and unwrapping ----

def _refuse_host_array(value):
    raise TypeError(f"Unsupported type {type(value)}")


def _unwrap(value):
    """A stand-in array -> its NumPy array; a NumPy array -> refused (as CuPy does); containers recursively."""
    if isinstance(value, ndarray):
        return value._a
    if isinstance(value, np.ndarray):
        _refuse_host_array(value)
    if isinstance(value, (list, tuple)):
        return type(value)(_unwrap(v) for v in value)
    if isinstance(value, dict):
        return {k: _unwrap(v) for k, v in value.items()}
    return value


def _wrap(value):
    """NumPy results -> stand-in arrays (a NumPy scalar from a reduction becomes a 0-d array, as in CuPy)."""
    if isinstance(value, np.ndarray):
        return ndarray._of(value)
    if isinstance(value, np.generic) and not isinstance(value, (np.str_, np.bytes_)):
        return ndarray._of(np.asarray(value))
    if isinstance(value, tuple):
        return tuple(_wrap(v) for v in value)
    if isinstance(value, list):
        return [_wrap(v) for v in value]
    return value


def _on_device(function, name, owner=None):
    def call(*args, **kwargs):
        result = function(*_unwrap(args), **_unwrap(kwargs))
        result = _wrap(result if "out" in kwargs else _as_cupy_allocates(name, result))
        _record(name, (args, _without_out(kwargs)), result, owner)
        return result
    call.__name__ = name
    return call


class ndarray:
    """An array on the stand-in GPU."""
    __slots__ = ("_a",)
    __array_priority__ = 100

    def __init__(self, shape, dtype=float):
        self._a = np.empty(shape, dtype=dtype)

    @classmethod
    def _of(cls, array):
        out = cls.__new__(cls)
        out._a = array
        return out

    # what leaves the device: each one is a sync
    def get(self, stream=None, order="C", out=None, blocking=True):
        _sync(self.nbytes)
        return np.array(self._a, copy=True)

    def _to_host(convert):
        """A method that syncs, then converts the host array with `convert`."""
        def method(self, *args):
            _sync(self.nbytes)
            return convert(self._a, *args)
        return method

    item = _to_host(np.ndarray.item)
    tolist = _to_host(np.ndarray.tolist)
    __float__, __int__, __bool__ = _to_host(float), _to_host(int), _to_host(bool)
    __repr__ = __str__ = _to_host(repr)
    del _to_host

    def __array__(self, dtype=None, copy=None):
        raise TypeError("Implicit conversion to a NumPy array is not allowed. Please use `.get()` to construct a "
                        "NumPy array explicitly.")

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        for value in inputs:
            if isinstance(value, np.ndarray):
                _refuse_host_array(value)
        if method != "__call__" or ufunc.__name__ not in NAMES["ufuncs"]:
            return NotImplemented
        result = getattr(ufunc, method)(*_unwrap(inputs), **_unwrap(kwargs))
        result = _wrap(result if "out" in kwargs else _as_cupy_allocates(ufunc.__name__, result))
        _record(ufunc.__name__, (inputs, _without_out(kwargs)), result)
        return result

    def __array_function__(self, func, types_, args, kwargs):
        result = func(*_unwrap(args), **_unwrap(kwargs))
        result = _wrap(result if "out" in kwargs else _as_cupy_allocates(func.__name__, result))
        _record(func.__name__, (args, _without_out(kwargs)), result)
        return result

    # what stays on the device
    shape = property(lambda self: self._a.shape)
    dtype = property(lambda self: self._a.dtype)
    ndim = property(lambda self: self._a.ndim)
    size = property(lambda self: self._a.size)
    itemsize = property(lambda self: self._a.itemsize)
    nbytes = property(lambda self: self._a.nbytes)
    strides = property(lambda self: self._a.strides)
    flags = property(lambda self: self._a.flags)
    @property
    def T(self):
        result = ndarray._of(self._a.T)
        _record("T", (), result, self)
        return result

    def __getattr__(self, name):
        if name not in NAMES["cupy.ndarray"]:
            raise AttributeError(f"'cupy.ndarray' object has no attribute {name!r} (not in every supported CuPy)")
        attribute = getattr(self._a, name)
        return _on_device(attribute, name, self) if callable(attribute) else _wrap(attribute)

    def __len__(self):
        return len(self._a)

    def __iter__(self):
        return (ndarray._of(np.asarray(row)) for row in self._a)

    def __getitem__(self, index):
        inner = _index(index)
        raw = self._a[inner]
        if isinstance(raw, np.generic):  # a single element: NumPy gives a number, CuPy a 0-d view of it
            raw = self._a[(inner if isinstance(inner, tuple) else (inner,)) + (Ellipsis,)]
        result = ndarray._of(raw)
        _record("__getitem__", index, result, self)
        return result

    def __setitem__(self, index, value):
        index = _index(index)
        _record("__setitem__", value, ndarray._of(np.asarray(self._a[index])))  # reads value, writes the slice
        self._a[index] = value._a if isinstance(value, ndarray) else value  # host data may be written in (a copy)

    def __copy__(self):
        result = ndarray._of(self._a.copy())
        _record("__copy__", (), result, self)
        return result

    __hash__ = None


def _index(index):
    """An index for the NumPy array underneath; boolean masks need the count of True on the host: a sync."""
    parts = index if isinstance(index, tuple) else (index,)
    unwrapped = []
    for part in parts:
        if isinstance(part, ndarray):
            if part.dtype == bool:
                _sync()
            part = part._a
        unwrapped.append(part)
    return tuple(unwrapped) if isinstance(index, tuple) else unwrapped[0]


def _operator(name, inplace=False):
    def method(self, *others):
        for other in others:
            if isinstance(other, np.ndarray):
                _refuse_host_array(other)
        args = [o._a if isinstance(o, ndarray) else o for o in others]
        result = getattr(self._a, name)(*args)
        if result is NotImplemented:
            return NotImplemented
        result = self if inplace else _wrap(_as_cupy_allocates(name, result))
        _record(name, others, result, self)
        return result
    method.__name__ = name
    return method


for _name in ["__add__", "__radd__", "__sub__", "__rsub__", "__mul__", "__rmul__", "__truediv__", "__rtruediv__",
              "__floordiv__", "__rfloordiv__", "__mod__", "__rmod__", "__pow__", "__rpow__", "__matmul__",
              "__rmatmul__", "__and__", "__rand__", "__or__", "__ror__", "__xor__", "__rxor__", "__lshift__",
              "__rlshift__", "__rshift__", "__rrshift__", "__eq__", "__ne__", "__lt__", "__le__", "__gt__", "__ge__",
              "__neg__", "__pos__", "__abs__", "__invert__"]:
    setattr(ndarray, _name, _operator(_name))
for _name in ["__iadd__", "__isub__", "__imul__", "__itruediv__", "__ifloordiv__", "__imod__", "__ipow__", "__iand__",
              "__ior__", "__ixor__", "__ilshift__", "__irshift__"]:
    setattr(ndarray, _name, _operator(_name, inplace=True))
ndarray.__module__ = "cupy"


# ---- the module: functions, ufuncs, random, cuda ----

class _Ufunc:
    """A CuPy ufunc: callable, with the methods every supported CuPy ufunc has (at, reduce, ...)."""

    def __init__(self, name):
        self._ufunc, self.__name__ = getattr(np, name), name

    def __call__(self, *args, **kwargs):
        result = self._ufunc(*_unwrap(args), **_unwrap(kwargs))
        result = _wrap(result if "out" in kwargs or len(args) > self._ufunc.nin else
                       _as_cupy_allocates(self.__name__, result))
        _record(self.__name__, (args, _without_out(kwargs)), result)
        return result

    def __getattr__(self, name):
        if name not in NAMES["cupy.ufunc"]:
            raise AttributeError(f"'cupy.ufunc' object has no attribute {name!r}")
        return _on_device(getattr(self._ufunc, name), f"{self.__name__}.{name}")


def _to_device(data, dtype=None, copy=True, order="K", **kwargs):
    """asarray/array: host data (lists, NumPy arrays) is copied to the device; device arrays pass through."""
    if isinstance(data, ndarray):
        result = ndarray._of(np.array(data._a, dtype=dtype, copy=copy)) if (copy or dtype is not None) else data
        _record("asarray", data, result)
        return result
    result = ndarray._of(np.array(data, dtype=dtype, copy=True))
    if _counter is not None:
        _counter.add("host_to_device", result.nbytes)
    return result


class Generator:
    """cupy.random.Generator: NumPy's PCG64 underneath, with only CuPy's methods and no state to save."""

    def __init__(self, seed=None):
        self._rng = np.random.default_rng(seed)

    def __getattr__(self, name):
        if name not in NAMES["cupy.random.Generator"]:
            raise AttributeError(f"'cupy.random.Generator' object has no attribute {name!r}")
        return _on_device(getattr(self._rng, name), name)


def _asnumpy(array, stream=None, order="C", out=None, blocking=True):
    return array.get() if isinstance(array, ndarray) else np.asarray(array)


def _where(condition, *values):
    """CuPy calls `condition.astype(bool)`: a Python bool or number there is an AttributeError, as on a GPU."""
    if not isinstance(condition, (ndarray, np.generic)):
        raise AttributeError(f"'{type(condition).__name__}' object has no attribute 'astype'")
    return _on_device(np.where, "where")(condition, *values)


# ---- the framework's compiled kernels (tinygrad_proust/kernels.py), each run by a NumPy twin of its CUDA ----

def _keep_mask_twin(mask, first, key_high, threshold, scale, n):
    j = np.arange(n, dtype=np.int64)
    x = np.uint32(first) + (j >> 1).astype(np.uint32)  # wraps as unsigned int does
    for shift, factor in ((16, 0x7FEB352D), (15, 0x846CA68B)):
        x ^= x >> np.uint32(shift)
        x *= np.uint32(factor)
        if shift == 16:
            x ^= np.uint32(key_high)
    x ^= x >> np.uint32(16)
    value = np.where(j & 1, x >> np.uint32(16), x & np.uint32(0xFFFF))
    mask.reshape(-1)[:] = np.where(value >= threshold, scale, mask.dtype.type(0))


def _adam_twin(p, g, m, v, beta1, one_minus_beta1, beta2, one_minus_beta2, inv_sqrt_bias2, eps, step_size, decay,
               l2, n):
    param, grad = p.copy(), g.copy()
    if decay != 1:
        param *= decay
    if l2 != 0:
        grad = grad + l2 * param
    m[:] = m * beta1 + grad * one_minus_beta1
    v[:] = v * beta2 + (grad * grad) * one_minus_beta2
    p[:] = param - (m / (np.sqrt(v) * inv_sqrt_bias2 + eps)) * step_size


def _attention_softmax_twin(p, dropped, keep, rows, n, t_query, causal):
    x = p.reshape(rows, n)
    if causal:
        x[(np.arange(rows) % t_query)[:, None] < np.arange(n)] = -np.inf
    x -= x.max(axis=1, keepdims=True)
    np.exp(x, out=x)
    x /= x.sum(axis=1, keepdims=True)
    if isinstance(keep, np.ndarray):
        dropped[...] = p * keep


def _attention_softmax_backward_twin(dp, p, keep, rows, n):
    d = dp.reshape(rows, n)
    if isinstance(keep, np.ndarray):
        d *= keep.reshape(rows, n)
    d -= (d * p.reshape(rows, n)).sum(axis=1, keepdims=True)
    d *= p.reshape(rows, n)


def _gelu_tanh_twin(x, cdf, y, c1, c2, n):
    s = x * x
    s = (s * c1 + c2) * x
    with np.errstate(over="ignore"):  # inf far left of 0: cdf 0, as on a GPU
        cdf[...] = x.dtype.type(1) / (np.exp(s) + x.dtype.type(1))
    y[...] = x * cdf


def _gelu_tanh_backward_twin(x, cdf, g, dx, c3, c4, n):
    d = (x * x * c3 + c4) * x
    dx[...] = (d * ((x.dtype.type(1) - cdf) * cdf) + cdf) * g


# name: (twin, the array arguments it reads, those it writes), by position (a null pointer is read as nothing)
KERNEL_TWINS = {"keep_mask": (_keep_mask_twin, (), (0,)), "adam": (_adam_twin, (0, 1, 2, 3), (0, 2, 3)),
                "attention_softmax": (_attention_softmax_twin, (0, 2), (0, 1)),
                "attention_softmax_backward": (_attention_softmax_backward_twin, (0, 1, 2), (0,)),
                "gelu_tanh": (_gelu_tanh_twin, (0,), (1, 2)),
                "gelu_tanh_backward": (_gelu_tanh_backward_twin, (0, 1, 2), (3,))}


class _RawModule:
    """CuPy's RawModule for the framework's own kernels: each launch runs the kernel's NumPy twin above (the CUDA
    runs only on a real GPU: `gpu_smoke.py`'s tests) and counts as one elementwise kernel."""

    def __init__(self, code, options=(), **kwargs):
        if "extern \"C\" __global__" not in code:
            raise ValueError("the stand-in's RawModule runs only the framework's kernels")

    def get_function(self, name):
        twin, reads, writes = KERNEL_TWINS[name]

        def launch(grid, block, args, shared_mem=0):
            if not all(isinstance(a, ndarray) and a._a.flags.c_contiguous or isinstance(a, np.generic)
                       for a in args):
                raise TypeError(f"{name}: a raw kernel takes C-contiguous device arrays and NumPy scalars")
            values = [a._a if isinstance(a, ndarray) else a for a in args]
            twin(*values)
            if _counter is not None:
                written = list({id(values[i]): values[i] for i in writes}.values())  # an output passed twice
                arrays = [values[i] for i in reads] + written
                _counter.add("elementwise", sum(a.nbytes for a in arrays if isinstance(a, np.ndarray)))
        return launch


def _special_module():
    special = types.ModuleType("cupyx.scipy.special")

    def erf(x):
        result = ndarray._of(np.vectorize(math.erf, otypes=[x.dtype])(x._a))
        _record("erf", x, result)
        return result
    special.erf = erf
    return special


class _Stream:
    def synchronize(self):
        pass


def make_module():
    cupy = types.ModuleType("cupy")
    cupy.__doc__ = __doc__
    cupy.__version__ = "standin"
    cupy.ndarray = ndarray
    cupy.is_standin = True
    for name in NAMES["ufuncs"]:
        if hasattr(np, name):
            setattr(cupy, name, _Ufunc(name))
    special = {"asarray": _to_device, "array": _to_device, "asnumpy": _asnumpy, "where": _where,
               "RawModule": _RawModule,
               "get_array_module": lambda *arrays: cupy if any(isinstance(a, ndarray) for a in arrays) else np}

    def module_getattr(name):
        if name not in NAMES["cupy"]:
            raise AttributeError(f"module 'cupy' has no attribute {name!r} (not in every supported CuPy)")
        if name in special:
            return special[name]
        value = getattr(np, name)
        if isinstance(value, type) or not callable(value):  # dtypes (cupy.float32 is numpy.float32), constants
            return value
        return _on_device(value, name)
    cupy.__getattr__ = module_getattr

    random = types.ModuleType("cupy.random")
    random.Generator = Generator
    random.default_rng = lambda seed=None: Generator(seed)
    cupy.random = random

    cuda = types.ModuleType("cupy.cuda")
    cuda.runtime = types.SimpleNamespace(getDeviceCount=lambda: 1,
                                         getDeviceProperties=lambda device: {"name": b"CuPy stand-in (NumPy, CPU)"})
    cuda.get_current_stream = lambda: _Stream()
    cuda.Stream = _Stream
    cupy.cuda = cuda

    cupyx = types.ModuleType("cupyx")
    cupyx.scipy = types.ModuleType("cupyx.scipy")
    cupyx.scipy.special = _special_module()
    return cupy, cupyx


def install():
    """Make `import cupy` (and cupyx.scipy.special) give the stand-in, in this process."""
    cupy, cupyx = make_module()
    sys.modules.update({"cupy": cupy, "cupy.random": cupy.random, "cupy.cuda": cupy.cuda, "cupyx": cupyx,
                        "cupyx.scipy": cupyx.scipy, "cupyx.scipy.special": cupyx.scipy.special})
    return cupy
