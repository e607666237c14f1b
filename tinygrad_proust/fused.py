"""Fused ops: one graph node each, with a backward derived by hand (llm.c style).

Each could be composed from the primitives in ops.py, and functional.py keeps that composition as the
reference (`with tinygrad_proust.use_fused(False):` runs it). Fused, they are faster (one node instead
of 5-15, fewer temporaries) and numerically safer, and the derivation is worth reading.
"""
import functools

import numpy as np

from . import kernels
from .device import array_module, launch_bound
from .ops import _SQRT_2_OVER_PI, sigmoid_array
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
        e = self.xp.exp(x - x.max(axis=dim, keepdims=True))
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
        shifted = x - x.max(axis=dim, keepdims=True)
        self.y, self.dim = shifted - self.xp.log(self.xp.exp(shifted).sum(axis=dim, keepdims=True)), dim
        return self.y

    def backward(self, g):
        return g - self.xp.exp(self.y) * g.sum(axis=self.dim, keepdims=True)


class CrossEntropy(Function):
    """Mean negative log-likelihood of the targets under softmax(logits), rows with target == ignore_index left out.

        loss = -(1/N) Σ_n log softmax(x_n)[t_n]       over the N rows that count

    Backward (term by term): d(-log softmax(x)[t]) / dx_k = softmax(x)_k - [k = t], so
        dx_n = g (p_n - onehot(t_n)) / N   for rows that count, 0 for ignored rows.
    No (N, C) one-hot is built: p is copied once and 1 subtracted at the targets.
    """

    def forward(self, logits, target, ignore_index=-100):
        xp = self.xp
        shifted = logits - logits.max(axis=1, keepdims=True)
        self.probs = xp.exp(shifted)
        sum_exp = self.probs.sum(axis=1, keepdims=True)
        self.probs /= sum_exp                              # softmax, kept for backward
        self.valid = target != ignore_index
        self.target = xp.where(self.valid, target, 0)  # any in-range class for ignored rows
        self.count = self.valid.sum(dtype=logits.dtype)  # stays on the device: no host sync
        # -log softmax at the targets only: log Σ exp(shifted) - shifted[t]
        nll = xp.log(sum_exp[:, 0]) - xp.take_along_axis(shifted, self.target[:, None], axis=1)[:, 0]
        with np.errstate(invalid="ignore"):  # no row counts: NaN, as PyTorch's, without a warning
            return (nll * self.valid).sum() / self.count

    def backward(self, g):
        grad = self.probs.copy()
        grad[self.xp.arange(grad.shape[0]), self.target] -= 1
        return grad * (self.valid * (g / self.xp.maximum(self.count, 1)))[:, None]  # no row counts: 0, not NaN


# ================================================================================================
# normalisation
# ================================================================================================

# The norms' sums over a layer's features, as BLAS calls: NumPy reduces a (768, 128) array over its short rows in
# 41 us, one matrix-vector product takes 11 us. Each is the plain sum it names.

@functools.lru_cache(maxsize=32)  # the same vector for every call (on a GPU, making it is a launch): never written to
def filled(xp, n, value, dtype):
    return xp.full(n, value, dtype=dtype)


def row_sum(a, scale=1.0):
    """scale · Σ over the last dim, kept as a dim of size 1: a @ (scale, scale, ...)."""
    xp = array_module(a)
    return (a.reshape(-1, a.shape[-1]) @ filled(xp, a.shape[-1], scale, a.dtype)).reshape(a.shape[:-1] + (1,))


def row_dot(a, b):
    """Σ_i a_i b_i over the last dim, kept as a dim of size 1, without the a ⊙ b temporary."""
    return array_module(a).einsum("...i,...i->...", a, b)[..., None]


def column_sum(a):
    """Σ over every dim but the last (the rows of a weight's or bias's gradient): ones @ a."""
    rows = a.reshape(-1, a.shape[-1])
    return filled(array_module(a), rows.shape[0], 1.0, a.dtype) @ rows


