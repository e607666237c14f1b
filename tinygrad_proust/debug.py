"""Debugging tools, both observers of the engine (tensor.observe):

detect_anomaly(): stop at the op that first produces a NaN or an Inf, forward or backward (as torch.autograd).
    Inside the block every op's output (forward) and every gradient it returns (backward) is checked; the error
    names the op, its input shapes and the line of your code that created it. Each check reads the array on the
    host, so it is slow: use it to find a bug, not to train.

break_on(op_name, phase="backward", module=None, every=False): open the debugger inside the named op's backward
    (or forward) the next time it runs, so `python -m pdb my_script.py` then `c` lands in, say, Softmax.backward
    with `self` and `g` to print. every=True stops each time it runs (each layer's attention, in turn); module=
    "blocks.1.attn" only where that module (or one inside it) made the op. A block in which the op never ran
    warns, naming the ops that did. break_on("accumulate") stops in the engine itself, between two ops, where it
    sums a gradient down to a broadcast input's shape or adds it to one that input's other consumers gave.
"""
import contextlib
import os
import pdb
import sys
import traceback
import warnings

from .device import array_module
from .tensor import Function, Observer, Tensor, observe

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
    def __init__(self, op_name, phase, module, every):
        self.op_name, self.phase, self.module, self.every = op_name, phase, module, every
        self.stops, self.ran, self.elsewhere = 0, set(), set()  # ops run in the phase; modules it ran in instead

    def before(self, ctx, phase):
        if phase == self.phase:
            self.ran.add(ctx.name)
            if ctx.name == self.op_name and self._inside(ctx):
                self._stop(sys._getframe())

    def accumulate(self, ctx, parent, grad, earlier):
        if self.op_name == "accumulate" and (earlier is not None or tuple(grad.shape) != parent.shape) \
                and self._inside(ctx):
            frame = sys._getframe()
            while frame.f_code is not Tensor.backward.__code__:  # the engine's loop, to stop in
                frame = frame.f_back
            self._stop(frame, in_engine=True)

    def _inside(self, ctx):
        if self.module is None:
            return True
        name = ctx.module_name
        if name == self.module or name.startswith(self.module + "."):
            return True
        self.elsewhere.add(name or "no module")
        return False

    def _stop(self, frame, in_engine=False):
        self.stops += 1
        if self.every or self.stops == 1:  # once, unless every=True: `c` in the debugger runs on to the end
            enter_debugger(frame, in_engine)

    def warning(self):
        """One line saying why the block never stopped, or None if it did."""
        if self.stops:
            return None
        where = f" in {self.module}" if self.module else ""
        if self.elsewhere:
            return f"break_on: {self.op_name} ran only outside {self.module}, in: {', '.join(sorted(self.elsewhere))}"
        if self.op_name == "accumulate":
            return f"break_on: the backward pass summed no gradient{where} inside the block"
        ran = ", ".join(sorted(self.ran)) or "none"
        return f"break_on: no {self.op_name} {self.phase} ran{where} inside the block; the ops that ran: {ran}"


# The engine's own frames: stepping passes over them, so the first stop is the op's `def forward/backward` line.
_ENGINE_MODULES = ["tinygrad_proust.tensor", "tinygrad_proust.debug"]


def enter_debugger(frame, in_engine=False):
    """Stop in the debugger at the next op frame called from `frame` (in_engine: at the next line of `frame`, the
    engine's own loop), honouring PYTHONBREAKPOINT as breakpoint() does: "0" turns it off; a debugger of your
    choice (ipdb.set_trace, an IDE's hook) stops here instead, and one `s` then enters the op."""
    if sys.breakpointhook is not sys.__breakpointhook__:  # an IDE (or a test) installed its own hook
        return sys.breakpointhook()
    setting = os.environ.get("PYTHONBREAKPOINT", "")
    if setting == "0":
        return None
    if setting not in ("", "pdb.set_trace"):
        return sys.breakpointhook()
    if not in_engine:
        return pdb.Pdb(skip=_ENGINE_MODULES).set_trace(frame)
    debugger = pdb.Pdb(skip=["tinygrad_proust.debug", "bdb"])
    debugger.set_trace(frame)
    debugger.set_next(frame)  # stop in the engine's loop only, not in the calls it is returning from


@contextlib.contextmanager
def break_on(op_name, phase="backward", module=None, every=False):
    """`with break_on("Softmax"):` stops in Softmax.backward the next time it runs; phase="forward" for forward;
    every=True at each time it runs; module="blocks.1.attn" only in ops that module (or one inside it) made, by
    the names the model's named_modules() gives. break_on("accumulate") stops in the engine's backward loop
    where it sums a gradient to a broadcast input's shape, or adds it to a gradient already there. If the block
    ends without a stop, a warning says which ops ran instead."""
    if phase not in ("forward", "backward"):
        raise ValueError(f"break_on: phase must be 'forward' or 'backward', got {phase!r}")
    if op_name not in op_classes() and op_name != "accumulate":
        raise ValueError(f"break_on: no op named {op_name!r}; ops are: {', '.join(sorted(op_classes()))} "
                         "(or 'accumulate', the engine's step between two ops)")
    if op_name == "accumulate" and phase != "backward":
        raise ValueError("break_on: 'accumulate' is a step of the backward pass; leave phase='backward'")
    with observe(_BreakOn(op_name, phase, module, every)) as observer:
        yield observer
    message = observer.warning()
    if message:
        warnings.warn(message, stacklevel=3)
