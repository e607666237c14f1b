"""tinygrad_proust.functional: the neural-network functions, named as in torch.nn.functional.

The hot ones (softmax, log_softmax, cross_entropy, layer_norm, rms_norm, linear, embedding, swiglu,
scaled_dot_product_attention) run as one fused op each (fused.py). Inside `with use_fused(False):`
they run as a composition of primitive ops instead: slower, but every step is a node you can inspect,
and the tests check that both paths agree on values and gradients.
"""
import contextlib
import math
import warnings

import numpy as np

from . import fused, kernels, ops, rng
from .creation import cat, full
from .device import device_of, is_gpu_array, module_for
from .ops import check_ids
from .tensor import Tensor, _promoted, no_grad, unwrap

_fused = True


@contextlib.contextmanager
def use_fused(enabled=True):
    """`with use_fused(False):` runs the reference compositions instead of the fused ops."""
    global _fused
    previous, _fused = _fused, enabled
    try:
        yield
    finally:
        _fused = previous


# ---- activations ----

def relu(x):
    return x.relu()


def gelu(x, approximate="none"):
    """x Φ(x); approximate='tanh' is GPT-2's form (fused: fewer passes, one kernel on a GPU)."""
    x = x._float()
    if approximate == "tanh" and _fused:
        return fused.GeluTanh.apply(x)
    return ops.Gelu.apply(x, approximate=approximate)


def silu(x):
    return x.silu()


def swiglu(x):
    """silu(a) * b for [a, b] = the two halves of x's last dim: (..., 2H) -> (..., H) (the SwiGLU gate)."""
    if x.shape[-1] % 2:
        raise ValueError(f"swiglu: the last dim must be even, got shape {x.shape}")
    if _fused:
        return fused.SwiGLU.apply(x)
    gate, up = x.chunk(2, dim=-1)
    return gate.silu() * up


def sigmoid(x):
    return x.sigmoid()


def tanh(x):
    return x.tanh()


# ---- softmax family ----

def softmax(x, dim=-1):
    x = x._float()  # of integers: float32, as every float function of them
    if _fused:
        return fused.Softmax.apply(x, dim=dim)
    e = (x - x.max(dim=dim, keepdim=True).values.detach()).exp()  # the shift is a constant: softmax ignores it
    return e / e.sum(dim=dim, keepdim=True)


def log_softmax(x, dim=-1):
    x = x._float()
    if _fused:
        return fused.LogSoftmax.apply(x, dim=dim)
    shifted = x - x.max(dim=dim, keepdim=True).values.detach()
    return shifted - shifted.exp().sum(dim=dim, keepdim=True).log()


def cross_entropy(input, target, weight=None, ignore_index=-100, reduction="mean", label_smoothing=0.0):
    """-log softmax(input)[target], as torch.nn.functional.cross_entropy.
    input: (N, C) or (N, C, d1, ...) logits (classes on dim 1); target: class indices (N,) or (N, d1, ...), or
    class probabilities shaped like input. weight: (C,) per-class weights; rows whose target is ignore_index
    count for nothing; label_smoothing ε mixes the target with the uniform distribution, (1 - ε) onehot + ε / C;
    reduction: "mean" (over the rows that count, by weight), "sum" or "none"."""
    if reduction not in ("mean", "sum", "none"):
        raise ValueError(f"cross_entropy: reduction must be 'mean', 'sum' or 'none', got {reduction!r}")
    if not 0 <= label_smoothing <= 1:
        raise ValueError(f"cross_entropy: label_smoothing must be in [0, 1], got {label_smoothing}")
    target_data = target.data if isinstance(target, Tensor) else input.xp.asarray(target)
    if target_data.dtype.kind == "f":  # class probabilities
        if target_data.shape != input.shape:
            raise ValueError(f"cross_entropy: probability targets need the input's shape {input.shape}, "
                             f"got {tuple(target_data.shape)}")
        probs = input._operand(target) * (1 - label_smoothing) + label_smoothing / input.shape[1]
        losses = -(log_softmax(input, dim=1) * probs * _class_dim(weight, input)).sum(dim=1)
        return _reduce(losses, reduction, losses.numel())
    if input.ndim < 2 or target_data.shape != input.shape[:1] + input.shape[2:]:
        raise ValueError(f"cross_entropy: need input (N, C) and target (N,), or (N, C, d...) and (N, d...), got "
                         f"{input.shape} and {tuple(target_data.shape)} (for (B, T, C) logits use "
                         "input.view(-1, C), target.view(-1))")
    if target_data.dtype.kind not in "iu":
        raise TypeError(f"cross_entropy: target must hold integer class indices, not {target_data.dtype}")
    check_ids("cross_entropy: target", target_data, input.shape[1], ignore_index)
    if _fused and input.ndim == 2 and weight is None and reduction == "mean" and not label_smoothing:
        return fused.CrossEntropy.apply(input, target=target_data, ignore_index=ignore_index)
    return _nll(log_softmax(input, dim=1), target_data, weight, ignore_index, reduction, label_smoothing)