class LayerNorm(Function):
    """y = x̂ w + b, x̂ = (x - μ) r, μ = mean(x), r = 1/sqrt(var(x) + eps), over the last dim (size C).

    Backward, with d = g w (the gradient at x̂):
        dw = Σ_rows g x̂,   db = Σ_rows g
        dx = r (d - mean(d) - x̂ mean(d x̂))
    term 1 is the direct path, term 2 comes through μ, term 3 through the variance (dx̂_j/dx_k needs
    d r/dx_k = -r³ (x_k - μ)/C = -r² x̂_k / C).
    The row means of d and d x̂ are (g @ w)/C and ((g x̂) @ w)/C: matrix-vector products, without d x̂.
    """

    def forward(self, x, weight, bias=None, eps=1e-5):
        xp, C = self.xp, x.shape[-1]
        xhat = x - row_sum(x, 1 / C)                                    # x - μ
        self.rstd = xp.sqrt(C / (row_dot(xhat, xhat) + C * eps))        # 1/sqrt(var + eps), one value a row
        xhat *= self.rstd
        self.xhat, self.weight, self.has_bias = xhat, weight, bias is not None
        y = xhat * weight
        return y if bias is None else xp.add(y, bias, out=y)

    def backward(self, g):
        xp, C = self.xp, g.shape[-1]
        g_rows, xhat = g.reshape(-1, C), self.xhat.reshape(-1, C)
        gx = g_rows * xhat
        dw, db = column_sum(gx), (column_sum(g_rows) if self.has_bias else None)
        w_mean = self.weight * (1 / C)                                  # w / C, for both row means
        mean_dxhat = (gx @ w_mean)[:, None]                             # mean(d x̂) per row
        dx = g_rows * self.weight                                       # d
        dx -= (g_rows @ w_mean)[:, None]                                # - mean(d)
        dx -= xp.multiply(xhat, mean_dxhat, out=gx)                     # - x̂ mean(d x̂), in gx's buffer
        dx *= self.rstd.reshape(-1, 1)
        return (dx.reshape(g.shape), dw, db) if self.has_bias else (dx.reshape(g.shape), dw)


class RMSNorm(Function):
    """y = x̂ w, x̂ = x r, r = 1/sqrt(mean(x²) + eps), over the last dim. LayerNorm without the centring.

    Backward, with d = g w:  dw = Σ_rows g x̂,   dx = r (d - x̂ mean(d x̂))
    (the second term is the path through r: dr/dx_k = -r³ x_k / C). Row means as in LayerNorm.
    """

    def forward(self, x, weight, eps=1e-6):
        self.rstd = self.xp.sqrt(x.shape[-1] / (row_dot(x, x) + x.shape[-1] * eps))  # 1/sqrt(mean(x²) + eps)
        self.xhat, self.weight = x * self.rstd, weight
        return self.xhat * weight

    def backward(self, g):
        xp, C = self.xp, g.shape[-1]
        g_rows, xhat = g.reshape(-1, C), self.xhat.reshape(-1, C)
        gx = g_rows * xhat
        dw = column_sum(gx)
        mean_dxhat = (gx @ self.weight)[:, None] * (1 / C)
        dx = g_rows * self.weight
        dx -= xp.multiply(xhat, mean_dxhat, out=gx)
        dx *= self.rstd.reshape(-1, 1)
        return dx.reshape(g.shape), dw


# ================================================================================================
# gating
# ================================================================================================

class SwiGLU(Function):
    """[a, b] = x split in two halves along the last dim;  y = silu(a) ⊙ b = a σ(a) b.

    Backward: dy/da = b σ(a) (1 + a (1 - σ(a))) = b (σ(a) + silu(a) (1 - σ(a))),  dy/db = silu(a); the two
    halves of dx written side by side into one array.
    """

    def forward(self, x):
        half = x.shape[-1] // 2
        self.a, self.b = x[..., :half], x[..., half:]
        self.s = sigmoid_array(self.a)
        self.silu = self.a * self.s
        return self.silu * self.b

    def backward(self, g):
        xp, half = self.xp, g.shape[-1]
        dx = xp.empty(g.shape[:-1] + (2 * half,), dtype=g.dtype)
        xp.multiply(g, self.b, out=dx[..., :half])
        dx[..., :half] *= self.s + self.silu * (1 - self.s)
        xp.multiply(g, self.silu, out=dx[..., half:])
        return dx


class GeluTanh(Function):
    """ops.Gelu's tanh form, x σ(2u), u = sqrt(2/π) (x + 0.044715 x³), in fewer passes: each step of the formula
    in one reused buffer (a pass, not a new array), and on a GPU one compiled kernel for all of them
    (kernels.gelu_tanh). Backward: d (x σ(2u)) = s + x · 2 s (1 - s) · u', s = σ(2u), built in two buffers."""

    def forward(self, x):
        xp = self.xp
        self.x = x
        if (fast := kernels.gelu_tanh(xp, x, *GELU_TANH[:2])) is not None:
            self.cdf, y = fast
            return y
        s = xp.multiply(x, x, out=xp.empty_like(x))  # an array, also for a 0-d x
        s *= GELU_TANH[0]
        s += GELU_TANH[1]
        s *= x                                    # -2u = -2 sqrt(2/π) (x + 0.044715 x³)
        with np.errstate(over="ignore"):          # e^(-2u) = inf far left of 0 gives σ = 0, the right limit
            xp.exp(s, out=s)
        s += 1
        self.cdf = xp.reciprocal(s, out=s)        # σ(2u)
        return x * self.cdf

    def backward(self, g):
        x, s = self.x, self.cdf
        if (fast := kernels.gelu_tanh_backward(self.xp, x, s, g, *GELU_TANH[2:])) is not None:
            return fast
        d = x * x
        d *= GELU_TANH[2]
        d += GELU_TANH[3]
        d *= x                                    # 2 x u'
        tmp = 1 - s
        tmp *= s
        d *= tmp                                  # ... s (1 - s)
        d += s
        d *= g
        return d


