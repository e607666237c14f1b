"""Devices: "cpu" is NumPy, "gpu" (alias "cuda") is CuPy.

The array module (`xp`) is always read off the data, so one code path serves both devices:
an op calls `xp.exp(x)` and gets NumPy or CuPy depending on where `x` lives.
"""
import numpy as np


class DeviceError(RuntimeError):
    """A device was asked for that this machine cannot give, or two devices were mixed."""


_DEVICE_ALIASES = {"cpu": "cpu", "gpu": "gpu", "cuda": "gpu"}
_cupy = None  # imported on first use, so CPU users never need CuPy
_CUDA_LIBRARIES = ("a GPU needs NVIDIA's driver; off Colab, pip install \"cupy-cuda12x[ctk]\" brings CUDA's own "
                   "libraries with CuPy")


def canonical_device(device):
    """'cpu' | 'gpu' from any accepted spelling ('cuda', 'cuda:0', 'GPU', ...)."""
    name = str(device).lower().split(":")[0]
    if name not in _DEVICE_ALIASES:
        raise DeviceError(f"unknown device {device!r}: use 'cpu' or 'gpu' (alias 'cuda')")
    return _DEVICE_ALIASES[name]


def cupy_module():
    """Import CuPy and check that a GPU is there; a one-line DeviceError says what to install otherwise."""
    global _cupy
    if _cupy is None:
        try:
            import cupy
        except ModuleNotFoundError as err:
            if err.name != "cupy":  # CuPy is there, something it needs is not
                raise DeviceError(f"device 'gpu': CuPy is installed but cannot load ({err}); "
                                  f"{_CUDA_LIBRARIES}") from None
            raise DeviceError("device 'gpu' needs CuPy: pip install cupy-cuda12x (CUDA 12) "
                              "or cupy-cuda13x (CUDA 13)") from None
        except ImportError as err:  # CuPy 12 and older fail to import without CUDA's libraries
            raise DeviceError(f"device 'gpu': CuPy is installed but cannot load ({err}); {_CUDA_LIBRARIES}") from None
        try:
            count = cupy.cuda.runtime.getDeviceCount()
        except Exception as err:  # CUDA driver missing or broken
            raise DeviceError(f"device 'gpu': CuPy is installed but no CUDA GPU is usable ({err}); "
                              f"{_CUDA_LIBRARIES}") from None
        if count == 0:
            raise DeviceError("device 'gpu': CuPy is installed but this machine has no CUDA GPU")
        _cupy = cupy
    return _cupy


def gpu_available():
    """True when CuPy imports and sees at least one GPU."""
    try:
        cupy_module()
        return True
    except DeviceError:
        return False


_gpu_types = {}  # array type -> lives on the GPU? (asked on every op, so answered once per type)


def is_gpu_array(array):
    kind = type(array)
    if kind not in _gpu_types:
        _gpu_types[kind] = kind.__module__.split(".")[0] == "cupy"
    return _gpu_types[kind]


def launch_bound(array):
    """Whether work on `array`'s device is bound by launches rather than by the cache: on a GPU every op is a kernel
    launch of 10-20 µs, so fewer, larger ops win (an optimizer step over whole parameter groups, attention over all
    query rows at once); on a CPU an op is a function call, and cache-sized pieces win (parameter by parameter,
    attention in blocks of query rows). The one place the framework picks a strategy by device; both strategies
    compute the same math."""
    return is_gpu_array(array)


def array_module(array):
    """numpy or cupy, whichever owns `array` (CuPy is set up on the first GPU array seen, however it was made)."""
    if is_gpu_array(array):
        return _cupy or cupy_module()
    return np


def device_of(array):
    return "gpu" if is_gpu_array(array) else "cpu"


def module_for(device):
    """The array module that backs `device`."""
    return cupy_module() if canonical_device(device) == "gpu" else np


def as_array(value):
    """An array on its own device: CuPy arrays as they are, anything else through np.asarray."""
    return value if is_gpu_array(value) else np.asarray(value)


def to_device(array, device):
    """Move an array to `device` (no copy when it is already there)."""
    device = canonical_device(device)
    if device == device_of(array):
        return array
    if device == "gpu":
        return cupy_module().asarray(array)
    return array.get()  # CuPy -> NumPy host copy


def reuse_host_memory():
    """Keep freed host memory in this process for the next allocation (glibc only; elsewhere nothing happens).

    A training step allocates and frees the same large temporaries every time. glibc serves blocks above its mmap
    threshold with fresh pages from the OS and hands them back when freed, so every step pays the page faults of
    first touching them again (measured: 10% of nanoGPT's CPU recipe step here). Raising the threshold to glibc's
    maximum (32 MiB on 64-bit) and not trimming the heap keeps those blocks for reuse. Returns whether it applied."""
    import ctypes
    import ctypes.util
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    m_trim_threshold, m_top_pad, m_mmap_threshold = -1, -2, -3
    return bool(mallopt(m_mmap_threshold, 32 * 1024 * 1024) and mallopt(m_trim_threshold, 1 << 30)
                and mallopt(m_top_pad, 64 * 1024 * 1024))