def nll_loss(input, target, weight=None, ignore_index=-100, reduction="mean"):
    """-input[n, target[n]] for log-probabilities input (N, C) or (N, C, d...), as torch.nn.functional.nll_loss:
    each row weighted by weight[target], rows with target == ignore_index left out, then the mean (divided by the
    weights of the rows that count), the sum, or none."""
    if reduction not in ("mean", "sum", "none"):
        raise ValueError(f"nll_loss: reduction must be 'mean', 'sum' or 'none', got {reduction!r}")
    target_data = target.data if isinstance(target, Tensor) else input.xp.asarray(target)
    if input.ndim < 2 or target_data.shape != input.shape[:1] + input.shape[2:]:
        raise ValueError(f"nll_loss: need input (N, C) and target (N,), or (N, C, d...) and (N, d...), got "
                         f"{input.shape} and {tuple(target_data.shape)}")
    check_ids("nll_loss: target", target_data, input.shape[1], ignore_index)
    return _nll(input, target_data, weight, ignore_index, reduction)


def _nll(log_p, target, weight, ignore_index, reduction, label_smoothing=0.0):
    xp = log_p.xp
    valid = target != ignore_index
    safe = xp.where(valid, target, 0)
    w = valid if weight is None else _class_dim(weight, log_p).data.reshape(-1)[safe] * valid  # 0 where ignored
    w = Tensor._wrap(w.astype(log_p.dtype, copy=False), False, None)
    losses = -log_p.gather(1, xp.expand_dims(safe, 1)).squeeze(1) * w
    if label_smoothing:  # PyTorch's: (1 - ε) nll + (ε / C) Σ_c weight[c] (-log p_c), over the same rows
        counted = Tensor._wrap(valid.astype(log_p.dtype), False, None)
        smooth = -(log_p * _class_dim(weight, log_p)).sum(dim=1) * counted
        losses = losses * (1 - label_smoothing) + smooth * (label_smoothing / log_p.shape[1])
    return _reduce(losses, reduction, w.sum())


def mse_loss(input, target, reduction="mean"):
    """(input - target)² elementwise, then its mean, sum or none; a target of another shape is broadcast, with
    PyTorch's warning."""
    if reduction not in ("mean", "sum", "none"):
        raise ValueError(f"mse_loss: reduction must be 'mean', 'sum' or 'none', got {reduction!r}")
    if input.shape != tuple(np.shape(unwrap(target))):
        warnings.warn(f"mse_loss: target shape {tuple(np.shape(unwrap(target)))} is broadcast to input shape "
                      f"{input.shape}, which is likely wrong", UserWarning, stacklevel=2)
    losses = (input - target).square()
    return _reduce(losses, reduction, losses.numel())


def _class_dim(weight, like):
    """Per-class weights shaped to broadcast along dim 1 of `like` (1 where there are none)."""
    if weight is None:
        return like._operand(1.0)
    weight = like._operand(weight)
    if weight.shape != (like.shape[1],):
        raise ValueError(f"cross_entropy/nll_loss: weight of shape {weight.shape} for {like.shape[1]} classes")
    return weight.reshape((1, -1) + (1,) * (like.ndim - 2))


def _reduce(losses, reduction, divisor):
    if reduction == "none":
        return losses
    if reduction == "sum":
        return losses.sum()
    if not isinstance(divisor, Tensor):
        return losses.sum() / divisor
    # nothing counts (every target ignored): the loss is NaN, as PyTorch's, and the gradients 0, not NaN
    nan_if_empty = Tensor._wrap(losses.xp.where(divisor.data == 0, np.nan, 0).astype(losses.dtype), False, None)
    return losses.sum() / divisor.maximum(1e-30) + nan_if_empty


# ---- normalisation ----

def _check_normalized_shape(name, x, normalized_shape):
    shape = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
    if len(shape) != 1 or shape[0] != x.shape[-1]:
        raise ValueError(f"{name}: normalized_shape {shape} must be the input's last dim ({x.shape})")


