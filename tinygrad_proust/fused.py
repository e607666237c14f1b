"""Fused ops: one graph node each, with a backward derived by hand (llm.c style).

Each could be composed from the primitives in ops.py, and functional.py keeps that composition as the
reference (`with tinygrad_proust.use_fused(False):` runs it). Fused, they are faster (one node instead
of 5-15, fewer temporaries) and numerically safer, and the derivation is worth reading.
"""
import numpy as np

from .device import array_module
from .tensor import Function


# ================================================================================================
# softmax family
# ================================================================================================

class Softmax(Function):
    """y_i = exp(x_i - m) / Σ_j exp(x_j - m), m = max_j x_j (subtracting m changes nothing but overflow).

    Backward: dy_i/dx_k = y_i (δ_ik - y_k), so
        dx_k = Σ_i g_i y_i (δ_ik - y_k) = y_k (g_k - Σ_i g_i y_i).
    """

    def forward(self, x, dim=-1):
        xp = array_module(x)
        e = xp.exp(x - x.max(axis=dim, keepdims=True))
        self.y, self.dim = e / e.sum(axis=dim, keepdims=True), dim
        return self.y

    def backward(self, g):
        y = self.y
        return y * (g - (g * y).sum(axis=self.dim, keepdims=True))


class LogSoftmax(Function):
    """y_i = x_i - m - log Σ_j exp(x_j - m).

    Backward: dy_i/dx_k = δ_ik - softmax_k, so dx_k = g_k - softmax_k Σ_i g_i = g_k - exp(y_k) Σ_i g_i.
    """

    def forward(self, x, dim=-1):
        xp = array_module(x)
        shifted = x - x.max(axis=dim, keepdims=True)
        self.y, self.dim = shifted - xp.log(xp.exp(shifted).sum(axis=dim, keepdims=True)), dim
        return self.y

    def backward(self, g):
        xp = array_module(g)
        return g - xp.exp(self.y) * g.sum(axis=self.dim, keepdims=True)


class CrossEntropy(Function):
    """Mean negative log-likelihood of the targets under softmax(logits), rows with target == ignore_index left out.

        loss = -(1/N) Σ_n log softmax(x_n)[t_n]       over the N rows that count

    Backward (term by term): d(-log softmax(x)[t]) / dx_k = softmax(x)_k - [k = t], so
        dx_n = g (p_n - onehot(t_n)) / N   for rows that count, 0 for ignored rows.
    No (N, C) one-hot is built: p is copied once and 1 subtracted at the targets.
    """

    def forward(self, logits, target, ignore_index=-100):
        xp = array_module(logits)
        shifted = logits - logits.max(axis=1, keepdims=True)
        log_probs = shifted - xp.log(xp.exp(shifted).sum(axis=1, keepdims=True))
        self.valid = target != ignore_index
        self.target = xp.where(self.valid, target, 0)  # any in-range class for ignored rows
        self.count = self.valid.sum().astype(logits.dtype)  # stays on the device: no host sync
        picked = xp.take_along_axis(log_probs, self.target[:, None], axis=1)[:, 0]
        self.probs = xp.exp(log_probs)
        return -(picked * self.valid).sum() / self.count

    def backward(self, g):
        xp = array_module(g)
        grad = self.probs.copy()
        grad[xp.arange(grad.shape[0]), self.target] -= 1
        return grad * (self.valid * (g / self.count))[:, None]


# ================================================================================================
# normalisation
# ================================================================================================

class LayerNorm(Function):
    """y = x̂ w + b, x̂ = (x - μ) r, μ = mean(x), r = 1/sqrt(var(x) + eps), over the last dim (size C).

    Backward, with d = g w (the gradient at x̂):
        dw = Σ_rows g x̂,   db = Σ_rows g
        dx = r (d - mean(d) - x̂ mean(d x̂))
    term 1 is the direct path, term 2 comes through μ, term 3 through the variance (dx̂_j/dx_k needs
    d r/dx_k = -r³ (x_k - μ)/C = -r² x̂_k / C).
    """

    def forward(self, x, weight, bias=None, eps=1e-5):
        xp = array_module(x)
        mean = x.mean(axis=-1, keepdims=True)
        centered = x - mean
        var = (centered * centered).mean(axis=-1, keepdims=True)
        self.rstd = 1 / xp.sqrt(var + eps)
        self.xhat, self.weight, self.has_bias = centered * self.rstd, weight, bias is not None
        y = self.xhat * weight
        return y + bias if bias is not None else y

    def backward(self, g):
        xhat = self.xhat
        d = g * self.weight
        dx = self.rstd * (d - d.mean(axis=-1, keepdims=True) - xhat * (d * xhat).mean(axis=-1, keepdims=True))
        g_rows = g.reshape(-1, g.shape[-1])
        dw = (g_rows * xhat.reshape(g_rows.shape)).sum(axis=0)
        return (dx, dw, g_rows.sum(axis=0)) if self.has_bias else (dx, dw)


