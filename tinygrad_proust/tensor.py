"""Tensor: an n-d array that remembers how it was made, so that gradients can flow back through it.

    y = f(x1, x2)          forward:  y.data = f.forward(x1.data, x2.data); y._ctx = f; f.parents = (x1, x2)
    loss.backward()        backward: walk the graph from `loss` in reverse topological order; each op's
                           backward maps dL/dy to (dL/dx1, dL/dx2), which are summed into each parent.

Every op is a `Function` subclass in ops.py (primitives) or fused.py (softmax, norms, attention, ...),
with its forward and backward side by side. Backward works on raw NumPy/CuPy arrays, so a debugger
shows numbers, not wrappers.
"""
import collections
import contextlib
import functools
import inspect
import math
import numbers
import operator

import numpy as np

from .device import DeviceError, array_module, canonical_device, device_of, is_gpu_array, to_device

# dtypes under PyTorch's names
float16, float32, float64 = np.float16, np.float32, np.float64
int32, int64, bool_ = np.int32, np.int64, np.bool_
long = int64
_DTYPE_NAMES = {"float16": float16, "float32": float32, "float": float32, "float64": float64, "double": float64,
                "int32": int32, "int64": int64, "long": int64, "bool": bool_}

_grad_enabled = True
MaxResult = collections.namedtuple("max", ["values", "indices"])  # what Tensor.max(dim) returns, as PyTorch's
SortResult = collections.namedtuple("sort", ["values", "indices"])  # sort and topk
_REPR_MAX_VALUES = 8  # a repr shows the values of tensors up to this size
# The modules whose forward is running, as a stack of paths (outermost module first): nn.Module.__call__ pushes
# and pops, and every op records the innermost path, so it knows which module made it (Function.module_name)
module_paths = [()]


class _grad_mode:
    """Inside this block, or a function it decorates, ops record a graph if `enabled`; then the mode before. A
    generator function's body runs in the mode each time it resumes (as PyTorch's), not only while it is made."""

    def __init__(self, enabled):
        self.enabled = enabled

    def __enter__(self):
        global _grad_enabled
        self.previous, _grad_enabled = _grad_enabled, self.enabled

    def __exit__(self, *exc):
        global _grad_enabled
        _grad_enabled = self.previous

    def __call__(self, fn):
        enabled = self.enabled

        @functools.wraps(fn)
        def run(*args, **kwargs):
            with _grad_mode(enabled):
                return fn(*args, **kwargs)

        @functools.wraps(fn)
        def resume(*args, **kwargs):  # each next(), send() and throw() into the generator in the mode
            inner, method, argument = fn(*args, **kwargs), "send", None
            while True:
                try:
                    with _grad_mode(enabled):
                        value = getattr(inner, method)(argument)
                except StopIteration as stop:
                    return stop.value
                try:
                    method, argument = "send", (yield value)
                except GeneratorExit:
                    with _grad_mode(enabled):
                        inner.close()
                    raise
                except BaseException as error:  # thrown in by the caller: on into the generator
                    method, argument = "throw", error
        return resume if inspect.isgeneratorfunction(fn) else run


def no_grad(fn=None):
    """Inside this block ops record no graph (for evaluation and sampling). A decorator with or without its
    parentheses, as PyTorch's: `@no_grad()` and `@no_grad` (then `fn` is the function decorated)."""
    return _grad_mode(False) if fn is None else _grad_mode(False)(fn)


def enable_grad(fn=None):
    """Ops record a graph again inside this block, within a no_grad one (`@enable_grad()` or `@enable_grad`)."""
    return _grad_mode(True) if fn is None else _grad_mode(True)(fn)


def inference_mode(mode=True):
    """As no_grad (PyTorch's also marks the tensors made inside); inference_mode(False) records again; a bare
    `@inference_mode` decorates as `@inference_mode()`."""
    return _grad_mode(False)(mode) if callable(mode) else _grad_mode(not mode)


class set_grad_enabled:
    """Recording on or off at once (`set_grad_enabled(False)` as a statement), and back as it was after a `with`
    block; as a decorator it switches only while the function runs, as PyTorch's. The mode is True or False:
    PyTorch refuses anything else (a bare `@set_grad_enabled` too), and so does this."""

    def __init__(self, mode):
        global _grad_enabled
        if not isinstance(mode, bool):
            raise TypeError(f"set_grad_enabled: mode must be True or False, not {mode!r} ({type(mode).__module__}."
                            f"{type(mode).__name__})")
        self.mode, self.previous, _grad_enabled = mode, _grad_enabled, mode

    def __enter__(self):
        return self

    def __exit__(self, *exception):
        global _grad_enabled
        _grad_enabled = self.previous

    def __call__(self, fn):
        self.__exit__()
        return _grad_mode(self.mode)(fn)


def is_grad_enabled():
    return _grad_enabled


def to_dtype(dtype):
    """A NumPy dtype from a dtype, a dtype name ('float32') or None."""
    if dtype is None:
        return None
    return np.dtype(_DTYPE_NAMES.get(dtype, dtype)) if isinstance(dtype, str) else np.dtype(dtype)


class _Handle:
    """What register_hook and register_*_hook return: .remove() takes the hook out again."""
    _next_id = 0

    def __init__(self, registry, hook):
        self.registry, self.id = registry, _Handle._next_id
        _Handle._next_id += 1
        registry[self.id] = hook

    def remove(self):
        self.registry.pop(self.id, None)


# ------------------------------------------------------------------------------------------------
# Function: one differentiable op
# ------------------------------------------------------------------------------------------------

class Function:
    """One op in the graph. Subclasses write two methods, side by side:

        forward(*arrays, **options) -> array    computes the output and stores what backward needs
                                                as named attributes (self.x, self.y, self.mask, ...)
        backward(grad) -> one gradient per parent (an array, or None where no gradient flows)

    An op of one parent whose gradient is zero but for a part of the input (a slice) may also write
    backward_into(grad, parent_grad): add that part into parent_grad in place. The walk then calls it instead of
    backward (unless an observer is attached), with the parent's gradient so far in an array of the walk's own:
    zeros at first, or a copy of what another op handed over. If it also writes region() -> (dim, start, stop),
    slices that tile their parent along one dim (q, k and v split from one tensor) are joined by one concatenation.

    The instance is the graph node's context: `parents` are the input Tensors, in order; `module_path` the
    modules whose forward made it, outermost first (read `module_name` for their dotted name).
    """
    module_path = ()

    def __init__(self, parents):
        self.parents = parents
        self.xp = array_module(parents[0].data) if parents else np  # numpy or cupy: the op's arrays live there

    @classmethod
    def apply(cls, *parents, **options):
        """Run forward on the parents' arrays and wrap the result in a Tensor that records this op."""
        for p in parents:  # a NumPy array or a list given to a module, say
            if not isinstance(p, Tensor):
                raise TypeError(f"{cls.__name__}: an input is a {type(p).__name__}, not a Tensor (make it one: "
                                "tp.tensor(...))")
        if len(parents) > 1:  # same array type <=> same device; names are worked out only for the error
            kind = type(parents[0].data)
            for p in parents[1:]:
                if type(p.data) is not kind and p.device != parents[0].device:
                    raise DeviceError(f"{cls.__name__}: inputs are on different devices "
                                      f"({parents[0].device} and {p.device}); move them with .to(device)")
        for name, value in options.items():  # masks, targets, indices: arrays that are not inputs
            _check_option_device(cls.__name__, name, value, parents[0])
        ctx = cls(parents)
        ctx.module_path = module_paths[-1]
        if observers:
            notify("before", ctx, "forward")
        try:
            data = _as_array(ctx.forward(*(p.data for p in parents), **options))
        except (ValueError, IndexError) as err:  # name the op and the shapes, whatever NumPy/CuPy said
            if str(err).startswith(cls.__name__):
                raise
            shapes = ", ".join(str(p.shape) for p in parents)
            raise type(err)(f"{cls.__name__}: {err} (input shapes {shapes})") from None
        requires_grad = _grad_enabled and any(p.requires_grad for p in parents)
        out = Tensor._wrap(data, requires_grad, ctx if requires_grad else None)
        if observers:
            notify("after", ctx, "forward", (data,))
        return out

    def forward(self, *arrays, **options):
        raise NotImplementedError

    def backward(self, grad):
        raise NotImplementedError

    backward_into = None

    def region(self):  # with backward_into: (dim, start, stop) where the op's output lies in its input (GetItem's)
        return None

    @property
    def name(self):
        return type(self).__name__

    @property
    def module_name(self):
        """The dotted name of the module that made this op, as the outermost module's named_modules() gives it
        ("blocks.2.attn.attend"); "" for an op made outside any module's forward. Looked up when asked, so
        that recording the path costs the forward pass nothing but a reference."""
        return ".".join(next((name for name, m in outer.named_modules() if m is inner), type(inner).__name__)
                        for outer, inner in zip(self.module_path, self.module_path[1:]))

    def __repr__(self):
        module = f", module={self.module_name}" if len(self.module_path) > 1 else ""
        return f"<{self.name} op, parents={[tuple(p.shape) for p in self.parents]}{module}>"


