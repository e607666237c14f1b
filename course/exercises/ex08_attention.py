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
        raise NotImplementedError('exercise 8: CausalSelfAttention.forward')

    def backward(self, g):
        raise NotImplementedError('exercise 8: CausalSelfAttention.backward')


def causal_self_attention(q, k, v):
    return CausalSelfAttention.apply(q, k, v)
