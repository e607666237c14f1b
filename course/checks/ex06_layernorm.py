"""Checks of exercise 6: LayerNorm's forward against a float64 reference and the framework's layer_norm (a row of
almost equal values included), its backward against the hand-derived gradients and finite differences, and a GPT
trained with the learner's LayerNorm in place of the framework's."""
import numpy as np

import tinygrad_proust as tp
from course.diagnose import compare, gradients_against_finite_differences
from course.plugin import plain_sgd, trains_as_the_framework
from course.runner import Wrong, quick
from tinygrad_proust import fused
from tinygrad_proust import functional as F

TITLE = "LayerNorm (forward, and its compact backward)"
MINUTES = 35
NEEDS = [3]

EPS = 1e-5


def reference(x, w, b, eps=EPS, ddof=0, eps_outside=False):
    """float64 LayerNorm, and the statistics its backward needs."""
    mean = x.mean(axis=-1, keepdims=True)
    std = np.sqrt(((x - mean) ** 2).sum(axis=-1, keepdims=True) / (x.shape[-1] - ddof))
    rstd = 1 / (std + eps) if eps_outside else 1 / np.sqrt(std ** 2 + eps)
    xhat = (x - mean) * rstd
    return xhat * w + b, xhat, rstd


def inputs(seed, shape=(2, 3, 8)):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape) * 2 + 1
    x[-1, -1] = 0.5 + 1e-3 * rng.standard_normal(shape[-1])  # a row of almost equal values: eps matters there
    return x, rng.standard_normal(shape[-1]), rng.standard_normal(shape[-1])


def check_forward(ex):
    """forward: (x - mean) / sqrt(var + eps) * weight + bias, with the biased variance, as the framework's"""
    x, w, b = inputs(0)
    got = ex.LayerNorm.apply(tp.Tensor(x), tp.Tensor(w), tp.Tensor(b), eps=EPS)
    want = reference(x, w, b)[0]
    if got.shape == want.shape and not np.allclose(got.numpy(), want):
        if np.allclose(got.numpy(), reference(x, w, b, ddof=1)[0]):
            raise Wrong("your LayerNorm divides the variance by C - 1 (the unbiased variance); LayerNorm uses the "
                        "biased one, σ² = (1/C) Σ (x - μ)², as PyTorch's")
        if np.allclose(got.numpy(), reference(x, w, b, eps_outside=True)[0]):
            raise Wrong("your LayerNorm adds eps outside the square root, 1/(sqrt(σ²) + eps); it belongs inside, "
                        "1/sqrt(σ² + eps) (it shows on a row of almost equal values)")
    compare("LayerNorm of x (2, 3, 8)", got, want)
    compare("LayerNorm of x (2, 3, 8), by the framework's layer_norm", got,
            F.layer_norm(tp.Tensor(x), 8, tp.Tensor(w), tp.Tensor(b), eps=EPS))
    other = ex.LayerNorm.apply(tp.Tensor(x), tp.Tensor(w), tp.Tensor(b), eps=1e-2)  # the near-constant row shows eps
    want_other = reference(x, w, b, eps=1e-2)[0]
    if other.shape == want.shape and np.allclose(other.numpy(), want) and not np.allclose(want, want_other):
        raise Wrong("LayerNorm.apply(x, weight, bias, eps=0.01) gives what eps=1e-5 gives: use the eps it is "
                    "given, 1/sqrt(σ² + eps), not a number of your own")
    compare("LayerNorm of x (2, 3, 8) with eps=0.01", other, want_other)


def check_backward(ex):
    """backward: dx = r (d - mean(d) - x̂ mean(d x̂)) with d = g·weight; dweight and dbias summed over the rows"""
    x, w, b = inputs(1)
    g = np.random.default_rng(2).standard_normal(x.shape)
    out = ex.LayerNorm.apply(*(tp.Tensor(a, requires_grad=True) for a in (x, w, b)), eps=EPS)
    grads = out._ctx.backward(g)
    if not isinstance(grads, tuple) or len(grads) != 3:
        raise Wrong("LayerNorm.backward must return three gradients: dx, dweight, dbias")
    dx, dweight, dbias = grads
    _, xhat, rstd = reference(x, w, b)
    d = g * w
    for name, got in (("dweight", dweight), ("dbias", dbias)):
        if got is not None and np.shape(got) == x.shape:
            raise Wrong(f"{name} has shape {x.shape}, the input's: weight and bias (C,) are shared by every row, "
                        f"so their gradients are summed over the rows (every dim but the last), to shape (8,)")
    if dx is not None and np.shape(dx) == x.shape:
        if np.allclose(dx, rstd * d):
            raise Wrong("dx is r (g·weight), the direct path only: the row's mean and variance depend on every x "
                        "too, so dx = r (d - mean(d) - x̂ mean(d x̂)) with d = g·weight")
        if np.allclose(dx, rstd * (d - d.mean(axis=-1, keepdims=True))):
            raise Wrong("dx has the path through the mean but not the term through the variance: "
                        "dx = r (d - mean(d) - x̂ mean(d x̂))")
    compare("dx", dx, rstd * (d - d.mean(axis=-1, keepdims=True) - xhat * (d * xhat).mean(axis=-1, keepdims=True)))
    compare("dweight", dweight, (g * xhat).sum(axis=(0, 1)))
    compare("dbias", dbias, g.sum(axis=(0, 1)))
    gradients_against_finite_differences(lambda *t: ex.LayerNorm.apply(*t, eps=EPS), inputs(3, (2, 2, 5)),
                                         ["x", "weight", "bias"])


def framework_shaped(LayerNorm):
    """The learner's LayerNorm under the framework's signature (fused.LayerNorm's bias is optional)."""
    class Adapter(LayerNorm):
        def forward(self, x, weight, bias=None, eps=1e-5):
            self.no_bias = bias is None
            return super().forward(x, weight, 0 * weight if bias is None else bias, eps=eps)

        def backward(self, g):
            grads = super().backward(g)
            return grads[:2] if self.no_bias else grads
    return Adapter


def check_in_a_gpt(ex):
    """a GPT trains with your LayerNorm in every block exactly as with the framework's"""
    steps = 6 if quick() else 30
    trains_as_the_framework("LayerNorm", fused, "LayerNorm", framework_shaped(ex.LayerNorm), steps,
                            make_optimizer=plain_sgd)
