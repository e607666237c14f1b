"""Exercise 11 · Averaging the past

Goal: let each position see the characters before it. The simplest way: the features at position t are the mean of
the embeddings at positions 0 .. t, and never of a later one (when the model predicts character t + 1, the
characters after t are what it must guess: a position that sees the future learns to copy it).

As a matrix product: a (T, T) weight matrix whose row t is 1/(t+1) on columns 0 .. t and 0 after,

    W = [[1,   0,   0 ],
         [1/2, 1/2, 0 ],          out = W @ x:  (T, T) @ (B, T, C) -> (B, T, C),
         [1/3, 1/3, 1/3]]         out[b, t] = Σ_j W[t, j] x[b, j] = (x[b, 0] + ... + x[b, t]) / (t + 1)

Build W from a lower-triangular matrix of ones (Tensor.tril keeps the diagonal and below) divided by its row sums.
The model: x = token embedding + position embedding (B, T, C); the features are [x, causal_average(x)] side by
side (the character itself and the mean of its past, (B, T, 2C)); a Linear layer turns them into logits (B, T, V).

You write `causal_average(x)` and `AveragingLM.forward(idx)`. Your training loop from exercise 10 trains it.
Trained by your AdamW (lr 3e-3) for 1,500 steps of 32 windows of 64 characters, width 64 (about 30 seconds), the
model reaches a validation loss of 2.38 (the check asks for below 2.42; the bigram model reached 2.41).
Check: python -m course check 11
"""
import tinygrad_proust as tp  # noqa: F401  (tp.ones, tp.cat, tp.arange)
from tinygrad_proust import nn

from .ex10_bigram import get_batch, loss_of, train  # noqa: F401  (your loop from exercise 10 trains this model)


def causal_average(x):
    """x (B, T, C) -> (B, T, C): out[:, t] is the mean of x[:, 0], ..., x[:, t]."""
    raise NotImplementedError('exercise 11: causal_average')


class AveragingLM(nn.Module):
    def __init__(self, vocab_size, n_embd, block_size):
        super().__init__()
        self.wte = nn.Embedding(vocab_size, n_embd)           # token embeddings
        self.wpe = nn.Embedding(block_size, n_embd)           # position embeddings
        self.lm_head = nn.Linear(2 * n_embd, vocab_size)

    def forward(self, idx):
        """idx (B, T) -> logits (B, T, V)."""
        raise NotImplementedError('exercise 11: AveragingLM.forward')
