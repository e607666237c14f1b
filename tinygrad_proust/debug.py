"""detect_anomaly(): stop at the op that first produces a NaN or an Inf, forward or backward (as torch.autograd).

Inside the block every op's output (forward) and every gradient it returns (backward) is checked; the error
names the op, its input shapes and the line of your code that created it. Each check reads the array on the
host, so it is slow: use it to find a bug, not to train.
"""
import contextlib
import os
import traceback

from .device import array_module
from .tensor import set_anomaly_hook

_PACKAGE = os.path.dirname(os.path.abspath(__file__))


class AnomalyError(FloatingPointError):
    pass


def _user_frame():
    """The innermost stack frame outside this package: the line of user code that ran the op."""
    for frame in reversed(traceback.extract_stack()):
        if not os.path.abspath(frame.filename).startswith(_PACKAGE):
            return f"{frame.filename}:{frame.lineno}: {frame.line}"
    return "unknown"


def _check(ctx, array, phase):
    if phase == "forward":
        ctx.created_at = _user_frame()
    xp = array_module(array)
    if array.dtype.kind == "f" and not bool(xp.isfinite(array).all()):
        kind = "NaN" if bool(xp.isnan(array).any()) else "Inf"
        shapes = ", ".join(str(p.shape) for p in ctx.parents)
        where = "output" if phase == "forward" else "gradient"
        raise AnomalyError(f"{ctx.name} produced {kind} in its {phase} {where} (input shapes {shapes}); "
                           f"the op was created at {getattr(ctx, 'created_at', 'unknown')}")


@contextlib.contextmanager
def detect_anomaly():
    previous = set_anomaly_hook(_check)
    try:
        yield
    finally:
        set_anomaly_hook(previous)
