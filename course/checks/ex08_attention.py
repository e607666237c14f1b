"""Checks of exercise 8: causality (a future key moved, no earlier output moves), the forward against a float64
reference, the framework's scaled_dot_product_attention and PyTorch's where installed, the backward against the
hand-derived products and finite differences, and a GPT trained with the learner's attention in every block."""
import math

import numpy as np

import tinygrad_proust as tp
from course.diagnose import compare, gradients_against_finite_differences
from course.plugin import trains_as_the_framework
from course.runner import Wrong, quick
from tinygrad_proust import fused
from tinygrad_proust import functional as F

TITLE = "Causal self-attention (one op, forward and backward)"
MINUTES = 45
NEEDS = [4, 5]


def qkv(seed, shape=(2, 2, 6, 4)):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(shape) for _ in range(3)]


def reference(q, k, v, scale=None):
    """float64 causal attention, and its P, worked here with a lower-triangular mask."""
    T, D = q.shape[-2], q.shape[-1]
    s = q @ np.swapaxes(k, -1, -2) * (1 / math.sqrt(D) if scale is None else scale)
    s = np.where(np.tril(np.ones((T, T), dtype=bool)), s, -np.inf)
    p = np.exp(s - s.max(axis=-1, keepdims=True))
    p /= p.sum(axis=-1, keepdims=True)
    return p @ v, p


def attend(ex, q, k, v):
    with np.errstate(all="ignore"):
        return ex.CausalSelfAttention.apply(tp.Tensor(q), tp.Tensor(k), tp.Tensor(v)).numpy()


def sees_something(out):
    """Raise Wrong if a position's output is not finite: a row of scores masked everywhere."""
    bad = ~np.isfinite(out).all(axis=(0, 1, 3))
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise Wrong(f"the output at position {i} is NaN: its scores are all masked, so it sees no key at all; "
                    f"position {i} must see itself and the positions before it (mask only the keys j > i)")


def check_causal(ex):
    """causality: moving key and value j changes the outputs at j and after, never before"""
    q, k, v = qkv(0)
    out = attend(ex, q, k, v)
    sees_something(out)
    T = q.shape[-2]
    for j in range(T):
        k2, v2 = k.copy(), v.copy()
        k2[..., j, :] += 1.0
        v2[..., j, :] += 1.0
        moved = ~np.isclose(attend(ex, q, k2, v2), out, rtol=1e-9, atol=1e-12).all(axis=(0, 1, 3))
        if moved[:j].any():
            i = int(np.flatnonzero(moved[:j])[0])
            raise Wrong(f"your attention lets position {i} see position {j}: changing key and value {j} moves the "
                        f"output at {i}; a query i may only see keys j <= i (mask j > i)")
        if not moved[j]:
            raise Wrong(f"your attention does not let position {j} see itself: changing key and value {j} leaves "
                        f"the output at {j} as it was; mask only the keys after the query (j > i), not the diagonal")


def check_forward(ex):
    """forward: equals the framework's scaled_dot_product_attention(is_causal=True) (and PyTorch's)"""
    q, k, v = qkv(1)
    got = attend(ex, q, k, v)
    sees_something(got)
    want = reference(q, k, v)[0]
    if got.shape == want.shape and not np.allclose(got, want) and np.allclose(got, reference(q, k, v, 1.0)[0]):
        raise Wrong(f"the scores are not scaled: multiply q kᵀ by scale = 1/sqrt(D) = 1/sqrt({q.shape[-1]}), so "
                    "that their spread does not grow with the head size")
    compare("attention of q, k, v (2, 2, 6, 4)", got, want)
    framework = F.scaled_dot_product_attention(tp.Tensor(q), tp.Tensor(k), tp.Tensor(v), is_causal=True)
    compare("attention of q, k, v (2, 2, 6, 4), by the framework's scaled_dot_product_attention", got, framework)
    try:
        import torch
    except ImportError:
        return
    by_torch = torch.nn.functional.scaled_dot_product_attention(*map(torch.from_numpy, (q, k, v)), is_causal=True)
    compare("attention of q, k, v (2, 2, 6, 4), by PyTorch's scaled_dot_product_attention", got, by_torch.numpy())


def check_backward(ex):
    """backward: dV = Pᵀ G, dQ = scale · dS k, dK = scale · dSᵀ q, against finite differences"""
    q, k, v = qkv(2, (1, 2, 5, 3))
    g = np.random.default_rng(3).standard_normal(q.shape)
    with np.errstate(all="ignore"):
        out = ex.CausalSelfAttention.apply(*(tp.Tensor(a, requires_grad=True) for a in (q, k, v)))
    sees_something(out.numpy())
    got = out._ctx.backward(g)
    if not isinstance(got, tuple) or len(got) != 3:
        raise Wrong("CausalSelfAttention.backward must return three gradients: dq, dk, dv")
    dq, dk, dv = got
    p = reference(q, k, v)[1]
    scale = 1 / math.sqrt(q.shape[-1])
    dp = g @ np.swapaxes(v, -1, -2)
    ds = p * (dp - (dp * p).sum(axis=-1, keepdims=True))
    t = np.swapaxes
    wrong = [("dv", dv, p @ g, "dV is P G: it needs Pᵀ G (value j goes to every query i that looked at it)"),
             ("dk", dk, scale * ds @ q, "dK is scale · dS q: dS needs a transpose, dK = scale · dSᵀ q (key j "
                                        "collects from every query i that looked at it)"),
             ("dq", dq, scale * t(ds, -1, -2) @ k, "dQ is scale · dSᵀ k: dQ = scale · dS k, without a transpose"),
             ("dq", dq, ds @ k, "dQ is dS k: the scale is missing; S = scale · q kᵀ, so dQ = scale · dS k"),
             ("dk", dk, t(ds, -1, -2) @ q, "dK is dSᵀ q: the scale is missing; S = scale · q kᵀ, so "
                                           "dK = scale · dSᵀ q")]
    for name, value, bad, says in wrong:
        if value is not None and np.shape(value) == bad.shape and np.allclose(value, bad):
            raise Wrong(says)
    compare("dv", dv, t(p, -1, -2) @ g)
    compare("dq", dq, scale * ds @ k)
    compare("dk", dk, scale * t(ds, -1, -2) @ q)
    gradients_against_finite_differences(lambda *x: ex.CausalSelfAttention.apply(*x), [q, k, v], ["q", "k", "v"])


def framework_shaped(Attention):
    """The learner's attention under the framework's signature (fused.ScaledDotProductAttention's options)."""
    class Adapter(Attention):
        def forward(self, q, k, v, added=None, is_causal=False, attn_mask=None, scale=None, dropout_keep=None):
            plain = scale is None or math.isclose(scale, 1 / math.sqrt(q.shape[-1]))
            if added is not None or attn_mask is not None or dropout_keep is not None or not is_causal or not plain:
                raise Wrong("the GPT asked for attention with a mask, dropout or scale of its own, which yours "
                            "does not do")
            return super().forward(q, k, v)
    return Adapter


def check_in_a_gpt(ex):
    """a GPT trains with your attention in every block exactly as with the framework's"""
    steps = 6 if quick() else 30
    trains_as_the_framework("attention", fused, "ScaledDotProductAttention", framework_shaped(ex.CausalSelfAttention),
                            steps, n_layer=2)