def _check_option_device(op_name, name, value, like):
    """An array given to an op as an option must live where its inputs do."""
    for part in value if isinstance(value, tuple) else (value,):
        if isinstance(part, np.ndarray) or is_gpu_array(part):
            if device_of(part) != like.device:
                raise DeviceError(f"{op_name}: {name} is on {device_of(part)} but the input is on {like.device}; "
                                  "move it with .to(device)")


# ------------------------------------------------------------------------------------------------
# Observers: tools that watch ops run (detect_anomaly, break_on)
# ------------------------------------------------------------------------------------------------

class Observer:
    """Something that watches every op. Override either method; attach it with `with observe(obs):`.

        before(ctx, phase)          just before the op's forward or backward runs (phase "forward" | "backward")
        after(ctx, phase, arrays)   just after: arrays is (output,) in forward, the parents' gradients in backward
        accumulate(ctx, parent, grad, earlier)   in backward, between two ops: the engine is about to sum `grad`,
                                    what ctx.backward returned for `parent`, down to parent's shape (if ctx
                                    broadcast it) and add it to `earlier`, the gradient parent's other consumers
                                    gave it so far (None if none has yet)

    The observers' own state (which module is running, where to stop) lives with them, in debug.py and graph.py.
    """

    def before(self, ctx, phase):
        pass

    def after(self, ctx, phase, arrays):
        pass

    def accumulate(self, ctx, parent, grad, earlier):
        pass


observers = []  # the active observers; empty unless a debugging tool is on, so ops pay one list check


def notify(event, *args):
    """Call `event` ("before", "after" or "accumulate") of every active observer with these arguments."""
    for observer in observers:
        getattr(observer, event)(*args)


@contextlib.contextmanager
def observe(observer):
    """Inside this block, `observer` sees every op's forward and backward."""
    observers.append(observer)
    try:
        yield observer
    finally:
        observers.remove(observer)


# ------------------------------------------------------------------------------------------------
# The backward walk's pieces (Tensor.backward below runs them): the order it visits the graph, what an op
# becomes once used, and undoing broadcasting
# ------------------------------------------------------------------------------------------------

def topological_order(root, follow=lambda parent: True):
    """Every tensor that leads to root through parents for which follow(parent) holds, each listed after all of
    its parents: an iterative depth-first walk (no recursion, so a deep graph cannot hit Python's limit)."""
    order, visited = [], set()
    stack = [(root, False)]
    while stack:
        node, parents_done = stack.pop()
        if parents_done:
            order.append(node)
            continue
        if id(node) in visited:
            continue
        visited.add(id(node))
        stack.append((node, True))  # comes back off the stack after all of its parents
        stack.extend((p, False) for p in reversed(node.parents) if follow(p) and id(p) not in visited)
    return order


class _Freed(Function):
    """What a node's op becomes once backward has used it: no saved arrays, no parents."""

    def __init__(self, op_name):
        super().__init__(())
        self.op_name = op_name

    @property
    def name(self):
        return f"{self.op_name} (freed)"

    def backward(self, grad):
        raise RuntimeError(f"backward through {self.op_name} a second time: its saved arrays were freed "
                           "after the first backward; pass retain_graph=True to the first call")


def unbroadcast(grad, shape):
    """Sum `grad` down to `shape`: the backward of NumPy broadcasting.

    Broadcasting copies an input along new leading axes and along axes of size 1, so the gradient
    of each copy flows back to the one original: sum over those axes.
    """
    extra = grad.ndim - len(shape)
    if extra > 0:
        grad = grad.sum(axis=tuple(range(extra)))
    axes = tuple(i for i, n in enumerate(shape) if n == 1 and grad.shape[i] != 1)
    if axes:
        grad = grad.sum(axis=axes, keepdims=True)
    return grad


def _side_by_side(pieces):
    """The regions of slices [(op, grad), ...] as [(dim, start, stop, grad)] in order along their one dim, when
    every op has a region and none overlaps another (so that, once all have come, they may tile their parent)."""
    regions = [(*region, g) for ctx, g in pieces if (region := ctx.region()) is not None]
    regions.sort(key=lambda region: region[1])
    if len(regions) < len(pieces) or len({region[0] for region in regions}) > 1 or \
            any(earlier[2] > later[1] for earlier, later in zip(regions, regions[1:])):
        return None
    return regions


def _joined(parent, pieces):
    """The gradients of slices of `parent` as one array, when their regions tile it along one dim (q, k and v split
    from one tensor): each element written once, where zeros and an add per slice would write it twice and read it
    once more. None when they do not tile it."""
    regions = _side_by_side(pieces)
    if regions is None or regions[0][1] != 0 or regions[-1][2] != parent.shape[regions[0][0]] or \
            any(earlier[2] != later[1] for earlier, later in zip(regions, regions[1:])):
        return None
    return pieces[0][0].xp.concatenate([g for *_, g in regions], axis=regions[0][0])


def _fit_to(parent, grad, ctx):
    """The gradient an op returned for `parent`, summed back to parent's shape if the op broadcast it."""
    grad = _as_array(grad)
    if grad.dtype != parent.dtype and parent.dtype.kind == "f":  # a gradient has its input's dtype, as in PyTorch
        grad = grad.astype(parent.dtype)
    if tuple(grad.shape) != parent.shape:
        grad = unbroadcast(grad, parent.shape)
        assert tuple(grad.shape) == parent.shape, \
            f"{ctx.name}.backward: grad shape {tuple(grad.shape)} != input shape {parent.shape}"
    return grad


# ------------------------------------------------------------------------------------------------
# Tensor
# ------------------------------------------------------------------------------------------------

