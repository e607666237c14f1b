"""Debugging tools, both observers of the engine (tensor.observe):

detect_anomaly(): stop at the op that first produces a NaN or an Inf, forward or backward (as torch.autograd).
    Inside the block every op's output (forward) and every gradient it returns (backward) is checked; the error
    names the op, its input shapes and the line of your code that created it. Each check reads the array on the
    host, so it is slow: use it to find a bug, not to train.

break_on(op_name, phase="backward"): open the debugger inside the named op's backward (or forward) the next time
    it runs, so `python -m pdb my_script.py` then `c` lands in, say, Softmax.backward with `self` and `g` to print.
"""
import contextlib
import os
import pdb
import sys
import traceback

from .device import array_module
from .tensor import Function, Observer, observe

_PACKAGE = os.path.dirname(os.path.abspath(__file__))


class AnomalyError(FloatingPointError):
    pass


def _user_frame():
    """The innermost stack frame outside this package: the line of user code that ran the op."""
    for frame in reversed(traceback.extract_stack()):
        if not os.path.abspath(frame.filename).startswith(_PACKAGE):
            return f"{frame.filename}:{frame.lineno}: {frame.line}"
    return "unknown"


class _AnomalyCheck(Observer):
    def before(self, ctx, phase):
        if phase == "forward":
            ctx.created_at = _user_frame()

    def after(self, ctx, phase, arrays):
        for array in arrays:
            if array is not None and _has_nan_or_inf(array):
                kind = "NaN" if bool(array_module(array).isnan(array).any()) else "Inf"
                shapes = ", ".join(str(p.shape) for p in ctx.parents)
                where = "output" if phase == "forward" else "gradient"
                raise AnomalyError(f"{ctx.name} produced {kind} in its {phase} {where} (input shapes {shapes}); "
                                   f"the op was created at {getattr(ctx, 'created_at', 'unknown')}")


def _has_nan_or_inf(array):
    return array.dtype.kind == "f" and not bool(array_module(array).isfinite(array).all())


def detect_anomaly():
    """`with detect_anomaly():` raises AnomalyError at the first op whose output or gradient is NaN or Inf."""
    return observe(_AnomalyCheck())


# ---- break_on ----

def op_classes():
    """{name: Function subclass} of every op defined so far (ops.py, fused.py, and any of your own)."""
    found, todo = {}, [Function]
    while todo:
        for sub in todo.pop().__subclasses__():
            found.setdefault(sub.__name__, sub)
            todo.append(sub)
    return found


class _BreakOn(Observer):
    def __init__(self, op_name, phase):
        self.op_name, self.phase, self.fired = op_name, phase, False

    def before(self, ctx, phase):
        if not self.fired and phase == self.phase and type(ctx).__name__ == self.op_name:
            self.fired = True  # once: `c` in the debugger runs on to the end
            enter_debugger()


# The engine's own frames: stepping passes over them, so the first stop is the op's `def forward/backward` line.
_ENGINE_MODULES = ["tinygrad_proust.tensor", "tinygrad_proust.debug"]


def enter_debugger():
    """Stop in the debugger at the next op frame, honouring PYTHONBREAKPOINT as breakpoint() does:
    "0" turns it off; a debugger of your choice (ipdb.set_trace, an IDE's hook) stops here instead, and one
    `s` then enters the op."""
    if sys.breakpointhook is not sys.__breakpointhook__:  # an IDE (or a test) installed its own hook
        return sys.breakpointhook()
    setting = os.environ.get("PYTHONBREAKPOINT", "")
    if setting == "0":
        return None
    if setting not in ("", "pdb.set_trace"):
        return sys.breakpointhook()
    pdb.Pdb(skip=_ENGINE_MODULES).set_trace(sys._getframe().f_back)


@contextlib.contextmanager
def break_on(op_name, phase="backward"):
    """`with break_on("Softmax"):` stops in Softmax.backward the next time it runs; phase="forward" for forward."""
    if phase not in ("forward", "backward"):
        raise ValueError(f"break_on: phase must be 'forward' or 'backward', got {phase!r}")
    if op_name not in op_classes():
        raise ValueError(f"break_on: no op named {op_name!r}; ops are: {', '.join(sorted(op_classes()))}")
    with observe(_BreakOn(op_name, phase)) as observer:
        yield observer