def layer_norm(x, normalized_shape, weight=None, bias=None, eps=1e-5):
    """(x - mean) / sqrt(var + eps) * weight + bias over the last dim (biased variance, as PyTorch)."""
    _check_normalized_shape("layer_norm", x, normalized_shape)
    if weight is None:
        weight = Tensor._wrap(x.xp.ones(x.shape[-1], dtype=x.dtype), False, None)
    if _fused:
        parents = (x, weight) if bias is None else (x, weight, bias)
        return fused.LayerNorm.apply(*parents, eps=eps)
    mean = x.mean(dim=-1, keepdim=True)
    centered = x - mean
    out = centered * ((centered * centered).mean(dim=-1, keepdim=True) + eps).rsqrt() * weight
    return out if bias is None else out + bias


def rms_norm(x, normalized_shape, weight=None, eps=None):
    """x / sqrt(mean(x²) + eps) * weight over the last dim; eps=None means the dtype's machine epsilon (PyTorch)."""
    _check_normalized_shape("rms_norm", x, normalized_shape)
    eps = float(np.finfo(x.dtype).eps) if eps is None else eps
    if weight is None:
        weight = Tensor._wrap(x.xp.ones(x.shape[-1], dtype=x.dtype), False, None)
    if _fused:
        return fused.RMSNorm.apply(x, weight, eps=eps)
    return x * ((x * x).mean(dim=-1, keepdim=True) + eps).rsqrt() * weight


def batch_norm(input, running_mean, running_var, weight=None, bias=None, training=False, momentum=0.1, eps=1e-5):
    """(x - mean) / sqrt(var + eps) * weight + bias for each channel c of input (N, C) or (N, C, L, ...), the
    statistics taken over every dim but the channels', as torch.nn.functional.batch_norm. A composition: its gradient
    comes from its parts.
    training: the batch's mean and biased variance, through which the gradient flows too; running_mean and
    running_var, if given, move towards them in place, without a gradient: r = (1 - momentum) r + momentum · s, the
    running variance taking the unbiased batch variance (sum of squares / (n - 1)). Otherwise running_mean and
    running_var normalise, and no gradient flows into them."""
    x = input
    if x.ndim < 2:
        raise ValueError(f"batch_norm: expected an input (N, C, ...) with a dim of channels, got shape {x.shape}")
    if (running_mean is None) != (running_var is None):
        raise ValueError("batch_norm: running_mean and running_var must either both be None or neither be None")
    dims = (0,) + tuple(range(2, x.ndim))                  # every dim but the channels'
    n = math.prod(x.shape[d] for d in dims)                # values of each channel
    if training and n == 1:
        raise ValueError(f"batch_norm: Expected more than 1 value per channel when training, got input size {x.shape}")
    if not training and running_mean is None:
        raise ValueError("batch_norm: running_mean must be defined in evaluation mode")
    for name, t in (("running_mean", running_mean), ("running_var", running_var), ("weight", weight), ("bias", bias)):
        if t is not None and t.numel() != x.shape[1]:
            raise ValueError(f"batch_norm: {name} should contain {x.shape[1]} elements not {t.numel()}")
    channel = (1, x.shape[1]) + (1,) * (x.ndim - 2)        # a (C,) vector along dim 1
    if training:
        mean = x.mean(dim=dims, keepdim=True)
        centered = x - mean
        squares = (centered * centered).sum(dim=dims, keepdim=True)
        out = centered * (squares / n + eps).rsqrt()
        if running_mean is not None:
            with no_grad():  # both new values first, then both written: one fails (another device), neither moves
                new_mean = running_mean * (1 - momentum) + mean.reshape(-1) * momentum
                new_var = running_var * (1 - momentum) + squares.reshape(-1) / (n - 1) * momentum
                running_mean.copy_(new_mean), running_var.copy_(new_var)
    else:
        mean, var = running_mean.detach().reshape(channel), running_var.detach().reshape(channel)
        out = (x - mean) * (var + eps).rsqrt()
    out = out if weight is None else out * weight.reshape(channel)
    return out if bias is None else out + bias.reshape(channel)


# ---- layers ----

def linear(x, weight, bias=None):
    """x @ weight.T + bias, weight of shape (out_features, in_features)."""
    if _fused:
        return fused.Linear.apply(*((x, weight) if bias is None else (x, weight, bias)))
    out = x @ weight.transpose(0, 1)
    return out if bias is None else out + bias