# the tanh form's constants: -2u = (c1 x² + c2) x;  2 x u' = (c3 x² + c4) x
GELU_TANH = (-2 * _SQRT_2_OVER_PI * 0.044715, -2 * _SQRT_2_OVER_PI, 6 * _SQRT_2_OVER_PI * 0.044715,
             2 * _SQRT_2_OVER_PI)


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

    def backward(self, g):  # only what a parent needs: a frozen weight (LoRA's base) costs no GEMM
        g_rows = g.reshape(-1, g.shape[-1])
        x, weight = self.parents[0], self.parents[1]
        dx = (g_rows @ self.weight).reshape(g.shape[:-1] + (self.weight.shape[1],)) if x.requires_grad else None
        dw = g_rows.T @ self.x_rows if weight.requires_grad else None
        return (dx, dw, g_rows.sum(axis=0)) if self.has_bias else (dx, dw)


class Embedding(Function):
    """y[..., :] = W[idx[...], :]. Backward: dW[v] = Σ over positions where idx == v of g — a scatter-add,
    which is also a matrix product: dW = onehot(idx)ᵀ g, onehot of shape (positions, V)."""

    def forward(self, weight, indices):
        self.indices, self.weight_shape = indices, weight.shape
        return weight[indices]

    def backward(self, g):
        xp = self.xp
        (V, C), idx = self.weight_shape, self.indices.reshape(-1)
        g_rows = g.reshape(-1, C)
        if V <= 4 * C:  # a small vocabulary (characters, bytes): a one-hot at most 4x g's size, and one GEMM is
            onehot = xp.zeros((idx.size, V), dtype=g.dtype)  # 1.5-6x faster here than NumPy's scatter-add
            onehot[xp.arange(idx.size), idx] = 1
            return onehot.T @ g_rows
        dw = xp.zeros(self.weight_shape, dtype=g.dtype)
        xp.add.at(dw, idx, g_rows)
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

    Causal self-attention on a CPU works on blocks of query rows: the rows r0..r1-1 can only see keys 0..r1-1, so
    each block computes just that part of S (and of every product above). That skips most of the masked upper
    triangle, about 40% of the work (flash attention skips whole blocks above the diagonal the same way). On a GPU,
    where each block's products are a round of kernel launches (device.launch_bound), and in any other case, it
    is one block: all queries, all keys.
    """

    BLOCK = 32  # query rows per block for causal attention, at least; at most 8 blocks (measured: T = 1024 runs
                # 1.4x faster in blocks of 128 than of 32, each block being a round of small GEMMs)

    def forward(self, q, k, v, added=None, is_causal=False, attn_mask=None, scale=None, dropout_keep=None):
        xp = self.xp
        if not (q.shape[-1] == k.shape[-1] and k.shape[-2] == v.shape[-2]):
            raise ValueError(f"ScaledDotProductAttention: q {q.shape}, k {k.shape}, v {v.shape} do not fit "
                             "(need q (..., T, d), k (..., S, d), v (..., S, dv))")
        T, S = q.shape[-2], k.shape[-2]
        self.scale = q.dtype.type(scale if scale is not None else 1 / np.sqrt(q.shape[-1]))
        blocked = is_causal and attn_mask is None and added is None and T == S and not launch_bound(q)
        rows = max(self.BLOCK, T // 8) if blocked else T
        # (first query row, end query row, end key) of each block
        self.blocks = [(r0, min(r0 + rows, T), min(r0 + rows, T) if blocked else S) for r0 in range(0, T, rows)]
        only_causal = attn_mask is None and added is None
        bias = causal_bias(xp, T, S, q.dtype) if is_causal else None  # + 0 where allowed, + -inf where not
        if attn_mask is not None:
            bias = xp.where(attn_mask, q.dtype.type(0), q.dtype.type(-np.inf)) + (0 if bias is None else bias)
        if added is not None:  # a float mask, added to the scores (one block: its gradient is dS)
            bias = added.astype(q.dtype, copy=False) + (0 if bias is None else bias)
        self.p, self.dropped, parts, qs = [], [], [], q * self.scale  # scale · Q: also dK = dSᵀ (scale · Q)
        compiled = only_causal and len(self.blocks) == 1  # the kernel's causal rows count from query 0
        for r0, r1, kend in self.blocks:
            p = qs[..., r0:r1, :] @ k[..., :kend, :].swapaxes(-1, -2)  # S for this block
            block_keep = None if dropout_keep is None else dropout_keep[..., r0:r1, :kend]
            # on a GPU one compiled kernel does the next six lines (kernels.attention_softmax)
            dropped = kernels.attention_softmax(xp, p, block_keep, is_causal) if compiled else None
            if dropped is None:
                if bias is not None:
                    p += bias[..., r0:r1, :kend]
                top = p.max(axis=-1, keepdims=True)          # softmax over the keys, in place
                if not only_causal:  # a query a mask leaves no key: weights 0 (as PyTorch's), not 0/0
                    xp.maximum(top, np.finfo(p.dtype).min, out=top)
                p -= top
                xp.exp(p, out=p)
                total = p.sum(axis=-1, keepdims=True)
                p /= total if only_causal else xp.maximum(total, np.finfo(p.dtype).tiny, out=total)
                dropped = p if block_keep is None else p * block_keep
            parts.append(dropped @ v[..., :kend, :])
            self.p.append(p)
            self.dropped.append(dropped)
        self.qs, self.k, self.v, self.keep = qs, k, v, dropout_keep
        return parts[0] if len(parts) == 1 else xp.concatenate(parts, axis=-2)

    def backward(self, g):
        xp, g = self.xp, self.xp.ascontiguousarray(g)  # read by two products: copied once, not twice
        qs, v, keep = self.qs, self.v, self.keep
        ks = self.k * self.scale  # dQ = dS (scale · K): on a GPU CuPy would copy the K view for the product anyway
        dq, dk, dv = [], None, None
        for (r0, r1, kend), p, dropped in reversed(list(zip(self.blocks, self.p, self.dropped))):
            g_rows = g[..., r0:r1, :]  # the last block reaches every key: its dK and dV start the sums
            block_keep = None if keep is None else keep[..., r0:r1, :kend]
            dv_part = transposed_product(g_rows, dropped)  # Pᵀ G
            ds = g_rows @ v[..., :kend, :].swapaxes(-1, -2)  # dP, turned into dS in place below
            if not kernels.attention_softmax_backward(xp, ds, p, block_keep):  # on a GPU: these 4 lines
                if block_keep is not None:
                    ds *= block_keep
                ds -= (ds * p).sum(axis=-1, keepdims=True)
                ds *= p
            dq.insert(0, ds @ ks[..., :kend, :])
            dk_part = transposed_product(qs[..., r0:r1, :], ds)  # dSᵀ (scale · Q)
            if dk is None:
                dk, dv = dk_part, dv_part
            else:
                dk[..., :kend, :] += dk_part
                dv[..., :kend, :] += dv_part
        dq = dq[0] if len(dq) == 1 else xp.concatenate(dq, axis=-2)
        return (dq, dk, dv) if len(self.parents) == 3 else (dq, dk, dv, ds)


def transposed_product(a, b):
    """bᵀ a over the last two dims, b a (..., T, S) score matrix, a a thin (..., T, d) one. On a GPU, CuPy copies a
    batched matmul's non-contiguous operands first, so it is computed as (aᵀ b)ᵀ: the copy is of a's transpose,
    not of the score matrix's (a transposed view is returned). NumPy reads either without a copy, and is faster
    with bᵀ a as written."""
    if launch_bound(a):
        return (a.swapaxes(-1, -2) @ b).swapaxes(-1, -2)
    return b.swapaxes(-1, -2) @ a


def causal_mask(xp, t_query, t_key, offset=0):
    """(T, S) booleans, True where query i may attend key j: j <= i + offset (offset 0: aligned top-left, as
    PyTorch's is_causal)."""
    return xp.tril(xp.ones((t_query, t_key), dtype=bool), k=offset)


@functools.lru_cache(maxsize=16)  # the same for every layer and step: made once, never written to
def causal_bias(xp, t_query, t_key, dtype):
    """(T, S): 0 where causal_mask allows, -inf where not (added to the scores)."""
    return xp.where(causal_mask(xp, t_query, t_key), dtype.type(0), dtype.type(-np.inf))
