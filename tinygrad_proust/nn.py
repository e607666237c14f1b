"""tinygrad_proust.nn: modules that hold parameters, named and used as in torch.nn.

A Module registers every Parameter and sub-Module assigned to it as an attribute, in the order they are
assigned, so `named_parameters()` yields dotted names ("blocks.0.attn.c_attn.weight") in definition
order. A Parameter shared by two modules (a tied weight) is one object and is listed once. Buffers
(register_buffer) are tensors a module keeps but does not train, as PyTorch's: a persistent one (the default)
is saved in state_dict beside the parameters, a non-persistent one is not.
"""
import contextlib
import math
from collections import OrderedDict, namedtuple

import numpy as np

from . import functional as F, optim, rng
from .creation import ones, randn, zeros
from .device import as_array, canonical_device, to_device
from .tensor import Tensor, _Handle, module_paths, to_dtype, to_dtype_or_none, unwrap


class Parameter(Tensor):
    """A leaf tensor that a Module owns and an optimizer updates (requires_grad=True by default)."""

    def __init__(self, data, requires_grad=True):
        super().__init__(unwrap(data), requires_grad=requires_grad)

    @property
    def data(self):
        return self.__dict__["data"]

    @data.setter
    def data(self, value):  # `p.data = tensor`, PyTorch's way to swap a parameter's values: the array is kept
        self.__dict__["data"] = unwrap(value)


IncompatibleKeys = namedtuple("IncompatibleKeys", ["missing_keys", "unexpected_keys"])
_global_hooks = {"pre": {}, "post": {}}  # hooks called around every module's forward


def register_module_forward_pre_hook(hook):
    """Call hook(module, args) before the forward of every module (as torch.nn.modules.module's)."""
    return _Handle(_global_hooks["pre"], hook)


def register_module_forward_hook(hook):
    """Call hook(module, args, output) after the forward of every module; a non-None return replaces the output."""
    return _Handle(_global_hooks["post"], hook)


@contextlib.contextmanager
def record_modules(model):
    """Name every parameter of model that has no name by its path ("blocks.0.ln_1.weight"), so drawings and reprs
    label it. (Every op already knows the module that made it: ctx.module_name.) A context manager, as it was when
    it also recorded the ops' modules, so code written for that keeps working."""
    for name, param in model.named_parameters():
        param.name = param.name or name
    yield


