"""Exercise 12 · One head of self-attention

Goal: replace the plain mean of exercise 11 by a weighted one that the data decides. Each position t asks a
question (its query), every position j offers an answer to match (its key) and a content (its value):

    q = x Wqᵀ,  k = x Wkᵀ,  v = x Wvᵀ                      x (B, T, C) -> each (B, T, hs)
    scores[b, t, j] = q[b, t] · k[b, j] / sqrt(hs)         (B, T, T): q @ kᵀ, scaled
    scores[b, t, j] = -inf for j > t                       the causal mask: no position sees a later one
    weights = softmax(scores) over j (the last dim)        each row sums to 1, and is 0 after its diagonal
    out = weights @ v                                      (B, T, T) @ (B, T, hs) -> (B, T, hs)

Why divide by sqrt(hs): q · k adds hs products, so for unit-variance q and k its variance is hs; scaled, it is 1,
and the softmax does not saturate into a one-hot row at initialisation. Why -inf before the softmax: exp(-inf) = 0,
so the masked places get weight 0 and the others still sum to 1 (zeroing weights after the softmax would leave
rows that no longer sum to 1).

The softmax is yours: exercise 5's Softmax (a Function over the last dim, imported below), called as
Softmax.apply(scores). You write `Head.forward(x)`. The model around it is exercise 11's with the head where the
mean was: features [x, head(x)] side by side, then a Linear layer to the logits. Trained by your AdamW (lr 3e-3)
for 1,500 steps of 32 windows of 64 characters, width 64 (one to two minutes), it reaches a validation loss of
2.18 (the check asks for below 2.25); the mean of exercise 11 reached 2.38.
Check: python -m course check 12
"""
import math  # noqa: F401  (for your code: math.sqrt, math.inf)

import numpy as np  # noqa: F401  (np.triu)

import tinygrad_proust as tp
from tinygrad_proust import nn

from .ex05_softmax import Softmax  # noqa: F401  (your softmax from exercise 5, over the last dim: Softmax.apply(x))
from .ex10_bigram import get_batch, loss_of, train  # noqa: F401  (your loop from exercise 10 trains this model)


class Head(nn.Module):
    """One head of causal self-attention: (B, T, C) -> (B, T, head_size)."""

    def __init__(self, n_embd, head_size):
        super().__init__()
        self.head_size = head_size
        self.query = nn.Linear(n_embd, head_size, bias=False)
        self.key = nn.Linear(n_embd, head_size, bias=False)
        self.value = nn.Linear(n_embd, head_size, bias=False)

    def forward(self, x):
        # TODO exercise 12: Head.forward
        B, T, C = x.shape
        q, k, v = self.query(x), self.key(x), self.value(x)             # (B, T, hs) each
        scores = q @ k.transpose(-2, -1) / math.sqrt(self.head_size)    # (B, T, T)
        future = np.triu(np.ones((T, T), dtype=bool), k=1)              # True above the diagonal: j > t
        scores = scores.masked_fill(future, -math.inf)
        weights = Softmax.apply(scores)                                 # over the keys j (the last dim)
        return weights @ v                                              # (B, T, hs)
        # END


class OneHeadLM(nn.Module):
    def __init__(self, vocab_size, n_embd, block_size):
        super().__init__()
        self.wte = nn.Embedding(vocab_size, n_embd)
        self.wpe = nn.Embedding(block_size, n_embd)
        self.head = Head(n_embd, n_embd)
        self.lm_head = nn.Linear(2 * n_embd, vocab_size)

    def forward(self, idx):
        """idx (B, T) -> logits (B, T, V)."""
        B, T = idx.shape
        x = self.wte(idx) + self.wpe(tp.arange(T))                     # (B, T, C)
        return self.lm_head(tp.cat([x, self.head(x)], dim=-1))        # features (B, T, 2C) -> (B, T, V)


# ---- mistakes: wrong answers the checks must catch
from course.runner import Mistake  # noqa: E402

MISTAKES = [
    Mistake("no causal mask", "        scores = scores.masked_fill(future, -math.inf)\n", "", "see position 5"),
    Mistake("the mask off by one (k=2: each position sees the next)", "k=1)", "k=2)", "position 4 see position 5"),
    Mistake("the scores not scaled", "q @ k.transpose(-2, -1) / math.sqrt(self.head_size)",
            "q @ k.transpose(-2, -1)", "sqrt(head_size)"),
    Mistake("softmax over the queries, not the keys", "weights = Softmax.apply(scores)",
            "weights = Softmax.apply(scores.transpose(-2, -1)).transpose(-2, -1)", "the last dim"),
    Mistake("the mask applied after the softmax (zeros, rows no longer sum to 1)",
            "        scores = scores.masked_fill(future, -math.inf)\n        weights = Softmax.apply(scores)",
            "        weights = Softmax.apply(scores).masked_fill(future, 0.0)", "before the softmax"),
]
