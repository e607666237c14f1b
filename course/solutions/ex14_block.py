"""Exercise 14 · A transformer block: residuals, pre-norms and an MLP

Goal: the unit that a GPT repeats. Attention lets positions exchange information; an MLP then thinks about what each
position gathered, on its own. Each sub-layer ADDS its result to the stream x (a residual connection), and reads a
normalised copy of it (pre-norm, as GPT-2 and later):

    x = x + attn(ln_1(x))                  (B, T, C): exercise 13's heads
    x = x + mlp(ln_2(x))                   mlp(h) = c_proj(gelu(c_fc(h))), C -> 4C -> C, GPT-2's tanh GELU

Why the residual: the gradient of x + f(x) is 1 + f'(x), so every block passes the gradient straight through to the
ones below, and a block whose sub-layers output 0 is the identity (a deep stack starts near "do nothing" and
learns what to add). Why before: the stream itself is never normalised (its scale can grow as blocks add to it);
each sub-layer sees a unit-scale copy. Normalising after the add, ln(x + f(x)) (the original paper's post-norm),
puts a norm on the residual path itself.

The norms are yours: `LayerNorm` below is a Module that holds nn.LayerNorm's weight and bias (the same names and
initial values: ones and zeros) and applies your LayerNorm from exercise 6; the attention is your exercise 13's,
on your exercise 8's op. You write `MLP.forward` and `Block.forward`. The model: embeddings, one block, a final
LayerNorm, a Linear layer to the logits. Trained by your AdamW (lr 3e-3) for 1,500 steps of 32 windows of 64
characters, width 64, 4 heads (one to two minutes), it reaches a validation loss of 1.80 (the check asks for
below 1.90); exercise 13's heads reached 2.07.
Check: python -m course check 14
"""
import tinygrad_proust as tp
from tinygrad_proust import functional as F  # noqa: F401  (F.gelu)
from tinygrad_proust import nn

from .ex06_layernorm import layer_norm  # your LayerNorm from exercise 6
from .ex10_bigram import get_batch, loss_of, train  # noqa: F401  (your loop from exercise 10 trains this model)
from .ex13_heads import MultiHeadAttention  # your heads from exercise 13


class LayerNorm(nn.Module):
    """nn.LayerNorm(n_embd)'s parameters (weight 1, bias 0, the same names), by your LayerNorm from exercise 6."""

    def __init__(self, n_embd, eps=1e-5):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(tp.ones(n_embd))
        self.bias = nn.Parameter(tp.zeros(n_embd))

    def forward(self, x):
        return layer_norm(x, self.weight, self.bias, eps=self.eps)


class MLP(nn.Module):
    """c_proj(gelu(c_fc(x))): (B, T, C) -> (B, T, 4C) -> (B, T, C)."""

    def __init__(self, n_embd):
        super().__init__()
        self.c_fc = nn.Linear(n_embd, 4 * n_embd)
        self.c_proj = nn.Linear(4 * n_embd, n_embd)

    def forward(self, x):
        # TODO exercise 14: MLP.forward
        return self.c_proj(F.gelu(self.c_fc(x), approximate="tanh"))
        # END


class Block(nn.Module):
    def __init__(self, n_embd, n_head):
        super().__init__()
        self.ln_1 = LayerNorm(n_embd)
        self.attn = MultiHeadAttention(n_embd, n_head)
        self.ln_2 = LayerNorm(n_embd)
        self.mlp = MLP(n_embd)

    def forward(self, x):
        """x (B, T, C) -> (B, T, C)."""
        # TODO exercise 14: Block.forward
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))
        # END


class BlockLM(nn.Module):
    def __init__(self, vocab_size, n_embd, block_size, n_head):
        super().__init__()
        self.wte = nn.Embedding(vocab_size, n_embd)
        self.wpe = nn.Embedding(block_size, n_embd)
        self.block = Block(n_embd, n_head)
        self.ln_f = LayerNorm(n_embd)
        self.lm_head = nn.Linear(n_embd, vocab_size)

    def forward(self, idx):
        """idx (B, T) -> logits (B, T, V)."""
        B, T = idx.shape
        x = self.wte(idx) + self.wpe(tp.arange(T))                     # (B, T, C)
        return self.lm_head(self.ln_f(self.block(x)))


# ---- mistakes: wrong answers the checks must catch
from course.runner import Mistake  # noqa: E402

MISTAKES = [
    Mistake("no residual around the attention", "x = x + self.attn(self.ln_1(x))", "x = self.attn(self.ln_1(x))",
            "residual"),
    Mistake("post-norm where pre-norm was asked",
            "        x = x + self.attn(self.ln_1(x))\n        return x + self.mlp(self.ln_2(x))\n",
            "        x = self.ln_1(x + self.attn(x))\n        return self.ln_2(x + self.mlp(x))\n", "after the add"),
    Mistake("the MLP reads the first norm", "return x + self.mlp(self.ln_2(x))", "return x + self.mlp(self.ln_1(x))",
            "ln_2"),
    Mistake("ReLU where GELU was asked", 'F.gelu(self.c_fc(x), approximate="tanh")', "F.relu(self.c_fc(x))",
            "gelu"),
]