class Module:
    """Base class: assign Parameters and Modules as attributes; write forward(); call the module."""

    def __init__(self):
        object.__setattr__(self, "_parameters", OrderedDict())
        object.__setattr__(self, "_modules", OrderedDict())
        object.__setattr__(self, "_buffers", OrderedDict())
        object.__setattr__(self, "_non_persistent_buffers_set", set())
        object.__setattr__(self, "training", True)
        object.__setattr__(self, "_forward_hooks", {})

    def __setattr__(self, name, value):
        if "_parameters" not in self.__dict__:
            raise AttributeError(f"{type(self).__name__}.__init__ must call super().__init__() "
                                 f"before assigning {name!r}")
        if name in self._parameters and not isinstance(value, (Parameter, type(None))):
            raise TypeError(f"cannot assign a {type(value).__name__} as parameter {name!r} (a Parameter or None, as in "
                            "PyTorch; change its values in place under no_grad, or through .data)")
        if name in self.__dict__ and self.__dict__[name] is value:
            return  # `self.weight *= 0.1` under no_grad assigns the parameter to its own name: it keeps its place
        if name in self._buffers and not isinstance(value, (Parameter, Module)):  # stays a buffer, as it was
            return self.register_buffer(name, value, persistent=name not in self._non_persistent_buffers_set)
        for registry in (self._parameters, self._modules, self._buffers):
            registry.pop(name, None)
        if isinstance(value, Parameter):
            self._parameters[name] = value
        elif isinstance(value, Module):
            self._modules[name] = value
        object.__setattr__(self, name, value)

    def register_buffer(self, name, tensor, persistent=True):
        """A tensor the module keeps but does not train (a running statistic, a mask, a fixed table): it moves
        with .to(), and it is in state_dict unless persistent=False (a table computed from the config) or None."""
        if not name or "." in name:
            raise KeyError("buffer name can't contain \".\"" if name else "buffer name can't be empty")
        if hasattr(self, name) and name not in self._buffers:
            raise KeyError(f"attribute '{name}' already exists")
        if tensor is not None and not isinstance(tensor, Tensor):
            raise TypeError(f"cannot assign '{type(tensor).__name__}' object to buffer '{name}' (a Tensor or None)")
        object.__setattr__(self, name, tensor)
        self._buffers[name] = tensor
        if persistent:
            self._non_persistent_buffers_set.discard(name)
        else:
            self._non_persistent_buffers_set.add(name)

    def forward(self, *args, **kwargs):
        raise NotImplementedError(f"{type(self).__name__} has no forward()")

    def __call__(self, *args, **kwargs):
        module_paths.append(module_paths[-1] + (self,))  # the ops made below know their module (op.module_name)
        try:
            if not (self._forward_hooks or _global_hooks["pre"] or _global_hooks["post"]):
                return self.forward(*args, **kwargs)
            for hook in list(_global_hooks["pre"].values()):
                hook(self, args)
            output = self.forward(*args, **kwargs)
            for hook in list(_global_hooks["post"].values()):
                replaced = hook(self, args, output)
                output = output if replaced is None else replaced
            for hook, with_kwargs in list(self._forward_hooks.values()):
                replaced = hook(self, args, kwargs, output) if with_kwargs else hook(self, args, output)
                output = output if replaced is None else replaced
            return output
        finally:
            module_paths.pop()

    def register_forward_hook(self, hook, *, with_kwargs=False):
        """Call hook(module, args, output) after every forward of this module, or hook(module, args, kwargs,
        output) with with_kwargs=True (the keyword arguments by name); a non-None return replaces the output.
        Returns a handle whose .remove() detaches it (as in PyTorch)."""
        return _Handle(self._forward_hooks, (hook, with_kwargs))

    # ---- walking the tree ----
    def apply(self, fn):
        """fn(module) for every module below this one and this one, children first (as PyTorch's): weight init."""
        for child in self.children():
            child.apply(fn)
        fn(self)
        return self

    def named_modules(self, prefix=""):
        yield prefix, self
        for name, module in self._modules.items():
            yield from module.named_modules(f"{prefix}.{name}" if prefix else name)

    def modules(self):
        return (m for _, m in self.named_modules())

    def children(self):
        return iter(self._modules.values())

    def named_parameters(self, prefix="", remove_duplicate=True):
        """(dotted name, Parameter) in definition order; a shared Parameter is listed once, under its first name."""
        return self._named_members("_parameters", prefix, remove_duplicate)

    def parameters(self):
        return [p for _, p in self.named_parameters()]

    def named_buffers(self, prefix="", remove_duplicate=True):
        """(dotted name, buffer) for every buffer, persistent or not (one set to None is skipped), as PyTorch's."""
        return self._named_members("_buffers", prefix, remove_duplicate)

    def buffers(self):
        return [b for _, b in self.named_buffers()]

    def _named_members(self, registry, prefix, remove_duplicate):
        seen = set()
        for module_name, module in self.named_modules(prefix):
            for name, tensor in getattr(module, registry).items():
                if tensor is None or (remove_duplicate and id(tensor) in seen):
                    continue
                seen.add(id(tensor))
                yield (f"{module_name}.{name}" if module_name else name), tensor

    def num_parameters(self):
        """Number of trainable numbers (a tied weight counted once)."""
        return sum(p.numel() for p in self.parameters())

    # ---- state ----
    def state_dict(self):
        """{dotted name: Tensor} for every parameter and persistent buffer, as in PyTorch: module by module, each
        one's parameters then its buffers; a tied weight appears under each of its names."""
        return OrderedDict((name, t.detach()) for name, t in self._state_tensors())

    def _state_tensors(self):
        for module_name, module in self.named_modules():
            prefix = f"{module_name}." if module_name else ""
            yield from ((prefix + name, p) for name, p in module._parameters.items())
            yield from ((prefix + name, b) for name, b in module._buffers.items()
                        if b is not None and name not in module._non_persistent_buffers_set)

    def load_state_dict(self, state_dict, strict=True):
        """Copy values (Tensors, NumPy or CuPy arrays, or anything np.asarray reads, e.g. CPU torch tensors) into the
        parameters and persistent buffers, keeping each one's device and dtype. strict: every name must match both
        ways (but those a module lists in `optional_state`, as BatchNorm1d's num_batches_tracked, which PyTorch too
        lets a state_dict lack) and every shape must agree, else a ValueError lists what is wrong. Returns the names
        strict=False let through, as PyTorch's: (missing_keys, unexpected_keys)."""
        own = OrderedDict(self._state_tensors())
        may_lack = {f"{path}.{name}".lstrip(".") for path, module in self.named_modules()
                    for name in getattr(module, "optional_state", ())}  # kept as they are when the dict lacks them
        missing = [n for n in own if n not in state_dict and n not in may_lack]
        unexpected = [n for n in state_dict if n not in own]
        mismatched = [f"{n}: checkpoint {tuple(_shape(state_dict[n]))} vs model {own[n].shape}"
                      for n in own if n in state_dict and tuple(_shape(state_dict[n])) != own[n].shape]
        problems = []
        if strict and missing:
            problems.append(f"missing: {', '.join(missing)}")
        if strict and unexpected:
            problems.append(f"unexpected: {', '.join(unexpected)}")
        if mismatched:
            problems.append(f"shape mismatch: {'; '.join(mismatched)}")
        if problems:
            raise ValueError(f"load_state_dict for {type(self).__name__}: " + " | ".join(problems))
        for name, tensor in own.items():
            if name in state_dict:
                value = state_dict[name]
                value = as_array(unwrap(value))  # either device's arrays
                # C order whatever the source's (a transposed Hugging Face weight is Fortran-ordered): a GEMM on
                # another layout rounds differently and runs slower
                tensor.data = to_device(value, tensor.device).astype(tensor.dtype, order="C", copy=True)
        return IncompatibleKeys(missing, unexpected)  # what strict=False let through, as PyTorch's

    # ---- modes and devices ----
    def train(self, mode=True):
        for module in self.modules():
            object.__setattr__(module, "training", mode)
        return self

    def eval(self):
        return self.train(False)

    def to(self, device=None, dtype=None):
        """Move every parameter and buffer to `device` and/or cast the parameters and floating-point buffers to
        `dtype` (as PyTorch's: an integer buffer keeps its dtype), in place (the Parameter objects, and so any
        tying, are kept). grads are dropped when the dtype changes."""
        if device is not None and to_dtype_or_none(device) is not None:  # module.to(torch.float64), as Tensor.to
            device, dtype = None, device
        device = None if device is None else canonical_device(device)
        dtype = to_dtype(dtype)
        for module in self.modules():
            for param in module._parameters.values():
                if dtype is not None and param.dtype != dtype:
                    param.data, param.grad = param.data.astype(dtype), None
                if device is not None:
                    param.data = to_device(param.data, device)
                    if param.grad is not None:
                        param.grad.data = to_device(param.grad.data, device)
            for buffer in module._buffers.values():
                if buffer is not None and dtype is not None and buffer.dtype.kind == "f":
                    buffer.data = buffer.data.astype(dtype)
                if buffer is not None and device is not None:
                    buffer.data = to_device(buffer.data, device)
        return self

    def double(self):
        return self.to(dtype="float64")

    def float(self):
        return self.to(dtype="float32")

    def zero_grad(self, set_to_none=True):
        for p in self.parameters():
            p.grad = None if set_to_none or p.grad is None else Tensor(p.xp.zeros_like(p.grad.data))

    def extra_repr(self):
        return ""

    def __repr__(self):
        lines = [f"{type(self).__name__}({self.extra_repr()}"]
        for name, module in self._modules.items():
            child = repr(module).replace("\n", "\n  ")
            lines.append(f"  ({name}): {child}")
        return "\n".join(lines) + ("\n)" if len(lines) > 1 else ")")