class Tensor:
    """An n-d array (`.data`, NumPy or CuPy) plus what autograd needs: `requires_grad`, `.grad`, and
    `_ctx`, the op that produced it (None for a leaf: an input or a parameter)."""

    __hash__ = object.__hash__  # == is elementwise, as in PyTorch; identity stays the hash

    def __array_ufunc__(self, ufunc, method, *inputs, out=None, **kwargs):
        """NumPy meeting a Tensor: `np.float64(0.5) * t`, `np.ones(3) + t` are the Tensor's ops; an array updated
        in place by a tensor, `p.data += -lr * p.grad` (the hand-written SGD step: .data is the array), takes its
        values."""
        if out is not None:
            return getattr(ufunc, method)(*map(unwrap, inputs), out=tuple(map(unwrap, out)), **kwargs)
        operator_ = _NUMPY_OPERATORS.get(ufunc.__name__)
        if method != "__call__" or operator_ is None or kwargs:
            return NotImplemented
        return operator_(*(x if isinstance(x, Tensor) else self._operand(x) for x in inputs))

    def __init__(self, data, requires_grad=False, device=None, dtype=None, name=None):
        if isinstance(data, Tensor):
            data = data.data
        dtype = to_dtype(dtype)
        if is_gpu_array(data):
            data = data if dtype is None else data.astype(dtype)
        elif hasattr(data, "__array__"):  # a NumPy array (or anything that converts to one) keeps its dtype
            data = np.asarray(data, dtype=dtype)
        else:  # Python number or nested list: floats become float32, as in PyTorch
            data = np.asarray(data, dtype=dtype)
            if dtype is None and data.dtype == np.float64:
                data = data.astype(np.float32)
        if device is not None:
            data = to_device(data, device)
        if data.dtype.kind not in "biuf":
            raise TypeError(f"tensor: {data.dtype} data is not numbers (bool, int or float)")
        self.data = data
        self.requires_grad_(requires_grad)
        self.grad = None
        self.name = name
        self._ctx = None
        self._retains_grad = False
        self._hooks = {}

    @classmethod
    def _wrap(cls, data, requires_grad, ctx):
        """Fast constructor for op outputs: no conversion, just the fields."""
        t = cls.__new__(cls)
        t.data, t.requires_grad, t.grad, t.name = data, requires_grad, None, None
        t._ctx, t._retains_grad, t._hooks = ctx, False, {}
        return t

    # ---- what it is ----
    @property
    def shape(self):
        return tuple(self.data.shape)

    @property
    def ndim(self):
        return self.data.ndim

    @property
    def dtype(self):
        return self.data.dtype

    @property
    def device(self):
        return device_of(self.data)

    @property
    def xp(self):
        """The array module (numpy or cupy) that owns this tensor's data."""
        return array_module(self.data)

    @property
    def is_leaf(self):
        return self._ctx is None

    @property
    def op(self):
        """Name of the op that made this tensor, or None for a leaf."""
        return None if self._ctx is None else self._ctx.name

    @property
    def parents(self):
        return () if self._ctx is None else self._ctx.parents

    def size(self, dim=None):
        return self.shape if dim is None else self.shape[dim]

    def numel(self):
        return int(self.data.size)

    nelement = numel

    def __len__(self):
        return self.shape[0]

    def __repr__(self):
        """Small tensors show their values (a scalar loss shows its number); larger ones their shape and
        summary statistics (norm = sqrt of the sum of squares), taken in float64; a gradient shows its norm."""
        if self.data.size <= _REPR_MAX_VALUES:
            values = np.array2string(to_device(self.data, "cpu"), precision=4, separator=", ", max_line_width=100)
            parts = [values, f"dtype={self.dtype}", f"device={self.device}"]
        else:
            x = self.data.astype(self.xp.float64)  # on its device: only the four numbers come to the host
            parts = [f"shape={self.shape}", f"dtype={self.dtype}", f"device={self.device}", f"norm={_norm(x):.4g}",
                     f"min={float(x.min()):.4g}", f"max={float(x.max()):.4g}", f"mean={float(x.mean()):.4g}"]
        if self.name:
            parts.insert(0, f"name={self.name!r}")
        if self.requires_grad:
            parts.append("requires_grad=True")
        if self._ctx is not None:
            parts.append(f"op={self.op}")
        if self.grad is not None:
            parts.append(f"grad_norm={_norm(self.grad.data.astype(self.xp.float64)):.4g}")
        return f"{type(self).__name__}({', '.join(parts)})"

    def __bool__(self):
        """The truth of a one-element tensor (as PyTorch); `if t:` on more elements is ambiguous, so an error."""
        if self.data.size != 1:
            raise RuntimeError(f"the truth value of a tensor with {self.data.size} elements is ambiguous: "
                               "use .any() or .all()")
        return bool(self.data.reshape(()))

    # ---- leaving the graph, changing device or dtype ----
    def __array__(self, dtype=None, copy=None):  # np.asarray(t) on the CPU, as PyTorch's
        if is_gpu_array(self.data):
            raise TypeError("a GPU tensor becomes a NumPy array only by a copy to the host: call .numpy()")
        array = np.asarray(self.data, dtype=dtype)  # .data may be a NumPy scalar (a 0-d comparison's)
        return array.copy() if copy else array

    def numpy(self):
        """A NumPy copy of the data, on the host."""
        return np.array(to_device(self.data, "cpu"), copy=True)

    def tolist(self):
        return self.numpy().tolist()

    def __float__(self): return float(self.item())
    def __int__(self): return int(self.item())

    def item(self):
        """The value of a one-element tensor as a Python number (synchronises with the GPU)."""
        if self.data.size != 1:
            raise ValueError(f"item() needs a one-element tensor, got shape {self.shape}")
        return self.data.reshape(()).item()

    def detach(self):
        """The same data, cut from the graph."""
        return Tensor._wrap(self.data, False, None)

    def to(self, device=None, dtype=None):
        """A copy on `device` and/or in `dtype`; `to("float64")`-style dtype-only calls work too."""
        if device is not None and to_dtype_or_none(device) is not None:
            device, dtype = None, device
        out = self
        if dtype is not None and to_dtype(dtype) != self.dtype:
            out = ops.Cast.apply(out if to_dtype(dtype).kind == "f" else out.detach(), dtype=to_dtype(dtype))
        if device is not None and canonical_device(device) != self.device:
            out = ops.ToDevice.apply(out, device=canonical_device(device))
        return out

    def cpu(self):
        return self.to("cpu")

    def gpu(self):
        return self.to("gpu")

    cuda = gpu

    def float(self):
        return self.to(dtype=float32)

    def double(self):
        return self.to(dtype=float64)

    def long(self):
        return self.to(dtype=int64)

    def requires_grad_(self, requires_grad=True):
        if requires_grad and self.data.dtype.kind != "f":
            raise TypeError(f"only floating-point tensors can require grad, not {self.data.dtype}")
        self.requires_grad = bool(requires_grad)
        return self

    # ---- autograd ----
    def retain_grad(self):
        """Keep `.grad` on this non-leaf tensor after backward (leaves always keep theirs)."""
        self._retains_grad = True
        return self

    def register_hook(self, fn):
        """Call fn(grad) when this tensor's gradient is computed; if fn returns a Tensor, it replaces the grad.
        Returns a handle: handle.remove() takes the hook off."""
        return _Handle(self._hooks, fn)

    def zero_grad(self):
        self.grad = None

    def backward(self, grad=None, retain_graph=False):
        """Compute d(self)/d(leaf) for every leaf that requires grad, and add it into leaf.grad.

        The walk is iterative: a reverse topological order guarantees that when a node's op runs its
        backward, every consumer of that node has already added its share into the node's gradient.
        Unless `retain_graph`, each op drops its saved arrays as soon as it is used.
        """
        if not self.requires_grad:
            raise RuntimeError("backward() on a tensor that does not require grad (no input had requires_grad=True, "
                               "or it was made under no_grad())")
        if grad is None:
            if self.data.size != 1:
                raise RuntimeError(f"backward() without a gradient needs a one-element tensor, got shape {self.shape}: "
                                   "reduce it first (.sum() or .mean()) or pass grad=")
            grad = self.xp.ones_like(self.data)
        else:
            grad = self.xp.asarray(unwrap(grad), dtype=self.dtype)  # no promotion
            if tuple(grad.shape) != self.shape:
                raise ValueError(f"backward(): grad of shape {tuple(grad.shape)} for a tensor of shape {self.shape}")

        pending = {self: grad}  # dL/d(node) of the nodes not reached yet, keyed by the tensor itself
        owned = set()           # the nodes whose pending gradient is an array this walk made: added to in place
        pieces = {}             # node -> [(op, grad)]: slices' gradients that may tile it, joined when it is reached

        def gather(node):
            """node's gradient in an array of the walk's own (zeros, or a copy of what other ops handed over), the
            slices' gradients waiting for it added in."""
            if node not in owned:
                pending[node] = (self.xp.zeros(node.shape, dtype=node.dtype) if node not in pending
                                 else pending[node].copy())
                owned.add(node)
            for ctx, g in pieces.pop(node, ()):
                ctx.backward_into(g, pending[node])

        for node in reversed(self._topological_order()):
            if node in pieces:  # all of its slices' gradients have come
                joined = None if node in pending else _joined(node, pieces[node])
                if joined is None:
                    gather(node)
                else:
                    pending[node] = joined
                    del pieces[node]
            g = pending.pop(node, None)
            if g is None:
                continue
            owned.discard(node)
            g = node._receive_grad(g)
            ctx = node._ctx
            if ctx is None:  # a leaf: its gradient is in .grad, nothing flows further
                continue
            if ctx.backward_into is not None and not observers:
                parent = ctx.parents[0]  # its gradient waits while the slices may still tile the parent
                pieces.setdefault(parent, []).append((ctx, g))
                if parent in owned or parent in pending or _side_by_side(pieces[parent]) is None:
                    gather(parent)  # they cannot: added in now, as each slice's gradient comes
            else:
                if observers:
                    notify("before", ctx, "backward")
                parent_grads = ctx.backward(g)
                parent_grads = parent_grads if isinstance(parent_grads, tuple) else (parent_grads,)
                if observers:
                    notify("after", ctx, "backward", parent_grads)
                for parent, pg in zip(ctx.parents, parent_grads):
                    if pg is not None and parent.requires_grad:
                        if observers:
                            notify("accumulate", ctx, parent, pg, pending.get(parent))
                        pg = _fit_to(parent, pg, ctx)
                        pending[parent] = pg if parent not in pending else pending[parent] + pg
            if not retain_graph:
                node._ctx = _Freed(ctx.name)

    def _receive_grad(self, g):
        """This tensor's complete gradient has arrived: run its hooks (which may replace it), and keep it in
        .grad if it is a leaf or asked to retain_grad(). Returns the gradient that flows on."""
        for hook in list(self._hooks.values()) if self._hooks else ():
            replaced = hook(Tensor._wrap(g, False, None))
            if replaced is not None:
                g = unwrap(replaced)
                if tuple(g.shape) != self.shape or g.dtype != self.dtype:  # PyTorch refuses either change too
                    raise ValueError(f"a hook on {self.name or 'a tensor'} of shape {self.shape} and dtype "
                                     f"{self.dtype} returned a gradient of shape {tuple(g.shape)} and dtype {g.dtype}")
        if self._ctx is None or self._retains_grad:
            # Accumulate into a new array (never in place: `g` may be shared with another tensor).
            total = _as_array(g if self.grad is None else self.grad.data + g)
            if not total.flags.c_contiguous:  # e.g. a broadcast view from Sum's backward
                total = total.copy()
            self.grad = Tensor._wrap(total, False, None)
        return g

    def _topological_order(self):
        """Nodes that lead to self and require grad, each after all of its parents."""
        return topological_order(self, follow=lambda parent: parent.requires_grad)

    def graph(self, max_nodes=200):
        """A text listing of the graph behind this tensor: one line per node, parents first."""
        from .graph import graph_text
        return graph_text(self, max_nodes=max_nodes)

    def to_dot(self, max_depth=None, collapse=None):
        """The graph behind this tensor as Graphviz DOT text (see graph.graph_dot for the options)."""
        from .graph import graph_dot
        return graph_dot(self, max_depth=max_depth, collapse=collapse)

    # ---- operators: each one line, delegating to a named op ----
    def __add__(self, other): return ops.Add.apply(*_promoted(self, self._operand(other)))
    def __radd__(self, other): return ops.Add.apply(*_promoted(self._operand(other), self))
    def __sub__(self, other): return ops.Sub.apply(*_promoted(self, self._operand(other)))
    def __rsub__(self, other): return ops.Sub.apply(*_promoted(self._operand(other), self))
    def __mul__(self, other): return ops.Mul.apply(*_promoted(self, self._operand(other)))
    def __rmul__(self, other): return ops.Mul.apply(*_promoted(self._operand(other), self))
    def __truediv__(self, other): return ops.Div.apply(*(t._float() for t in _promoted(self, self._operand(other))))
    def __rtruediv__(self, other): return ops.Div.apply(*(t._float() for t in _promoted(self._operand(other), self)))
    def __floordiv__(self, other): return self.floor_divide(other)
    def __rfloordiv__(self, other): return self._operand(other).floor_divide(self)
    def __mod__(self, other): return self.remainder(other)
    def __rmod__(self, other): return self._operand(other).remainder(self)
    def __pow__(self, exponent): return self.pow(exponent)
    def __rpow__(self, base): return ops.Pow.apply(*_promoted(self._operand(base), self))
    def __matmul__(self, other): return self.matmul(other)
    def __rmatmul__(self, other): return self._operand(other).matmul(self)
    def __neg__(self): return ops.Neg.apply(self)
    def __abs__(self): return self.abs()
    def __index__(self):  # lst[t], range(t): an integer tensor of one element only, as PyTorch's
        if self.dtype.kind not in "iu" or self.data.size != 1:
            raise TypeError(f"only an integer tensor of one element is an index, not {self.dtype} of shape "
                            f"{self.shape}")
        return self.item()

    def __format__(self, spec):  # f"{loss:.4f}": a 0-d tensor formats as its number, as PyTorch's
        return format(self.item(), spec) if self.ndim == 0 else object.__format__(self, spec)
    def __getitem__(self, index):
        index = _index_arrays(index)
        parts = index if isinstance(index, tuple) else (index,)
        ints = [isinstance(p, int) and not isinstance(p, bool) for p in parts]
        if ops._has_array(index) and any(ints):  # PyTorch applies integers first (NumPy would move the array dims
            first = tuple(slice(None) if ops._has_array((p,)) else p for p in parts)   # to the front past a slice)
            rest = (p if ops._has_array((p,)) or p is Ellipsis else slice(None) for p, i in zip(parts, ints) if not i)
            return self[first][tuple(rest)]
        return ops.GetItem.apply(self, index=index)
    def __setitem__(self, index, value):
        """In-place assignment, for tensors no gradient flows through (sampling code under no_grad, say)."""
        if self.requires_grad and (_grad_enabled or not self.is_leaf) or \
                isinstance(value, Tensor) and value.requires_grad and _grad_enabled:
            raise ValueError("tensor[...] = value: in-place assignment where a gradient flows is not supported; "
                             "build a new tensor with where(), masked_fill() or cat() (or assign under no_grad)")
        parts = _index_arrays(index)
        data = self.data.copy()  # a new array: a view it shared, or an op that saved the old one, keeps its values
        data[parts] = unwrap(value)
        self.data = data

    # in place, as PyTorch's: x += y, x.add_(y), ... change x itself, so every name for x (a module's parameter, the
    # loop variable of `for p in model.parameters()`) sees the change
    def __iadd__(self, other): return self._in_place(self + other, "+=")
    def __isub__(self, other): return self._in_place(self - other, "-=")
    def __imul__(self, other): return self._in_place(self * other, "*=")
    def __itruediv__(self, other): return self._in_place(self / other, "/=")
    def __ifloordiv__(self, other): return self._in_place(self // other, "//=")
    def __imod__(self, other): return self._in_place(self % other, "%=")
    def add_(self, other, alpha=1): return self._in_place(self + other * alpha, "add_")
    def sub_(self, other, alpha=1): return self._in_place(self - other * alpha, "sub_")
    def mul_(self, other): return self._in_place(self * other, "mul_")
    def div_(self, other): return self._in_place(self / other, "div_")
    def clamp_(self, min=None, max=None): return self._in_place(self.clamp(min, max), "clamp_")
    def fill_(self, value): return self._in_place(self._operand(value), "fill_")
    def zero_(self): return self._in_place(self._operand(0), "zero_")
    def copy_(self, src): return self._in_place(self._operand(src), "copy_")
    def scatter_(self, dim, index, src=None, *, value=None):
        return self._in_place(self.scatter(dim, index, src, value=value), "scatter_")
    def scatter_add_(self, dim, index, src): return self._in_place(self.scatter_add(dim, index, src), "scatter_add_")

    def _in_place(self, result, op):
        """Write `result` into self (into a new array, as __setitem__) where no gradient flows: a plain tensor, or
        a leaf under no_grad (`p -= lr * p.grad`, the hand-written SGD step). Where one does, `x += y` is
        `x = x + y`, a new tensor with the same values, and a named method (x.add_(y), which returns x) refuses.
        Only copy_ and fill_ cast floats to integers (PyTorch refuses `counts += 0.5`)."""
        if self.requires_grad and (_grad_enabled or not self.is_leaf) or result.requires_grad and _grad_enabled:
            if op.endswith("_"):
                raise ValueError(f"{op}: in-place ops where a gradient flows are not supported; build a new tensor "
                                 "(x = x + y), or change a leaf under no_grad")
            return result
        if np.broadcast_shapes(result.shape, self.shape) != self.shape:
            raise ValueError(f"{op}: a result of shape {result.shape} does not fit in a tensor of shape {self.shape}")
        if result.dtype.kind == "f" and self.dtype.kind != "f" and op not in ("copy_", "fill_"):
            raise TypeError(f"{op}: a {result.dtype} result cannot be written into a {self.dtype} tensor")
        data = self.xp.empty_like(self.data)
        data[...] = to_device(result.data, self.device)
        self.data = data
        return self

    def contiguous(self): return self  # every op here takes any memory layout
    def dim(self): return self.ndim

    # comparisons give bool tensors with no gradient
    def __eq__(self, other): return self._compare(other, "equal")
    def __ne__(self, other): return self._compare(other, "not_equal")
    def __lt__(self, other): return self._compare(other, "less")
    def __le__(self, other): return self._compare(other, "less_equal")
    def __gt__(self, other): return self._compare(other, "greater")
    def __ge__(self, other): return self._compare(other, "greater_equal")

    def _operand(self, other):
        """Wrap a Python number or array as a constant Tensor on self's device, in self's dtype
        (so `x * 0.5` never promotes a float32 tensor to float64)."""
        if isinstance(other, Tensor):
            return other
        dtype = self.dtype
        if dtype.kind in "iub" and isinstance(other, float):
            dtype = np.dtype(np.float32)
        elif dtype.kind == "b" and isinstance(other, int) and not isinstance(other, bool):
            dtype = np.dtype(np.int64)                  # True + 2 is 3, as PyTorch's
        elif hasattr(other, "dtype") and other.dtype.kind == "f" and dtype.kind in "iub":
            dtype = other.dtype                         # an array of floats is never truncated to integers
        return Tensor._wrap(self.xp.asarray(other, dtype=dtype), False, None)

    def _float(self):
        """Self in PyTorch's default float dtype if it holds integers or booleans (exp(tensor(2)) is float32)."""
        return self if self.dtype.kind in "fc" else self.to(dtype=float32)

    def _compare(self, other, ufunc):
        other = unwrap(other)
        return Tensor._wrap(getattr(self.xp, ufunc)(self.data, other), False, None)

    # ---- elementwise ----
    def neg(self): return ops.Neg.apply(self)
    def exp(self): return ops.Exp.apply(self._float())
    def log(self): return ops.Log.apply(self._float())
    def sqrt(self): return ops.Sqrt.apply(self._float())
    def rsqrt(self): return ops.Rsqrt.apply(self._float())
    def tanh(self): return ops.Tanh.apply(self._float())
    def sin(self): return ops.Sin.apply(self._float())
    def cos(self): return ops.Cos.apply(self._float())
    def erf(self): return ops.Erf.apply(self._float())
    def cumsum(self, dim): return self._scan(ops.CumSum, dim)
    def cumprod(self, dim): return self._scan(ops.CumProd, dim)

    def _scan(self, op, dim):
        """A cumulative op along dim; a 0-d tensor is its own, 0-d (dim 0 or -1), as PyTorch's."""
        if self.ndim == 0:
            ops._axes(dim, 0)  # checks dim
            return op.apply(self.reshape(1), dim=0).reshape(())
        return op.apply(self, dim=dim)
    def sigmoid(self): return ops.Sigmoid.apply(self._float())
    def relu(self): return ops.Relu.apply(self)
    def silu(self): return ops.Silu.apply(self._float())
    def gelu(self, approximate="none"):
        from . import functional as F
        return F.gelu(self, approximate)
    def abs(self): return ops.Abs.apply(self)
    def clone(self): return ops.Cast.apply(self, dtype=self.dtype)  # a copy, with the identity as its gradient

    def pow(self, exponent):
        if isinstance(exponent, Tensor):
            return ops.Pow.apply(*_promoted(self, exponent))
        if self.dtype.kind in "biu" and isinstance(exponent, float):
            return ops.Pow.apply(self._float(), exponent=exponent)
        return ops.Pow.apply(self, exponent=exponent)

    def maximum(self, other): return ops.Maximum.apply(*_promoted(self, self._operand(other)))
    def minimum(self, other):
        a, b = _promoted(self, self._operand(other))
        if a.dtype.kind != "f":  # integers: no gradient, and no negation to wrap
            return Tensor._wrap(self.xp.minimum(a.data, b.data), False, None)
        return -(-a).maximum(-b)

    def fmod(self, other): return ops.Fmod.apply(*_promoted(self, self._operand(other)))
    def floor_divide(self, other): return ops.FloorDivide.apply(*_promoted(self, self._operand(other)))

    def remainder(self, other):
        """self - floor(self / other) other, with the divisor's sign (Python's %): fmod, plus the divisor where the
        signs differ. These are PyTorch's steps, so its numbers, -0.0 included; the gradient is 1 for self and
        -floor(self / other) for other, as PyTorch's."""
        a, b = _promoted(self, self._operand(other))
        rest = ops.Fmod.apply(a, b)
        other_side = (rest.data != 0) & ((rest.data < 0) != (b.data < 0))
        return ops.Where.apply(rest + b, rest, condition=other_side)

    def masked_fill(self, mask, value):
        """Where `mask` is True, `value`; elsewhere self. No gradient flows to the filled places."""
        mask = unwrap(mask)
        return ops.MaskedFill.apply(self, mask=mask, value=value)

    # ---- reductions ----
    # every reduction takes NumPy's spelling keepdims= for keepdim= too, as PyTorch's do
    def sum(self, dim=None, keepdim=False, dtype=None, *, keepdims=None):
        x = self if dtype is None else self.to(dtype=dtype)
        return ops.Sum.apply(x, dim=dim, keepdim=_keepdim(keepdim, keepdims))

    def mean(self, dim=None, keepdim=False, *, keepdims=None):
        return ops.Mean.apply(self._float(), dim=dim, keepdim=_keepdim(keepdim, keepdims))

    def max(self, dim=None, keepdim=False, *, keepdims=None):
        """The largest value; along `dim`, (values, indices), as PyTorch's (so x.max(1)[0] is the values); given a
        tensor instead of a dim, the elementwise maximum (torch.max(a, b))."""
        if isinstance(dim, Tensor):
            return self.maximum(dim)
        keepdim = _keepdim(keepdim, keepdims)
        values = ops.Max.apply(self, dim=dim, keepdim=keepdim)
        return values if dim is None else MaxResult(values, self.argmax(dim=dim, keepdim=keepdim))

    def min(self, dim=None, keepdim=False, *, keepdims=None):
        """The smallest value; along `dim`, (values, indices) (ties: as max); given a tensor, torch.min(a, b)."""
        if isinstance(dim, Tensor):
            return self.minimum(dim)
        keepdim = _keepdim(keepdim, keepdims)
        if self.dtype.kind != "f":  # no gradient to route, and negating would wrap unsigned or the lowest integer
            values = Tensor._wrap(_as_array(self.data.min(axis=dim, keepdims=keepdim)), False, None)
        else:
            values = -ops.Max.apply(-self, dim=dim, keepdim=keepdim)
        return values if dim is None else MaxResult(values, self.argmin(dim=dim, keepdim=keepdim))

    def amax(self, dim=(), keepdim=False, *, keepdims=None):
        """The largest values over `dim` (an int or a tuple; () for all dims); tied maxima share the gradient
        evenly (where max(dim) gives it to the first), as PyTorch's."""
        axes = ops._axes(None if dim == () else dim, self.ndim)
        return ops.Max.apply(self, dim=axes, keepdim=_keepdim(keepdim, keepdims))

    def amin(self, dim=(), keepdim=False, *, keepdims=None):
        """The smallest values over `dim` (ties as amax's)."""
        keepdim = _keepdim(keepdim, keepdims)
        if self.dtype.kind != "f":  # no gradient, and negating would wrap unsigned or the lowest integer
            axes = ops._axes(None if dim == () else dim, self.ndim)
            return Tensor._wrap(_as_array(self.data.min(axis=axes, keepdims=keepdim)), False, None)
        return -(-self).amax(dim, keepdim)

    def norm(self, p="fro", dim=None, keepdim=False):
        """(Σ |x|^p)^(1/p) over `dim` (all dims for None): p 2 or "fro" (the default), any p > 0, or inf (max |x|).
        Where every entry is 0 the gradient is 0, as PyTorch's (the root's own would be inf · 0)."""
        if p == math.inf:
            return self.abs().amax(() if dim is None else dim, keepdim)
        p = 2 if p == "fro" else p
        if not isinstance(p, numbers.Real) or p <= 0:
            raise ValueError(f"norm: p must be 'fro', inf or a number > 0, got {p!r}")
        total = (self.abs() ** p).sum(dim, keepdim)
        zero = total.data == 0
        return (total.masked_fill(zero, 1) ** (1 / p)).masked_fill(zero, 0)

    def var(self, dim=None, unbiased=None, keepdim=False, *, correction=None, keepdims=None):
        """Variance with Bessel's `correction` (PyTorch's default, 1): sum((x - mean)^2) / (N - correction).
        PyTorch's older spelling, unbiased=True or False, is correction 1 or 0 (one of the two, not both), and
        x.var(False) is x.var(unbiased=False), as PyTorch reads it."""
        if isinstance(dim, bool):
            dim, unbiased = None, dim
        if unbiased is not None and correction is not None:
            raise TypeError("var/std: unbiased= and correction= given at once: give one (unbiased=False is "
                            "correction=0)")
        correction = (1 if unbiased is None else int(unbiased)) if correction is None else correction
        n = self.numel() if dim is None else math.prod(self.shape[d] for d in _dims_tuple(dim))
        centered = self - self.mean(dim=dim, keepdim=True)
        scale = 1 / (n - correction) if n > correction else math.nan  # no degrees of freedom left: nan, as PyTorch
        return (centered * centered).sum(dim=dim, keepdim=_keepdim(keepdim, keepdims)) * scale

    # compositions: their gradients come from their parts
    def std(self, dim=None, unbiased=None, keepdim=False, *, correction=None, keepdims=None):
        return self.var(dim, unbiased, keepdim, correction=correction, keepdims=keepdims).sqrt()
    def square(self): return self * self
    def add(self, other): return self + other
    def sub(self, other): return self - other
    def mul(self, other): return self * other
    def div(self, other): return self / other

    def logsumexp(self, dim, keepdim=False, *, keepdims=None):
        """log Σ exp(x) over `dim`, shifted by the max (a constant: the sum's gradient is softmax(x))."""
        shift = self.max(dim=dim, keepdim=True).values.detach()
        shift = shift.masked_fill(shift.isinf(), 0.0)  # a row all -inf gives -inf (or +inf), not inf - inf
        with np.errstate(divide="ignore"):             # log 0 = -inf there, said without a warning
            out = (self - shift).exp().sum(dim=dim, keepdim=True).log() + shift
        return out if _keepdim(keepdim, keepdims) else out.squeeze(dim)

    def clamp(self, min=None, max=None):
        """min <= x <= max; the gradient passes where x is inside, the bounds included (as PyTorch)."""
        out = self if min is None else ops.Where.apply(*_promoted(self._operand(min), self), condition=self.data < min)
        return out if max is None else ops.Where.apply(*_promoted(out._operand(max), out), condition=out.data > max)
    clip = clamp

    def flip(self, dims):
        dims = {d % self.ndim for d in _dims_tuple(dims)}
        return self[tuple(slice(None, None, -1) if d in dims else slice(None) for d in range(self.ndim))]

    def repeat(self, *sizes):
        """Tile: copies along each dim (as torch.repeat, NumPy's tile); sizes may add leading dims."""
        sizes = _shape_arg(sizes)
        if len(sizes) < self.ndim:
            raise ValueError(f"repeat: {len(sizes)} sizes for a tensor with {self.ndim} dims (give one per dim)")
        x = self.reshape((1,) * (len(sizes) - self.ndim) + self.shape)
        expanded = x.reshape(tuple(m for n in x.shape for m in (1, n)))  # a copy axis before each axis
        expanded = expanded.expand(tuple(m for r, n in zip(sizes, x.shape) for m in (r, n)))
        return expanded.reshape(tuple(r * n for r, n in zip(sizes, x.shape)))

    def repeat_interleave(self, repeats, dim=None):
        """Each element `repeats` times in a row along `dim` (flattened if None); repeats an int."""
        if not isinstance(repeats, numbers.Integral) or repeats < 0:
            raise TypeError(f"repeat_interleave: repeats must be a count (an int >= 0), got {repeats!r} "
                            "(per-element counts are not supported)")
        repeats = int(repeats)
        x, dim = (self.reshape(-1), 0) if dim is None else (self, ops._axes(dim, self.ndim)[0])
        expanded = x.unsqueeze(dim + 1).expand(x.shape[:dim + 1] + (repeats,) + x.shape[dim + 1:])
        return expanded.reshape(x.shape[:dim] + (x.shape[dim] * repeats,) + x.shape[dim + 1:])

    def roll(self, shifts, dims=None):
        """Each entry moved `shifts` places along `dims` (of the flattened tensor for None), those pushed past the
        end coming round to the start."""
        if dims is None:
            return self.flatten().roll(shifts, 0).reshape(self.shape)
        shifts, dims = _dims_tuple(shifts), _dims_tuple(dims)
        if len(shifts) != len(dims):
            raise ValueError(f"roll: {len(shifts)} shifts for {len(dims)} dims")
        out = self
        for shift, dim in zip(shifts, dims):
            (dim,), n = ops._axes(dim, self.ndim), self.shape[dim]
            out = out[(slice(None),) * dim + (self.xp.arange(-shift, n - shift) % max(n, 1),)]
        return out

    def index_select(self, dim, index):
        """The entries at `index` (1-D integers, repeats allowed) along `dim`; a repeated entry's gradients add."""
        index = index.data if isinstance(index, Tensor) else self.xp.asarray(index)
        if index.ndim > 1 or index.dtype.kind not in "iu":
            raise ValueError(f"index_select: index must be 1-D integers, got {index.dtype} of shape "
                             f"{tuple(index.shape)}")
        (dim,) = ops._axes(dim, self.ndim)
        ops.check_ids("index_select: index", index, self.shape[dim])
        return self[(slice(None),) * dim + (index.reshape(-1),)]

    def unflatten(self, dim, sizes):
        dim = dim % self.ndim
        return self.reshape(self.shape[:dim] + tuple(sizes) + self.shape[dim + 1:])

    # tests of the values: bool tensors, no gradient
    def isnan(self): return Tensor._wrap(self.xp.isnan(self.data), False, None)
    def isinf(self): return Tensor._wrap(self.xp.isinf(self.data), False, None)
    def isfinite(self): return Tensor._wrap(self.xp.isfinite(self.data), False, None)
    def logical_not(self): return Tensor._wrap(self.xp.logical_not(self.data), False, None)
    def __invert__(self): return Tensor._wrap(~self.data, False, None)

    def argmax(self, dim=None, keepdim=False, *, keepdims=None):
        """Index of the largest value, the first of ties (no gradient)."""
        return self._index_of("argmax", dim, _keepdim(keepdim, keepdims))

    def argmin(self, dim=None, keepdim=False, *, keepdims=None):
        """Index of the smallest value, the first of ties (no gradient)."""
        return self._index_of("argmin", dim, _keepdim(keepdim, keepdims))

    def _index_of(self, reduction, dim, keepdim):
        if dim is None:
            return Tensor._wrap(self.xp.asarray(getattr(self.data, reduction)()), False, None)
        found = getattr(self.data, reduction)(axis=dim)
        return Tensor._wrap(self.xp.expand_dims(found, dim) if keepdim else found, False, None)

    def multinomial(self, num_samples, replacement=False, generator=None):
        from .creation import multinomial
        return multinomial(self, num_samples, replacement, generator)

    def sort(self, dim=-1, descending=False, stable=False):
        """(values, indices) along `dim`; ties keep their order (a stable sort, whatever `stable` says). The values'
        gradient goes back through gather."""
        xp = self.xp
        # stable: NumPy when asked (its default is not), CuPy always (and some versions take no `kind`)
        argsort = (lambda a: np.argsort(a, axis=dim, kind="stable")) if xp is np else (lambda a: a.argsort(axis=dim))
        if descending:  # sort the reversed row ascending, then reverse: largest first, ties still in their order
            indices = self.shape[dim] - 1 - xp.flip(argsort(xp.flip(self.data, axis=dim)), axis=dim)
        else:
            indices = argsort(self.data)
        return SortResult(self.gather(dim, indices), Tensor._wrap(indices, False, None))

    def argsort(self, dim=-1, descending=False, stable=False): return self.sort(dim, descending).indices

    def topk(self, k, dim=-1, largest=True, sorted=True):
        """The k largest (or smallest) along `dim`, in order: (values, indices)."""
        if not 0 <= k <= self.shape[dim]:
            raise ValueError(f"topk: k = {k} is out of range for dim {dim} of size {self.shape[dim]}")
        values, indices = self.sort(dim, descending=largest)
        index = (slice(None),) * (dim % self.ndim) + (slice(0, k),)
        return SortResult(values[index], indices[index])

    def gather(self, dim, index):
        """out[i][j][k] = self[index[i][j][k]][j][k] for dim 0 (and so on), as torch.gather: index has self's
        number of dims, and its other sizes at most self's. The gradient is scattered back (added where repeated)."""
        return self[self._along("gather", dim, index)]

    def scatter(self, dim, index, src=None, *, value=None):
        """self, with out[index[i][j][k]][j][k] = src[i][j][k] for dim 0 (and so on), as torch.scatter; src may be a
        number (or value=). Where index repeats a place, one of its entries is written (which one, PyTorch does not
        promise either). self's gradient is 0 where written over; each src entry's is read back from the place it
        was written to, even where another entry overwrote it, as PyTorch's."""
        if (src is None) == (value is None):
            raise TypeError("scatter: give what to write as src (a tensor or a number) or as value=, one of the two")
        src = value if src is None else src
        at, part = self._scatter_index("scatter", dim, index, src if isinstance(src, Tensor) else None)
        written = self.xp.zeros(self.shape, dtype=bool)
        written[at] = True
        if part is None:
            return self.masked_fill(written, src)
        scattered = ops.Scatter.apply(part, index=at, shape=self.shape, accumulate=False)
        return ops.Where.apply(scattered, self, condition=written)

    def scatter_add(self, dim, index, src):
        """self, with src[i][j][k] added into out[index[i][j][k]][j][k] for dim 0 (and so on), as torch.scatter_add;
        places that index repeats add up. self's gradient passes as it is; each src entry's is read back from the
        place it was added to."""
        at, part = self._scatter_index("scatter_add", dim, index, src)
        return self + ops.Scatter.apply(part, index=at, shape=self.shape, accumulate=True)

    def _along(self, name, dim, index):
        """The advanced index that reaches self[index[i][j][k]][j][k] (for dim 0; and so on) from each place of index,
        which has self's number of dims and its other sizes at most self's (gather's, scatter's)."""
        index = index.data if isinstance(index, Tensor) else self.xp.asarray(index)
        if index.ndim != self.ndim or index.dtype.kind not in "iu":
            raise ValueError(f"{name}: index must be integers with {self.ndim} dims like the input, got "
                             f"{index.dtype} of shape {tuple(index.shape)}")
        (dim,) = ops._axes(dim, self.ndim)
        if any(i > n for d, (i, n) in enumerate(zip(index.shape, self.shape)) if d != dim):
            raise ValueError(f"{name}: index of shape {tuple(index.shape)} is larger than the input {self.shape} "
                             f"outside dim {dim}")
        ops.check_ids(f"{name}: index", index, self.shape[dim])
        def coordinates(d):  # each position's own coordinate along dim d, broadcast over the others
            return self.xp.arange(index.shape[d]).reshape(tuple(-1 if e == d else 1 for e in range(self.ndim)))
        return tuple(index if d == dim else coordinates(d) for d in range(self.ndim))

    def _scatter_index(self, name, dim, index, src):
        """(gather's index, for a scatter into self, checked as PyTorch checks it; the part of src it covers)."""
        at = self._along(name, dim, index)
        index = at[ops._axes(dim, self.ndim)[0]]
        if src is None:
            return at, None
        if not isinstance(src, Tensor):
            raise TypeError(f"{name}: src must be a tensor, not {type(src).__name__}")
        if src.ndim != self.ndim:
            raise ValueError(f"{name}: src has {src.ndim} dims and the input {self.ndim}: they must have as many")
        if any(i > n for i, n in zip(index.shape, src.shape)):
            raise ValueError(f"{name}: index of shape {tuple(index.shape)} is larger than src {src.shape}")
        if src.dtype != self.dtype:
            raise TypeError(f"{name}: src is {src.dtype} and self {self.dtype}; PyTorch refuses two dtypes too")
        return at, src if src.shape == index.shape else src[tuple(slice(0, n) for n in index.shape)]

    def allclose(self, other, rtol=1e-05, atol=1e-08, equal_nan=False):
        """Whether |self - other| <= atol + rtol |other| everywhere (broadcast), as a Python bool."""
        return bool(self.xp.allclose(self.data, unwrap(other), rtol=rtol, atol=atol, equal_nan=equal_nan))

    def equal(self, other):
        """Whether other has self's shape and values (NaN equals nothing), as a Python bool."""
        return self.shape == other.shape and bool((self.data == other.data).all())

    def any(self, dim=None, keepdim=False, *, keepdims=None):
        return Tensor._wrap(_as_array(self.data.any(axis=dim, keepdims=_keepdim(keepdim, keepdims))), False, None)

    def all(self, dim=None, keepdim=False, *, keepdims=None):
        return Tensor._wrap(_as_array(self.data.all(axis=dim, keepdims=_keepdim(keepdim, keepdims))), False, None)

    def softmax(self, dim=-1):
        from . import functional as F
        return F.softmax(self._float(), dim)

    def log_softmax(self, dim=-1):
        from . import functional as F
        return F.log_softmax(self._float(), dim)

    # ---- movement ----
    def reshape(self, *shape):
        shape = _shape_arg(shape)
        return ops.Reshape.apply(self, shape=shape)

    view = reshape

    def flatten(self, start_dim=0, end_dim=-1):
        end = end_dim % self.ndim if self.ndim else 0
        shape = self.shape[:start_dim] + (-1,) + self.shape[end + 1:]
        return self.reshape(shape)

    def transpose(self, dim0, dim1): return ops.Transpose.apply(self, dim0=dim0, dim1=dim1)

    @property
    def T(self):
        return self.permute(tuple(reversed(range(self.ndim))))

    def permute(self, *dims): return ops.Permute.apply(self, dims=_shape_arg(dims))
    def expand(self, *shape): return ops.Expand.apply(self, shape=_shape_arg(shape))
    def expand_as(self, other): return self.expand(other.shape)
    def view_as(self, other): return self.view(other.shape)

    def unbind(self, dim=0):
        """The slices along `dim`, without it: a tuple of self.shape[dim] tensors."""
        (dim,) = ops._axes(dim, self.ndim)
        return tuple(self[(slice(None),) * dim + (i,)] for i in range(self.shape[dim]))

    def unsqueeze(self, dim):
        if not -self.ndim - 1 <= dim <= self.ndim:
            raise IndexError(f"unsqueeze: dim {dim} is out of range for a tensor with {self.ndim} dims (a new dim "
                             f"goes at {-self.ndim - 1} .. {self.ndim})")
        dim = dim if dim >= 0 else dim + self.ndim + 1
        return self.reshape(self.shape[:dim] + (1,) + self.shape[dim:])

    def squeeze(self, dim=None):
        if dim is None:
            return self.reshape(tuple(n for n in self.shape if n != 1))
        dims = set(ops._axes(dim, self.ndim))
        return self.reshape(tuple(n for i, n in enumerate(self.shape) if not (i in dims and n == 1)))

    def split(self, split_size_or_sections, dim=0):
        """Pieces along `dim`: of size `split_size` each (the last may be smaller), or of the listed sizes."""
        length = self.shape[dim]
        if isinstance(split_size_or_sections, int):
            sizes = [min(split_size_or_sections, length - s) for s in range(0, length, split_size_or_sections)]
        else:
            sizes = list(split_size_or_sections)
            if sum(sizes) != length:
                raise ValueError(f"split: sizes {sizes} do not add up to dim {dim} of length {length}")
        pieces, start = [], 0
        for size in sizes:
            index = [slice(None)] * self.ndim
            index[dim] = slice(start, start + size)
            pieces.append(self[tuple(index)])
            start += size
        return tuple(pieces)

    def chunk(self, chunks, dim=0):
        return self.split(-(-self.shape[dim] // chunks), dim)

    def tril(self, diagonal=0): return ops.Tril.apply(self._matrix_like("tril"), diagonal=diagonal)
    def triu(self, diagonal=0): return ops.Triu.apply(self._matrix_like("triu"), diagonal=diagonal)

    def _matrix_like(self, name):
        if self.ndim < 2:  # NumPy would make a 1-D input a matrix
            raise ValueError(f"{name}: needs a tensor with at least 2 dims, got shape {self.shape}")
        return self

    # ---- matmul ----
    def matmul(self, other):
        """Matrix product with NumPy's rules: batched, broadcast, and 1-D operands promoted then squeezed."""
        if self.ndim == 0 or other.ndim == 0:
            raise ValueError(f"Matmul: both operands need at least 1 dimension, got {self.shape} @ {other.shape}")
        a = self.unsqueeze(0) if self.ndim == 1 else self
        b = other.unsqueeze(-1) if other.ndim == 1 else other
        out = ops.Matmul.apply(a, b)
        if self.ndim == 1:
            out = out.squeeze(-2)
        if other.ndim == 1:
            out = out.squeeze(-1)
        return out

    def mm(self, mat2): return self._matrices("mm", mat2, 2)
    def bmm(self, mat2): return self._matrices("bmm", mat2, 3)

    def _matrices(self, name, other, ndim):
        """self @ other for two matrices (mm) or two batches of as many matrices (bmm): no broadcasting."""
        if self.ndim != ndim or other.ndim != ndim or self.shape[:-2] != other.shape[:-2]:
            raise ValueError(f"{name}: need two {ndim}-D tensors" + (" of the same batch size" if ndim > 2 else "")
                             + f", got {self.shape} and {other.shape}")
        return self.matmul(other)

    def outer(self, vec2):
        """out[i, j] = self[i] · vec2[j]."""
        if self.ndim != 1 or vec2.ndim != 1:
            raise ValueError(f"outer: need two 1-D tensors, got {self.shape} and {vec2.shape}")
        return self.unsqueeze(1) * vec2


# the NumPy ufuncs behind Python's operators, for NumPy values on the left of a Tensor
_NUMPY_OPERATORS = {"add": operator.add, "subtract": operator.sub, "multiply": operator.mul, "divide": operator.truediv,
                    "floor_divide": operator.floordiv, "remainder": operator.mod, "power": operator.pow,
                    "matmul": operator.matmul, "equal": operator.eq, "not_equal": operator.ne, "less": operator.lt,
                    "less_equal": operator.le, "greater": operator.gt, "greater_equal": operator.ge}


def _promoted(*tensors):
    """The tensors cast where PyTorch's promotion differs from NumPy's. The highest kind (bool < integer < float)
    wins without widening (int64 with float32 is float32: NumPy makes it float64), the widest dtype of that kind
    among the tensors with dims, and a 0-d tensor's dtype counts only where none of those is of its kind, as a
    number's (ones(3) * tensor(2.0, dtype=float64) is float32, ones(3, dtype=int32) * tensor(2) int32)."""
    if all(t.dtype == tensors[0].dtype for t in tensors[1:]):  # nearly always: nothing to decide
        return tensors

    def kind(t):
        return {"b": 0, "f": 2}.get(t.dtype.kind, 1)
    top = max(kind(t) for t in tensors)
    deciding = [t for t in tensors if kind(t) == top and t.ndim > 0] or [t for t in tensors if kind(t) == top]
    dtype = np.result_type(*(t.dtype for t in deciding))
    numpy_agrees = np.result_type(*(t.dtype for t in tensors)) == dtype  # then a float of another width may stay
    return tuple(t if t.dtype == dtype or numpy_agrees and kind(t) == top else t.to(dtype=dtype) for t in tensors)


def unwrap(value):
    """The array inside a Tensor; anything else (an array, a number, None) as it is."""
    return value.data if isinstance(value, Tensor) else value


def _norm(x):
    """sqrt(sum of squares) of a float64 array: the size of a tensor or a gradient, as a repr shows it."""
    return float((x * x).sum()) ** 0.5


def _as_array(value):
    """NumPy ufuncs on 0-d arrays return NumPy scalars: turn those back into 0-d arrays."""
    return np.asarray(value) if isinstance(value, np.generic) else value


def to_dtype_or_none(value):
    """A dtype if `value` names one (so .to("float64") works), else None."""
    if isinstance(value, str):
        return _DTYPE_NAMES.get(value)
    try:
        return np.dtype(value) if isinstance(value, (type, np.dtype)) else None
    except TypeError:
        return None


def _shape_arg(shape):
    """Accept both f(2, 3) and f((2, 3))."""
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        return tuple(shape[0])
    return tuple(shape)


def _keepdim(keepdim, keepdims):
    """keepdim, or keepdims, NumPy's spelling of it, which PyTorch's reductions take too (one or the other)."""
    if keepdims is None:
        return keepdim
    if keepdim:
        raise TypeError("keepdim and keepdims given at once: keepdims is NumPy's spelling of keepdim; give one")
    return keepdims


def _dims_tuple(dim):
    return (dim,) if isinstance(dim, int) else tuple(dim)


def _index_arrays(index):
    """Replace Tensors inside an index by their arrays."""
    return tuple(unwrap(i) for i in index) if isinstance(index, tuple) else unwrap(index)


from . import ops  # noqa: E402  (ops import Function from this module)
