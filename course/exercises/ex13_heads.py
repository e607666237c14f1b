"""Exercise 13 · Several heads

Goal: nh heads side by side, each of size hs = C / nh, each free to look for something different (the vowel
before, the start of the word, ...), computed all at once: one Linear layer gives the queries, keys and values of
every head, the heads become a dimension of their own, and a last Linear layer mixes what the heads found.

    q, k, v = c_attn(x).split(C, dim=2)                 x (B, T, C) -> 3 × (B, T, C)
    q.view(B, T, nh, hs).transpose(1, 2)                (B, nh, T, hs): head h holds channels h·hs .. (h+1)·hs - 1
    y = CausalSelfAttention.apply(q, k, v)              (B, nh, T, hs): exercise 12's head, for every head at once
    y.transpose(1, 2).reshape(B, T, C)                  the heads side by side again
    out = c_proj(y)                                     (B, T, C)

The transposes matter: q.view(B, nh, T, hs) has the right shape but cuts the (T, C) block in the wrong places, so a
"head" would hold pieces of several positions. Your CausalSelfAttention from exercise 8 (imported below) does
exercise 12's computation (scale, causal mask, softmax, weighted values) over every head in one call, on arrays
of shape (B, nh, T, hs).

You write `MultiHeadAttention.forward(x)`. The model is exercise 12's with these heads in place of the one head.
Trained by your AdamW (lr 3e-3) for 1,500 steps of 32 windows of 64 characters, width 64, 4 heads (one to two
minutes), it reaches a validation loss of 2.07 (the check asks for below 2.16); one head reached 2.18.
Check: python -m course check 13
"""
import tinygrad_proust as tp
from tinygrad_proust import functional as F  # noqa: F401  (the framework's own ops)
from tinygrad_proust import nn

from .ex08_attention import CausalSelfAttention  # noqa: F401  (your exercise 8: CausalSelfAttention.apply(q, k, v))
from .ex10_bigram import get_batch, loss_of, train  # noqa: F401  (your loop from exercise 10 trains this model)


class MultiHeadAttention(nn.Module):
    """n_head heads of causal self-attention, concatenated and projected: (B, T, C) -> (B, T, C)."""

    def __init__(self, n_embd, n_head):
        super().__init__()
        self.n_head = n_head
        self.c_attn = nn.Linear(n_embd, 3 * n_embd)    # the queries, keys and values of every head, in one
        self.c_proj = nn.Linear(n_embd, n_embd)

    def forward(self, x):
        raise NotImplementedError('exercise 13: MultiHeadAttention.forward')


class MultiHeadLM(nn.Module):
    def __init__(self, vocab_size, n_embd, block_size, n_head):
        super().__init__()
        self.wte = nn.Embedding(vocab_size, n_embd)
        self.wpe = nn.Embedding(block_size, n_embd)
        self.attn = MultiHeadAttention(n_embd, n_head)
        self.lm_head = nn.Linear(2 * n_embd, vocab_size)

    def forward(self, idx):
        """idx (B, T) -> logits (B, T, V)."""
        B, T = idx.shape
        x = self.wte(idx) + self.wpe(tp.arange(T))                     # (B, T, C)
        return self.lm_head(tp.cat([x, self.attn(x)], dim=-1))        # (B, T, 2C) -> (B, T, V)