def _shape(value):
    return value.shape if hasattr(value, "shape") else np.shape(value)


class ModuleList(Module):
    """A list of modules, registered under "0", "1", ..."""

    def __init__(self, modules=()):
        super().__init__()
        for module in modules:
            self.append(module)

    def append(self, module):
        setattr(self, str(len(self._modules)), module)
        return self

    def __getitem__(self, i):  # a slice is one of these again, its modules under their names, as PyTorch's
        if isinstance(i, slice):
            picked = list(self._modules.items())[i]
            return type(self)(OrderedDict(picked) if isinstance(self, Sequential) else dict(picked).values())
        return list(self._modules.values())[i]

    def __iter__(self):
        return iter(self._modules.values())

    def __len__(self):
        return len(self._modules)


class ModuleDict(Module):
    """Modules by name, registered under those names (as nn.ModuleDict)."""

    def __init__(self, modules=None):
        super().__init__()
        for name, module in dict(modules or {}).items():
            if not isinstance(module, Module):
                raise TypeError(f"ModuleDict: {name!r} is a {type(module).__name__}, not a Module")
            setattr(self, name, module)

    def __setitem__(self, name, module):
        if not isinstance(module, Module):
            raise TypeError(f"ModuleDict: {name!r} is a {type(module).__name__}, not a Module")
        setattr(self, name, module)

    def values(self):
        return self._modules.values()

    def __getitem__(self, name):
        return self._modules[name]

    def __iter__(self):
        return iter(self._modules)

    def __len__(self):
        return len(self._modules)

    def keys(self):
        return self._modules.keys()

    def items(self):
        return self._modules.items()


