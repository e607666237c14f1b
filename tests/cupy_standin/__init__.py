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
- reductions return 0-d arrays, not NumPy scalars.

What it counts: every device-to-host sync (`syncs`), so a test can assert that a training step does none.

What it cannot catch: speed, memory, kernels that compile on a GPU, float differences of GPU math (atomic adds,
fused multiply-adds, cuBLAS's summation order), and real CuPy behaviour at the edges NumPy and CuPy differ on
silently (out-of-range indices wrap in CuPy and raise in NumPy).
"""
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


def _sync():
    global syncs
    syncs += 1


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


def _on_device(function, name):
    def call(*args, **kwargs):
        return _wrap(function(*_unwrap(args), **_unwrap(kwargs)))
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
        _sync()
        return np.array(self._a, copy=True)

    def _to_host(convert):
        """A method that syncs, then converts the host array with `convert`."""
        def method(self, *args):
            _sync()
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
        return _wrap(getattr(ufunc, method)(*_unwrap(inputs), **_unwrap(kwargs)))

    def __array_function__(self, func, types_, args, kwargs):
        return _wrap(func(*_unwrap(args), **_unwrap(kwargs)))

    # what stays on the device
    shape = property(lambda self: self._a.shape)
    dtype = property(lambda self: self._a.dtype)
    ndim = property(lambda self: self._a.ndim)
    size = property(lambda self: self._a.size)
    itemsize = property(lambda self: self._a.itemsize)
    nbytes = property(lambda self: self._a.nbytes)
    strides = property(lambda self: self._a.strides)
    flags = property(lambda self: self._a.flags)
    T = property(lambda self: ndarray._of(self._a.T))

    def __getattr__(self, name):
        if name not in NAMES["cupy.ndarray"]:
            raise AttributeError(f"'cupy.ndarray' object has no attribute {name!r} (not in every supported CuPy)")
        attribute = getattr(self._a, name)
        return _on_device(attribute, name) if callable(attribute) else _wrap(attribute)

    def __len__(self):
        return len(self._a)

    def __iter__(self):
        return (ndarray._of(np.asarray(row)) for row in self._a)

    def __getitem__(self, index):
        index = _index(index)
        return _wrap(self._a[index])

    def __setitem__(self, index, value):
        value = value._a if isinstance(value, ndarray) else value  # host data may be written in (a copy)
        self._a[_index(index)] = value

    def __copy__(self):
        return ndarray._of(self._a.copy())

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
        return self if inplace else _wrap(result)
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
        return _wrap(self._ufunc(*_unwrap(args), **_unwrap(kwargs)))

    def __getattr__(self, name):
        if name not in NAMES["cupy.ufunc"]:
            raise AttributeError(f"'cupy.ufunc' object has no attribute {name!r}")
        return _on_device(getattr(self._ufunc, name), name)


def _to_device(data, dtype=None, copy=True, order="K", **kwargs):
    """asarray/array: host data (lists, NumPy arrays) is copied to the device; device arrays pass through."""
    if isinstance(data, ndarray):
        return ndarray._of(np.array(data._a, dtype=dtype, copy=copy)) if (copy or dtype is not None) else data
    return ndarray._of(np.array(data, dtype=dtype, copy=True))


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


def _special_module():
    special = types.ModuleType("cupyx.scipy.special")

    def erf(x):
        return ndarray._of(np.vectorize(math.erf, otypes=[x.dtype])(x._a))
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
    special = {"asarray": _to_device, "array": _to_device, "asnumpy": _asnumpy,
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