class RMSNorm(Function):
    """y = x̂ w, x̂ = x r, r = 1/sqrt(mean(x²) + eps), over the last dim. LayerNorm without the centring.

    Backward, with d = g w:  dw = Σ_rows g x̂,   dx = r (d - x̂ mean(d x̂))
    (the second term is the path through r: dr/dx_k = -r³ x_k / C).
    """

    def forward(self, x, weight, eps=1e-6):
        xp = array_module(x)
        self.rstd = 1 / xp.sqrt((x * x).mean(axis=-1, keepdims=True) + eps)
        self.xhat, self.weight = x * self.rstd, weight
        return self.xhat * weight

    def backward(self, g):
        xhat = self.xhat
        d = g * self.weight
        dx = self.rstd * (d - xhat * (d * xhat).mean(axis=-1, keepdims=True))
        g_rows = g.reshape(-1, g.shape[-1])
        return dx, (g_rows * xhat.reshape(g_rows.shape)).sum(axis=0)


# ================================================================================================
# layers
# ================================================================================================

class Linear(Function):
    """y = x Wᵀ + b, W of shape (out, in) as in PyTorch; any leading dims of x are one GEMM's rows.

    Backward: dx = g W,  dW = gᵀ x (summed over rows),  db = Σ_rows g.
    """

    def forward(self, x, weight, bias=None):
        if x.shape[-1] != weight.shape[1]:
            raise ValueError(f"Linear: input of shape {x.shape} has {x.shape[-1]} features, "
                             f"weight of shape {weight.shape} expects {weight.shape[1]}")
        self.x_rows = x.reshape(-1, x.shape[-1])
        self.weight, self.has_bias = weight, bias is not None
        y = self.x_rows @ weight.T
        if bias is not None:
            y += bias  # y is a fresh array: adding in place is safe
        return y.reshape(x.shape[:-1] + (weight.shape[0],))

    def backward(self, g):
        g_rows = g.reshape(-1, g.shape[-1])
        dx = (g_rows @ self.weight).reshape(g.shape[:-1] + (self.weight.shape[1],))
        dw = g_rows.T @ self.x_rows
        return (dx, dw, g_rows.sum(axis=0)) if self.has_bias else (dx, dw)


class Embedding(Function):
    """y[..., :] = W[idx[...], :]. Backward: dW[v] = Σ over positions where idx == v of g — a scatter-add."""

    def forward(self, weight, indices):
        self.indices, self.weight_shape = indices, weight.shape
        return weight[indices]

    def backward(self, g):
        xp = array_module(g)
        dw = xp.zeros(self.weight_shape, dtype=g.dtype)
        xp.add.at(dw, self.indices.reshape(-1), g.reshape(-1, self.weight_shape[1]))
        return dw


# ================================================================================================
# attention
# ================================================================================================

class ScaledDotProductAttention(Function):
    """out = P V,  P = softmax(S) (dropped out in training),  S = scale · Q Kᵀ, masked to -inf where
    a query may not look (causal: key j > query i).

    Backward, with G = dL/d(out):
        dV = Pᵀ G,   dP = G Vᵀ,   dS = P ⊙ (dP - rowsum(dP ⊙ P))   (the softmax backward),
        dQ = scale · dS K,   dK = scale · dSᵀ Q.
    P (B, H, T, T) is the one large saved array.
    """

    def forward(self, q, k, v, is_causal=False, attn_mask=None, scale=None, dropout_keep=None):
        xp = array_module(q)
        if not (q.shape[-1] == k.shape[-1] and k.shape[-2] == v.shape[-2]):
            raise ValueError(f"ScaledDotProductAttention: q {q.shape}, k {k.shape}, v {v.shape} do not fit "
                             "(need q (..., T, d), k (..., S, d), v (..., S, dv))")
        self.scale = scale if scale is not None else 1 / np.sqrt(q.shape[-1])
        scores = (q @ k.swapaxes(-1, -2)) * q.dtype.type(self.scale)
        allowed = causal_mask(xp, q.shape[-2], k.shape[-2]) if is_causal else None
        if attn_mask is not None:
            allowed = attn_mask if allowed is None else allowed & attn_mask
        if allowed is not None:
            scores = xp.where(allowed, scores, xp.asarray(-np.inf, dtype=scores.dtype))
        scores -= scores.max(axis=-1, keepdims=True)
        p = xp.exp(scores)
        p /= p.sum(axis=-1, keepdims=True)
        self.q, self.k, self.v, self.p, self.keep = q, k, v, p, dropout_keep
        return (p if dropout_keep is None else p * dropout_keep) @ v

    def backward(self, g):
        p, keep, scale = self.p, self.keep, self.q.dtype.type(self.scale)
        p_used = p if keep is None else p * keep
        dv = p_used.swapaxes(-1, -2) @ g
        dp = g @ self.v.swapaxes(-1, -2)
        if keep is not None:
            dp *= keep
        ds = p * (dp - (dp * p).sum(axis=-1, keepdims=True))
        ds *= scale
        return ds @ self.k, ds.swapaxes(-1, -2) @ self.q, dv


def causal_mask(xp, t_query, t_key):
    """(T, S) booleans, True where query i may attend key j: j <= i (aligned top-left, as PyTorch's is_causal)."""
    return xp.tril(xp.ones((t_query, t_key), dtype=bool))