class Sequential(ModuleList):
    """Modules applied one after another: Sequential(a, b, c), or Sequential(OrderedDict(name=module, ...))."""

    def __init__(self, *modules):
        super().__init__()
        named = modules[0].items() if len(modules) == 1 and isinstance(modules[0], dict) else enumerate(modules)
        for name, module in named:
            if not isinstance(module, Module):
                raise TypeError(f"Sequential: {type(module).__name__} is not a Module")
            setattr(self, str(name), module)

    def forward(self, x):
        for module in self:
            x = module(x)
        return x


def normal_(param, std=0.02, generator=None):
    """Refill a parameter with normal(0, std) samples from the seeded generator (in place, keeps device)."""
    values = randn(*param.shape, dtype=param.dtype, generator=generator).data * param.dtype.type(std)
    param.data = to_device(values, param.device)
    return param


class Linear(Module):
    """y = x Wᵀ + b, W of shape (out_features, in_features) as in PyTorch. Init: W ~ normal(0, 0.02), b = 0."""

    def __init__(self, in_features, out_features, bias=True):
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        self.weight = normal_(Parameter(zeros(out_features, in_features)))
        self.bias = Parameter(zeros(out_features)) if bias else None

    def forward(self, x):
        return F.linear(x, self.weight, self.bias)

    def extra_repr(self):
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"


