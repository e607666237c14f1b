"""tinygrad_proust: a small reverse-mode autograd over NumPy (CPU) and CuPy (GPU), and a GPT built on it."""
from . import functional, rng
from .creation import (arange, cat, empty, eye, full, full_like, ones, ones_like, rand, randint, randn, stack,
                       tensor, zeros, zeros_like)
from .debug import AnomalyError, break_on, detect_anomaly
from .device import DeviceError, gpu_available
from .functional import use_fused, where
from .gradcheck import GradcheckError, gradcheck
from .graph import record_modules, render_graph
from .tensor import (Function, Observer, Tensor, observe, bool_, float16, float32, float64, int32, int64, is_grad_enabled,
                     no_grad)

manual_seed = rng.manual_seed

__all__ = [
    "Tensor", "Function", "Observer", "observe", "tensor", "zeros", "ones", "full", "full_like", "empty", "eye",
    "zeros_like", "ones_like", "randn", "rand", "randint",
    "arange", "cat", "stack", "where", "no_grad", "is_grad_enabled", "manual_seed", "gradcheck", "GradcheckError",
    "DeviceError", "gpu_available", "detect_anomaly", "break_on", "AnomalyError", "record_modules", "render_graph", "use_fused", "functional", "float16", "float32", "float64", "int32", "int64",
    "bool_",
]
