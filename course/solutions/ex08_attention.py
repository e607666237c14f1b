"""Exercise 8 · Causal self-attention, forward and backward as one op

Goal: the heart of a GPT, as a single Function over q, k, v of shape (B, H, T, D) (batch, heads, positions, head
size). Each position i mixes the values of the positions it may see, j <= i (never the future: the model is
trained to predict position i + 1 from the positions up to i):

    S = q kᵀ · scale                     (B, H, T, T)   S[i, j]: how well query i matches key j; scale = 1/sqrt(D)
    S[i, j] = -inf where j > i           the causal mask: exp(-inf) = 0, so position i gives the future no weight
    P = softmax(S) over the last axis    (B, H, T, T)   each row sums to 1
    out = P v                            (B, H, T, D)

The scale keeps the scores' spread near 1 whatever D is (a dot product of D unit-variance terms has variance D),
so the softmax does not saturate. Position i always sees itself (j = i), so no row is all -inf.

Backward, with G = dL/d out, one product at a time, each as in exercise 4 (transposes of the last two axes):

    out = P v            dV = Pᵀ G            dP = G vᵀ
    P = softmax(S)       dS = softmax_backward(P, dP)          (exercise 5; masked entries have P = 0, so dS = 0)
    S = scale · q kᵀ     dQ = scale · dS k    dK = scale · dSᵀ q

Reuse your softmax and softmax_backward from exercise 5 (imported below). Write CausalSelfAttention's forward and
backward. The checks move a future key and watch that no earlier output moves, compare with the framework's
scaled_dot_product_attention, and train a GPT with your attention in every block.
Check: python -m course check 8
"""
import math  # noqa: F401  (for your code)

import numpy as np  # noqa: F401  (for your code)

import tinygrad_proust as tp

from .ex05_softmax import softmax, softmax_backward  # noqa: F401  (your softmax from exercise 5)


class CausalSelfAttention(tp.Function):
    """softmax(q kᵀ / sqrt(D), causal mask) v over q, k, v of shape (B, H, T, D)."""

    def forward(self, q, k, v):
        # TODO exercise 8: CausalSelfAttention.forward
        T, D = q.shape[-2], q.shape[-1]
        self.scale = 1 / math.sqrt(D)
        scores = (q @ k.swapaxes(-1, -2)) * self.scale
        future = np.triu(np.ones((T, T), dtype=bool), k=1)  # True where key j > query i
        self.p = softmax(np.where(future, -np.inf, scores))
        self.q, self.k, self.v = q, k, v
        return self.p @ v
        # END

    def backward(self, g):
        # TODO exercise 8: CausalSelfAttention.backward
        dv = self.p.swapaxes(-1, -2) @ g
        ds = softmax_backward(self.p, g @ self.v.swapaxes(-1, -2))
        dq = ds @ self.k * self.scale
        dk = ds.swapaxes(-1, -2) @ self.q * self.scale
        return dq, dk, dv
        # END


def causal_self_attention(q, k, v):
    return CausalSelfAttention.apply(q, k, v)


# ---- mistakes: wrong answers the checks must catch
from course.runner import Mistake  # noqa: E402

MISTAKES = [
    Mistake("the diagonal masked too: a position cannot see itself", "dtype=bool), k=1)", "dtype=bool), k=0)",
            "see itself"),
    Mistake("the mask one off: one future position seen", "dtype=bool), k=1)", "dtype=bool), k=2)",
            "lets position"),
    Mistake("the mask the wrong way round: the past hidden, the future seen",
            "future = np.triu(np.ones((T, T), dtype=bool), k=1)", "future = np.tril(np.ones((T, T), dtype=bool), k=-1)",
            "lets position"),
    Mistake("no scale 1/sqrt(D)", "scores = (q @ k.swapaxes(-1, -2)) * self.scale", "scores = q @ k.swapaxes(-1, -2)",
            "1/sqrt(D)"),
    Mistake("dK without the transpose of dS", "dk = ds.swapaxes(-1, -2) @ self.q * self.scale",
            "dk = ds @ self.q * self.scale", "dSᵀ"),
    Mistake("dQ with a transposed dS", "dq = ds @ self.k * self.scale",
            "dq = ds.swapaxes(-1, -2) @ self.k * self.scale", "dQ"),
    Mistake("the scale left out of dQ and dK", "dq = ds @ self.k * self.scale", "dq = ds @ self.k", "scale"),
    Mistake("dV without the transpose of P", "dv = self.p.swapaxes(-1, -2) @ g", "dv = self.p @ g", "Pᵀ"),
]