class LoRALinear(Linear):
    """A Linear layer with a low-rank update (LoRA, Hu et al. 2021): the base weight W and bias stay frozen and

        y = x Wᵀ + b + (alpha / r) · dropout(x) Aᵀ Bᵀ,    A: (r, in) small random,  B: (out, r) zeros,

    so training starts from the base model exactly, and learns r (in + out) numbers instead of in · out.
    merge() folds the update into W (W += (alpha / r) B A: inference at the base's speed); unmerge() takes it out.
    The base keeps its parameter names (weight, bias); the adapter's are lora_A.weight and lora_B.weight."""

    def __init__(self, base, rank, alpha=None, dropout=0.0):
        Module.__init__(self)
        if not 1 <= rank <= min(base.in_features, base.out_features):
            raise ValueError(f"LoRALinear: rank must be in [1, {min(base.in_features, base.out_features)}] for a "
                             f"({base.out_features}, {base.in_features}) layer, got {rank}")
        self.in_features, self.out_features, self.rank = base.in_features, base.out_features, rank
        self.weight, self.bias = base.weight, base.bias       # the same Parameter objects: tying is kept
        for p in (self.weight, self.bias):
            if p is not None:
                p.requires_grad = False
        self.lora_A = Linear(base.in_features, rank, bias=False)
        bound = 1 / math.sqrt(base.in_features)               # as nn.Linear's default (PEFT's choice for A)
        self.lora_A.weight.data = (rng.generator().uniform(-bound, bound, (rank, base.in_features))
                                   .astype(self.weight.dtype))
        self.lora_A.to(self.weight.device)
        self.lora_B = Linear(rank, base.out_features, bias=False)
        self.lora_B.weight.data = self.lora_B.weight.xp.zeros_like(self.lora_B.weight.data)
        self.lora_B.to(self.weight.device)
        self.lora_dropout = Dropout(dropout)
        self.scaling = (rank if alpha is None else alpha) / rank
        self.merged = False

    def forward(self, x):
        y = F.linear(x, self.weight, self.bias)
        if self.merged:
            return y
        return y + F.linear(F.linear(self.lora_dropout(x), self.lora_A.weight), self.lora_B.weight) * self.scaling

    def delta(self):
        """(alpha / r) B A: what the adapter adds to W, (out, in)."""
        return (self.lora_B.weight.data @ self.lora_A.weight.data) * self.weight.dtype.type(self.scaling)

    def merge(self):
        if not self.merged:
            self.weight.data = self.weight.data + self.delta()
            self.merged = True
        return self

    def unmerge(self):
        if self.merged:
            self.weight.data = self.weight.data - self.delta()
            self.merged = False
        return self

    def extra_repr(self):
        return f"{super().extra_repr()}, rank={self.rank}, scaling={self.scaling:g}, merged={self.merged}"


def apply_lora(model, rank, alpha=None, targets=("*",), dropout=0.0):
    """Replace each Linear of `model` whose dotted name matches one of the fnmatch `targets` by a LoRALinear, and
    freeze every other parameter: afterwards only the adapters train. Returns the names of the wrapped layers."""
    import fnmatch
    chosen = [(name, module) for name, module in model.named_modules()
              if type(module) is Linear and any(fnmatch.fnmatch(name, t) for t in targets)]
    if not chosen:
        raise ValueError(f"apply_lora: no Linear layer matches {', '.join(targets)}")
    for p in model.parameters():
        p.requires_grad = False
    modules = dict(model.named_modules())
    for name, module in chosen:
        parent, _, child = name.rpartition(".")
        setattr(modules[parent] if parent else model, child, LoRALinear(module, rank, alpha, dropout))
    return [name for name, _ in chosen]


class Embedding(Module):
    """A table of num_embeddings vectors of size embedding_dim, looked up by integer index. Init normal(0, 0.02);
    the padding_idx row, if given, starts at 0 and gets no gradient."""

    def __init__(self, num_embeddings, embedding_dim, padding_idx=None):
        super().__init__()
        self.num_embeddings, self.embedding_dim = num_embeddings, embedding_dim
        self.weight = normal_(Parameter(zeros(num_embeddings, embedding_dim)))
        self.padding_idx = None if padding_idx is None else F.padding_row(padding_idx, num_embeddings)
        if self.padding_idx is not None:
            self.weight.data[self.padding_idx] = 0

    def forward(self, idx):
        return F.embedding(idx, self.weight, self.padding_idx)

    def extra_repr(self):
        return f"{self.num_embeddings}, {self.embedding_dim}" + (
            f", padding_idx={self.padding_idx}" if self.padding_idx is not None else "")