def embedding(input, weight, padding_idx=None):
    """Rows of `weight` picked by the integer tensor `input`: (...) -> (..., embedding_dim). The padding_idx row
    gets no gradient (a pad token's vector is never trained)."""
    indices = input.data if isinstance(input, Tensor) else weight.xp.asarray(input)
    if indices.dtype.kind not in "iu":
        raise TypeError(f"embedding: indices must be integers, not {indices.dtype}")
    check_ids("embedding: index", indices, weight.shape[0])
    out = fused.Embedding.apply(weight, indices=indices) if _fused else weight[indices]
    if padding_idx is None:
        return out
    padding = (indices == padding_row(padding_idx, weight.shape[0]))[..., None]
    return ops.Where.apply(out.detach(), out, condition=padding)  # the same values, without their gradient


def padding_row(padding_idx, rows):
    """padding_idx as a row number in [0, rows): a negative one counts from the end, as PyTorch's."""
    if not -rows <= padding_idx < rows:
        raise ValueError(f"embedding: padding_idx {padding_idx} is out of range for {rows} rows")
    return padding_idx % rows


def dropout(x, p=0.5, training=True):
    """Zero each element with probability p and scale the rest by 1/(1-p), so the expectation is unchanged."""
    if not 0 <= p < 1:
        raise ValueError(f"dropout probability must be in [0, 1), got {p}")
    if not training or p == 0:
        return x
    return ops.Dropout.apply(x, mask=_keep_mask(x.xp, x.shape, p, x.dtype))


def _keep_mask(xp, shape, p, dtype):
    """1/(1-p) where an element is kept, 0 where it is dropped: kept when its 16 random bits are >= p · 2¹⁶
    (so p counts in steps of 2⁻¹⁶). On a GPU one compiled kernel does the same (kernels.keep_mask)."""
    threshold, scale = min(round(p * 2**16), 2**16 - 1), dtype.type(1 / (1 - p))
    if (mask := kernels.keep_mask(xp, shape, threshold, scale, dtype)) is not None:
        return mask
    mask = xp.empty(shape, dtype=dtype)
    xp.greater_equal(rng.random_uint16(xp, shape), xp.uint16(threshold), out=mask)
    mask *= scale
    return mask


# ---- attention ----

def scaled_dot_product_attention(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None,
                                 enable_gqa=False, training=True):
    """softmax(query keyᵀ · scale + mask) value, scale = 1/sqrt(head size) by default.
    query (..., T, d), key (..., S, d), value (..., S, dv) -> (..., T, dv).
    attn_mask: booleans, True where attention is allowed, or floats added to the scores (a Tensor of them gets
    a gradient). is_causal: key j only for query i >= j. enable_gqa: key and value may have fewer heads (dim -3)
    than query, each shared by a group of query heads (grouped-query attention)."""
    if enable_gqa and key.shape[-3] != query.shape[-3]:
        if query.shape[-3] % key.shape[-3]:
            raise ValueError(f"scaled_dot_product_attention: {query.shape[-3]} query heads do not split into "
                             f"groups for {key.shape[-3]} key/value heads")
        group = query.shape[-3] // key.shape[-3]
        key, value = key.repeat_interleave(group, -3), value.repeat_interleave(group, -3)
    xp = query.xp
    mask = unwrap(attn_mask)
    if _fused:
        keep = None
        if dropout_p > 0 and training:
            shape = query.shape[:-1] + (key.shape[-2],)
            keep = _keep_mask(xp, shape, dropout_p, query.dtype)
        if mask is not None and mask.dtype.kind == "f":  # additive: a fourth input, with its gradient
            return fused.ScaledDotProductAttention.apply(query, key, value, query._operand(attn_mask),
                                                         is_causal=is_causal, scale=scale, dropout_keep=keep)
        return fused.ScaledDotProductAttention.apply(query, key, value, is_causal=is_causal, attn_mask=mask,
                                                     scale=scale, dropout_keep=keep)
    weights = attention_weights(query, key, attn_mask=attn_mask, is_causal=is_causal, scale=scale)
    return dropout(weights, dropout_p, training) @ value


def causal_mask(t_query, t_key, offset=0, device="cpu"):
    """(T, S) booleans, True where query i may attend key j: j <= i + offset. offset 0 is is_causal's lower
    triangle (aligned top-left, as PyTorch's); T new queries after `offset` cached positions see them all."""
    return Tensor._wrap(fused.causal_mask(module_for(device), t_query, t_key, offset), False, None)


