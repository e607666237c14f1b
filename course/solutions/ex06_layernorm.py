"""Exercise 6 · LayerNorm and its compact backward

Goal: the normalisation in every block of a GPT. Over the last dim (C features) of each row x:

    μ = (1/C) Σ_j x_j          σ² = (1/C) Σ_j (x_j - μ)²        (the biased variance: divided by C, not C - 1)
    r = 1 / sqrt(σ² + eps)     x̂ = (x - μ) r                   y = x̂ * weight + bias

weight and bias have shape (C,) and are shared by every row (all leading dims: (B, T, C) is B·T rows).

Backward, with g = dL/dy. The two parameters first: each row uses the same weight and bias, so their gradients
add up over the rows (exercise 3):

    dweight = Σ_rows g * x̂        dbias = Σ_rows g                  both of shape (C,)

The input: let d = g * weight (the gradient at x̂). x̂_j depends on every x_k of its row, through μ and through r:

    dx̂_j/dx_k = r (δ_jk - 1/C - x̂_j x̂_k / C)      (the 1/C from μ; the x̂_j x̂_k / C from r, as dr/dx_k = -r² x̂_k / C)

so dx_k = Σ_j d_j dx̂_j/dx_k, which is compact row by row:

    dx = r (d - mean(d) - x̂ * mean(d * x̂))           the means over the row's C features (keepdims)

The first term is the direct path; leave out the other two and the gradient ignores that moving one x moves
the row's mean and variance. Write the three gradients at their inputs' shapes: dweight and dbias summed over
every leading dim.

Write LayerNorm.forward (keeping x̂, r and weight for backward) and LayerNorm.backward. The last check puts
your LayerNorm in the framework and trains a GPT with it. Check: python -m course check 6
"""
import numpy as np  # noqa: F401  (for your code)

import tinygrad_proust as tp


class LayerNorm(tp.Function):
    """y = (x - mean) / sqrt(var + eps) * weight + bias over the last dim: x (..., C), weight and bias (C,)."""

    def forward(self, x, weight, bias, eps=1e-5):
        # TODO exercise 6: LayerNorm.forward
        mean = x.mean(axis=-1, keepdims=True)
        var = ((x - mean) ** 2).mean(axis=-1, keepdims=True)
        self.rstd = 1 / np.sqrt(var + eps)
        self.xhat, self.weight = (x - mean) * self.rstd, weight
        return self.xhat * weight + bias
        # END

    def backward(self, g):
        # TODO exercise 6: LayerNorm.backward
        rows = tuple(range(g.ndim - 1))  # every dim but the features
        dweight = (g * self.xhat).sum(axis=rows)
        dbias = g.sum(axis=rows)
        d = g * self.weight
        dx = self.rstd * (d - d.mean(axis=-1, keepdims=True)
                          - self.xhat * (d * self.xhat).mean(axis=-1, keepdims=True))
        return dx, dweight, dbias
        # END


def layer_norm(x, weight, bias, eps=1e-5):
    return LayerNorm.apply(x, weight, bias, eps=eps)


# ---- mistakes: wrong answers the checks must catch
from course.runner import Mistake  # noqa: E402

MISTAKES = [
    Mistake("the unbiased variance (divided by C - 1)", "var = ((x - mean) ** 2).mean(axis=-1, keepdims=True)",
            "var = x.var(axis=-1, ddof=1, keepdims=True)", "biased"),
    Mistake("the backward's mean terms left out",
            "dx = self.rstd * (d - d.mean(axis=-1, keepdims=True)\n"
            "                          - self.xhat * (d * self.xhat).mean(axis=-1, keepdims=True))",
            "dx = self.rstd * d", "mean"),
    Mistake("the backward's term through the variance left out",
            "\n                          - self.xhat * (d * self.xhat).mean(axis=-1, keepdims=True))", ")",
            "through the variance"),
    Mistake("dweight not summed over the rows", "dweight = (g * self.xhat).sum(axis=rows)",
            "dweight = g * self.xhat", "summed over"),
    Mistake("dbias summed over the features, not the rows", "dbias = g.sum(axis=rows)", "dbias = g.sum(axis=-1)",
            "dbias"),
    Mistake("eps written in, not the one given", "self.rstd = 1 / np.sqrt(var + eps)",
            "self.rstd = 1 / np.sqrt(var + 1e-5)", "use the eps it is given"),
    Mistake("eps outside the square root", "self.rstd = 1 / np.sqrt(var + eps)",
            "self.rstd = 1 / (np.sqrt(var) + eps)", "eps"),
]