class LayerNorm(Module):
    """(x - mean) / sqrt(var + eps) * weight (+ bias) over the last dim. Init: weight 1, bias 0; neither without
    elementwise_affine."""

    def __init__(self, normalized_shape, eps=1e-5, elementwise_affine=True, bias=True):
        super().__init__()
        self.normalized_shape, self.eps = normalized_shape, eps
        self.weight = Parameter(ones(normalized_shape)) if elementwise_affine else None
        self.bias = Parameter(zeros(normalized_shape)) if elementwise_affine and bias else None

    def forward(self, x):
        return F.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)

    def extra_repr(self):
        return (f"{self.normalized_shape}, eps={self.eps}, elementwise_affine={self.weight is not None}, "
                f"bias={self.bias is not None}")


class RMSNorm(Module):
    ("""x / sqrt(mean(x²) + eps) * weight over the last dim (eps=None: the dtype's epsilon, as PyTorch). """
     """Init: weight 1.""")

    def __init__(self, normalized_shape, eps=None):
        super().__init__()
        self.normalized_shape, self.eps = normalized_shape, eps
        self.weight = Parameter(ones(normalized_shape))

    def forward(self, x):
        return F.rms_norm(x, self.normalized_shape, self.weight, self.eps)

    def extra_repr(self):
        return f"{self.normalized_shape}, eps={self.eps}"


class BatchNorm1d(Module):
    """Batch normalisation (Ioffe and Szegedy, 2015) of (N, C) or (N, C, L) inputs, each channel over the batch (and
    L): F.batch_norm with the batch's statistics in training and the running ones in eval. Each training batch moves
    running_mean and running_var towards its mean and unbiased variance by `momentum`, or with momentum=None makes
    them the average over the num_batches_tracked batches so far. track_running_stats=False keeps none (the three
    buffers are None) and normalises with the batch's statistics in eval too. Init: weight 1, bias 0 (neither
    without affine), running_mean 0, running_var 1, num_batches_tracked 0 (int64, 0-d), as PyTorch's; unlike
    PyTorch's, a batch F.batch_norm refuses is not counted."""

    optional_state = ("num_batches_tracked",)  # PyTorch's before 0.4.1 had none: a state_dict may lack it

    def __init__(self, num_features, eps=1e-5, momentum=0.1, affine=True, track_running_stats=True, *, bias=True):
        super().__init__()
        self.num_features, self.eps, self.momentum = num_features, eps, momentum
        self.affine, self.track_running_stats = affine, track_running_stats
        self.weight = Parameter(ones(num_features)) if affine else None
        self.bias = Parameter(zeros(num_features)) if affine and bias else None
        self.register_buffer("running_mean", zeros(num_features) if track_running_stats else None)
        self.register_buffer("running_var", ones(num_features) if track_running_stats else None)
        self.register_buffer("num_batches_tracked", zeros((), dtype="int64") if track_running_stats else None)

    def forward(self, x):
        if x.ndim not in (2, 3):
            raise ValueError(f"BatchNorm1d: expected 2D or 3D input (got {x.ndim}D input)")
        counting = self.training and self.track_running_stats and self.num_batches_tracked is not None
        momentum = 0.0 if self.momentum is None else self.momentum
        if counting and self.momentum is None:             # a cumulative average: this batch weighs 1 / (count)
            momentum = 1.0 / (float(self.num_batches_tracked) + 1)
        running = not self.training or self.track_running_stats  # else the running statistics are left alone
        out = F.batch_norm(x, self.running_mean if running else None, self.running_var if running else None,
                           self.weight, self.bias, self.training or self.running_mean is None, momentum, self.eps)
        if counting:
            self.num_batches_tracked.add_(1)
        return out

    def extra_repr(self):
        return (f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, affine={self.affine}, "
                f"bias={self.bias is not None}, track_running_stats={self.track_running_stats}")


class Dropout(Module):
    """Zero elements with probability p in training (scaling the rest by 1/(1-p)); identity in eval."""

    def __init__(self, p=0.5):
        super().__init__()
        self.p = p

    def forward(self, x):
        return F.dropout(x, self.p, self.training)

    def extra_repr(self):
        return f"p={self.p}"


