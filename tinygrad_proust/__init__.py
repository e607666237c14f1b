"""tinygrad_proust: a small reverse-mode autograd over NumPy (CPU) and CuPy (GPU), and a GPT built on it."""
import functools

from . import functional, rng
from .creation import (arange, cat, empty, eye, full, full_like, linspace, multinomial, ones, ones_like, rand, randint,
                       randn, randperm, stack, tensor, zeros, zeros_like)
from .debug import AnomalyError, break_on, detect_anomaly
from .device import DeviceError, gpu_available
from .functional import std_mean, use_fused, var_mean, where
from .gradcheck import GradcheckError, gradcheck
from .graph import render_graph
from .nn import record_modules
from .tensor import (Function, Observer, Tensor, observe, bool_, enable_grad, float16, float32, float64,
                     inference_mode, int32, int64, is_grad_enabled, long, no_grad, set_grad_enabled)

manual_seed, Generator = rng.manual_seed, rng.Generator
einsum, pad = functional.einsum, functional.pad
# torch.exp(x), torch.maximum(a, b), ...: the Tensor methods as functions, under PyTorch's names
TENSOR_FUNCTIONS = ("abs", "exp", "log", "sqrt", "rsqrt", "tanh", "sigmoid", "sin", "cos", "erf", "square", "clamp",
                    "clip", "maximum", "minimum", "sum", "mean", "max", "min", "var", "std", "logsumexp", "cumsum",
                    "argmax", "argmin", "sort", "argsort", "topk", "gather", "matmul", "softmax", "cumprod",
                    "log_softmax", "flip", "tril", "triu", "transpose", "permute", "reshape", "flatten",
                    "unsqueeze", "squeeze", "clone", "isnan", "isinf", "isfinite", "logical_not", "repeat_interleave",
                    "add", "sub", "mul", "div", "relu", "split", "chunk", "unbind", "amax", "amin", "norm", "mm",
                    "bmm", "outer", "roll", "index_select", "allclose", "equal", "remainder", "fmod", "floor_divide",
                    "scatter", "scatter_add")
globals().update({name: getattr(Tensor, name) for name in TENSOR_FUNCTIONS})


def _number_first(method):
    """torch.add(2, t), torch.remainder(7, t), ...: these take a number first too, made a tensor like the other
    (torch.add(2, 3): two numbers, a 0-d tensor of the first's kind)."""
    def function(input, other):
        if not isinstance(input, Tensor):
            input = other._operand(input) if isinstance(other, Tensor) else tensor(input)
        return method(input, other)
    return functools.update_wrapper(function, method)


globals().update({name: _number_first(getattr(Tensor, name))
                  for name in ("add", "sub", "mul", "div", "remainder", "floor_divide")})
globals().update({"float": float32, "double": float64, "bool": bool_})  # torch.float, torch.double, torch.bool
from_numpy = Tensor  # shares the array's memory, as torch.from_numpy does

__all__ = [
    "Tensor", "Function", "Observer", "observe", "tensor", "multinomial", "zeros", "ones", "full", "full_like", "empty",
    "eye", "zeros_like", "ones_like", "randn", "rand", "randint", "randperm", "arange", "linspace", "cat", "stack",
    "where", "no_grad", "enable_grad", "inference_mode", "set_grad_enabled", "is_grad_enabled", "manual_seed",
    "Generator", "gradcheck", "GradcheckError", "DeviceError", "gpu_available", "detect_anomaly", "break_on",
    "AnomalyError", "record_modules", "render_graph", "use_fused", "functional", "float16", "float32", "float64",
    "int32", "int64", "long", "bool_", "einsum", "pad", "from_numpy", "double", "var_mean", "std_mean",
    *TENSOR_FUNCTIONS,
]