def attention_weights(query, key, attn_mask=None, is_causal=False, scale=None):
    """The (..., T, S) attention probabilities, composed from primitives (also used to look inside a model)."""
    xp = query.xp
    scale = 1 / math.sqrt(query.shape[-1]) if scale is None else scale
    scores = (query @ key.transpose(-2, -1)) * scale
    allowed = fused.causal_mask(xp, query.shape[-2], key.shape[-2]) if is_causal else None
    mask = unwrap(attn_mask)
    if mask is not None and mask.dtype.kind == "f":  # additive
        scores = scores + query._operand(attn_mask)
    elif mask is not None:
        allowed = mask if allowed is None else allowed & mask
    if allowed is not None:
        scores = scores.masked_fill(~allowed, -math.inf)
    if mask is None:
        return softmax(scores, dim=-1)
    unseeing = (scores.data == -math.inf).all(axis=-1, keepdims=True)  # queries the mask leaves no key: weights
    return softmax(scores.masked_fill(unseeing, 0.0), dim=-1).masked_fill(unseeing, 0.0)  # 0, as PyTorch's



def pad(input, pad, mode="constant", value=0.0):
    """Pad the last len(pad) // 2 dims with `value`: pad = (left of the last dim, right of it, left of the one
    before, ...), as torch.nn.functional.pad; a negative amount crops. Only mode "constant"."""
    if mode != "constant":
        raise ValueError(f"pad: only mode 'constant' is supported, got {mode!r}")
    if len(pad) % 2 or len(pad) // 2 > input.ndim:
        raise ValueError(f"pad: {len(pad)} amounts for a tensor with {input.ndim} dims (two per dim, from the last)")
    x = input
    for i, (left, right) in enumerate(zip(pad[::2], pad[1::2])):
        dim = input.ndim - 1 - i
        if x.shape[dim] + min(left, 0) + min(right, 0) < 0:
            raise ValueError(f"pad: cropping {-min(left, 0)} and {-min(right, 0)} from dim {dim} "
                             f"of size {x.shape[dim]}")
        x = x[(slice(None),) * dim + (slice(max(-left, 0), x.shape[dim] - max(-right, 0)),)]  # negative: crop

        def side(n):
            return [full(x.shape[:dim] + (n,) + x.shape[dim + 1:], value, x.dtype, x.device)] if n > 0 else []
        x = cat(side(left) + [x] + side(right), dim=dim)
    return x


def einsum(equation, *operands):
    """Einstein summation, as torch.einsum: einsum("bhqd,bhkd->bhqk", q, k); "..." for leading dims."""
    operands = operands[0] if len(operands) == 1 and isinstance(operands[0], (list, tuple)) else operands
    return ops.Einsum.apply(*operands, equation=equation)


def leaky_relu(x, negative_slope=0.01):
    return where(x > 0, x, x * negative_slope)  # at 0 the slope is negative_slope's, as PyTorch's


def softplus(x, beta=1.0, threshold=20.0):
    """log(1 + exp(beta x)) / beta, and x itself where beta x > threshold (as PyTorch: no overflow)."""
    return where(x * beta > threshold, x, ((x * beta).clamp(max=threshold).exp() + 1).log() / beta)


def one_hot(indices, num_classes=-1):
    """(..., num_classes) int64, 1 at each index (no gradient); num_classes -1: the largest index + 1."""
    idx = unwrap(indices)
    if idx.dtype.kind not in "iu":
        raise TypeError(f"one_hot: indices must be integers, not {idx.dtype}")
    n = int(idx.max()) + 1 if num_classes < 0 else num_classes
    ops.check_ids("one_hot: class", idx, n)  # else a silent row of zeros
    return Tensor._wrap((idx[..., None] == module_for(device_of(idx)).arange(n)).astype(np.int64), False, None)


def where(condition, input, other):
    """input where condition holds, else other (numbers are broadcast as constants)."""
    cond = unwrap(condition)
    like = next((t for t in (input, other) if isinstance(t, Tensor)), None)
    like = Tensor(input, device="gpu" if is_gpu_array(cond) else "cpu") if like is None else like  # two numbers
    return ops.Where.apply(*_promoted(like._operand(input), like._operand(other)), condition=cond)


def var_mean(input, dim=None, unbiased=None, keepdim=False, *, correction=None, keepdims=None):
    """(var, mean) over `dim`, as torch.var_mean: Tensor.var's arguments."""
    mean_dim = None if isinstance(dim, bool) else dim  # var_mean(x, False): unbiased=False, over every dim
    var = input.var(dim, unbiased, keepdim, correction=correction, keepdims=keepdims)
    return var, input.mean(mean_dim, keepdim, keepdims=keepdims)


def std_mean(input, dim=None, unbiased=None, keepdim=False, *, correction=None, keepdims=None):
    """(std, mean) over `dim`, as torch.std_mean."""
    var, mean = var_mean(input, dim, unbiased, keepdim, correction=correction, keepdims=keepdims)
    return var.sqrt(), mean