def sinusoidal_positions(num_positions, dim):
    """The original paper's fixed table: PE[pos, 2i] = sin(pos / 10000^(2i/dim)), PE[pos, 2i+1] = cos(same)."""
    position = np.arange(num_positions, dtype=np.float64)[:, None]
    frequency = np.exp(-math.log(10000.0) * np.arange(0, dim, 2, dtype=np.float64) / dim)
    table = np.zeros((num_positions, dim))
    table[:, 0::2] = np.sin(position * frequency)
    table[:, 1::2] = np.cos(position * frequency)[:, : dim // 2]
    return table


# ---- stateless layers: chosen once when a model is built, so its forward needs no `if kind == ...` ----

class Identity(Module):
    """Returns its input (a slot a model may leave empty, e.g. no final norm)."""

    def forward(self, x):
        return x


class ReLU(Module):
    def forward(self, x):
        return F.relu(x)


class Tanh(Module):
    def forward(self, x):
        return x.tanh()


class Sigmoid(Module):
    def forward(self, x):
        return x.sigmoid()


class Softmax(Module):
    def __init__(self, dim):
        super().__init__()
        self.dim = dim

    def forward(self, x):
        return F.softmax(x, self.dim)

    def extra_repr(self):
        return f"dim={self.dim}"


class Flatten(Module):
    """Flattens dims start_dim..end_dim into one: (N, C, H, W) -> (N, C·H·W) by default (the batch dim kept)."""

    def __init__(self, start_dim=1, end_dim=-1):
        super().__init__()
        self.start_dim, self.end_dim = start_dim, end_dim

    def forward(self, x):
        return x.flatten(self.start_dim, self.end_dim)


class CrossEntropyLoss(Module):
    """F.cross_entropy as a module: criterion(logits, targets)."""

    def __init__(self, weight=None, ignore_index=-100, reduction="mean", label_smoothing=0.0):
        super().__init__()
        self.weight, self.ignore_index, self.reduction = weight, ignore_index, reduction
        self.label_smoothing = label_smoothing

    def forward(self, input, target):
        return F.cross_entropy(input, target, self.weight, self.ignore_index, self.reduction, self.label_smoothing)


class MSELoss(Module):
    """F.mse_loss as a module: the mean (or sum, or none) of (input - target)²."""

    def __init__(self, reduction="mean"):
        super().__init__()
        self.reduction = reduction

    def forward(self, input, target):
        return F.mse_loss(input, target, self.reduction)


class GELU(Module):
    """x Φ(x); approximate='tanh' is GPT-2's form."""

    def __init__(self, approximate="none"):
        super().__init__()
        self.approximate = approximate

    def forward(self, x):
        return F.gelu(x, approximate=self.approximate)

    def extra_repr(self):
        return f"approximate={self.approximate!r}"


class SwiGLU(Module):
    """silu(a) * b for [a, b] = the two halves of the last dim: (..., 2H) -> (..., H)."""

    def forward(self, x):
        return F.swiglu(x)


class ScaledDotProductAttention(Module):
    """softmax(q kᵀ / sqrt(d) + mask) v with dropout on the weights in training: F.scaled_dot_product_attention
    as a module, so that a forward hook sees its inputs (q, k, v, and with_kwargs=True attn_mask and is_causal by
    name) and can recompute the attention weights (models/inspection.py draws attention maps this way)."""

    def __init__(self, dropout=0.0):
        super().__init__()
        self.dropout = dropout

    def forward(self, q, k, v, attn_mask=None, is_causal=False):
        return F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask, is_causal=is_causal,
                                              dropout_p=self.dropout if self.training else 0.0,
                                              training=self.training)

    def extra_repr(self):
        return f"dropout={self.dropout}"



