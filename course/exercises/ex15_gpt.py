"""Exercise 15 · The GPT

Goal: the whole model: token and position embeddings, a stack of exercise 14's blocks, a final norm, and an output
head that reuses the token embedding matrix (tied weights, as GPT-2):

    x = wte[idx] + wpe[0 .. T-1]             (B, T, C) + (T, C)
    x = block_L( ... block_1(x))             n_layer blocks, each x + attn(ln_1(x)), x + mlp(ln_2(x))
    logits = ln_f(x) @ wteᵀ                  (B, T, C) @ (C, V) -> (B, T, V)

Why tie: wte maps a character to a vector and the head maps a vector to a score per character; sharing the matrix
makes "this vector means this character" one thing to learn, and saves V·C parameters. The gradient of wte then
has two parts, from the lookup and from the head, and backward adds them.

This is the project's own models.gpt.GPT for the config with the same design (learned positions, pre-norm
LayerNorm, GELU MLP of width 4C, biases, tied head, no dropout): its parameters have the same names, so the check
loads the same weights into both and asks for the same logits and the same gradients. Yours runs on your own
engine: your LayerNorm (exercise 6, in exercise 14's blocks and ln_f), attention (exercise 8, in exercise 13's
heads), and it trains on your CrossEntropy (exercise 5, in exercise 10's loss_of) with your AdamW (exercise 9);
the project's GPT runs on the framework's ops, so the two agree up to float32 rounding.

You write `GPT.forward(idx)`. Trained by your AdamW (lr 3e-3) for 1,500 steps of 32 windows of 64 characters, width
64, 4 heads, 2 layers (two to four minutes), it reaches a validation loss of 1.80 (the check asks for below
1.87); one block reached 1.80 in as many steps (a deeper model needs more steps to pull ahead).
Check: python -m course check 15
"""
import tinygrad_proust as tp  # noqa: F401  (tp.arange)
from tinygrad_proust import functional as F  # noqa: F401  (F.linear)
from tinygrad_proust import nn

from .ex10_bigram import get_batch, loss_of, train  # noqa: F401  (your loop from exercise 10 trains this model)
from .ex14_block import Block, LayerNorm  # your block and norm from exercise 14 (on your exercise 6)


class GPT(nn.Module):
    def __init__(self, vocab_size, block_size, n_layer, n_head, n_embd):
        super().__init__()
        self.block_size = block_size
        self.wte = nn.Embedding(vocab_size, n_embd)                    # also the output head (tied)
        self.wpe = nn.Embedding(block_size, n_embd)
        self.blocks = nn.ModuleList(Block(n_embd, n_head) for _ in range(n_layer))
        self.ln_f = LayerNorm(n_embd)

    def forward(self, idx):
        """idx (B, T) -> logits (B, T, V)."""
        raise NotImplementedError('exercise 15: GPT.forward')