class init:
    """torch.nn.init's names for the common cases, with PyTorch's formulas: in place (the tensor keeps its dtype
    and device), from the seeded generator or `generator`. For a weight (out_features, in_features, ...), fan_in is
    in_features times the trailing sizes and fan_out out_features times them."""

    @staticmethod
    def normal_(tensor, mean=0.0, std=1.0, generator=None):
        normal_(tensor, std, generator)
        tensor.data += tensor.dtype.type(mean)
        return tensor

    @staticmethod
    def uniform_(tensor, a=0.0, b=1.0, generator=None):
        values = rng.generator(generator).uniform(a, b, tensor.shape).astype(tensor.dtype)
        tensor.data = to_device(values, tensor.device)
        return tensor

    @staticmethod
    def constant_(tensor, val):
        tensor.data = tensor.xp.full(tensor.shape, val, dtype=tensor.dtype)
        return tensor

    @staticmethod
    def zeros_(tensor): return init.constant_(tensor, 0)

    @staticmethod
    def ones_(tensor): return init.constant_(tensor, 1)

    @staticmethod
    def xavier_uniform_(tensor, gain=1.0, generator=None):
        """uniform(-b, b), b = gain · sqrt(6 / (fan_in + fan_out)) (Glorot and Bengio, 2010)."""
        fan_in, fan_out = _fans(tensor, "xavier_uniform_")
        bound = gain * math.sqrt(6 / (fan_in + fan_out))
        return init.uniform_(tensor, -bound, bound, generator)

    @staticmethod
    def xavier_normal_(tensor, gain=1.0, generator=None):
        """normal(0, std), std = gain · sqrt(2 / (fan_in + fan_out))."""
        fan_in, fan_out = _fans(tensor, "xavier_normal_")
        return init.normal_(tensor, 0.0, gain * math.sqrt(2 / (fan_in + fan_out)), generator)

    @staticmethod
    def kaiming_uniform_(tensor, a=0, mode="fan_in", nonlinearity="leaky_relu", generator=None):
        """uniform(-b, b), b = sqrt(3) · gain / sqrt(fan) (He et al., 2015); gain = calculate_gain(nonlinearity, a)."""
        bound = math.sqrt(3) * _kaiming_std(tensor, a, mode, nonlinearity, "kaiming_uniform_")
        return init.uniform_(tensor, -bound, bound, generator)

    @staticmethod
    def kaiming_normal_(tensor, a=0, mode="fan_in", nonlinearity="leaky_relu", generator=None):
        """normal(0, gain / sqrt(fan))."""
        return init.normal_(tensor, 0.0, _kaiming_std(tensor, a, mode, nonlinearity, "kaiming_normal_"), generator)

    @staticmethod
    def calculate_gain(nonlinearity, param=None):
        """How much the activation shrinks a unit variance, undone: 1 (linear, sigmoid), 5/3 (tanh), sqrt(2) (relu),
        sqrt(2 / (1 + slope²)) (leaky_relu, slope `param`, 0.01 by default), 3/4 (selu)."""
        if nonlinearity == "leaky_relu":
            return math.sqrt(2 / (1 + (0.01 if param is None else param) ** 2))
        gains = {"linear": 1.0, "sigmoid": 1.0, "tanh": 5 / 3, "relu": math.sqrt(2), "selu": 3 / 4}
        if nonlinearity not in gains:
            raise ValueError(f"calculate_gain: unsupported nonlinearity {nonlinearity!r}")
        return gains[nonlinearity]


def _fans(tensor, name):
    if tensor.ndim < 2:
        raise ValueError(f"{name}: fan_in and fan_out need a tensor of 2 or more dims, got shape {tensor.shape}")
    receptive = math.prod(tensor.shape[2:])
    return tensor.shape[1] * receptive, tensor.shape[0] * receptive


def _kaiming_std(tensor, a, mode, nonlinearity, name):
    if mode not in ("fan_in", "fan_out"):
        raise ValueError(f"{name}: mode must be 'fan_in' or 'fan_out', got {mode!r}")
    fan_in, fan_out = _fans(tensor, name)
    return init.calculate_gain(nonlinearity, a) / math.sqrt(fan_in if mode == "fan_in" else fan_out)


class utils:
    """torch.nn.utils's name for gradient clipping: optim.clip_grad_norm_."""

    clip_grad_norm_ = staticmethod(optim.clip_grad_norm_)
