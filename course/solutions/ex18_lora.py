"""Exercise 18 · LoRA: fine-tuning a trained GPT through a low-rank update

Goal: adapt a trained model to a new text by training few numbers. A LoRA layer keeps a Linear layer's weight W
(out, in) frozen and learns a low-rank change to it, r (in + out) numbers instead of in · out:

    y = W x + b + (alpha / r) · B A x          A: (r, in) small random (randn / sqrt(in)),  B: (out, r) zeros
    dy/dA, dy/dB flow; W and b get no gradient (requires_grad = False) and never change

Why B = 0: at the start B A = 0, so the model is exactly the trained one, and training moves it from there (A
random, so that B's gradient, (alpha/r) dy (A x)ᵀ, is not zero). Why alpha / r: the update's scale stays the same
when r changes, so a learning rate found for one rank works for another. Merging: W' = W + (alpha / r) B A is an
ordinary Linear layer with the same outputs and no extra cost.

You write `LoRALinear` (its parameters, forward and merged) and `add_lora` (freeze every parameter of the model,
then wrap each block's attention projections, attn.c_attn and attn.c_proj, in a LoRALinear). The check trains your
GPT on the Sonnets, then fine-tunes only the adapters on a new text: the last sonnets in lower case (no capitals: a
small change of style the trained model does not expect), both times with your loop and AdamW (exercises 10 and
9). There the new text's loss drops from 2.45 to 2.27.
Check: python -m course check 18
"""
import math  # noqa: F401  (math.sqrt)

import tinygrad_proust as tp  # noqa: F401  (tp.randn, tp.zeros)
from tinygrad_proust import nn

from .ex15_gpt import GPT  # noqa: F401  (your GPT from exercise 15)


class LoRALinear(nn.Module):
    """base(x) + (alpha / r) x Aᵀ Bᵀ, with base (an nn.Linear) frozen."""

    def __init__(self, base, r, alpha):
        super().__init__()
        self.base, self.r, self.alpha = base, r, alpha
        # TODO exercise 18: the frozen base, A and B
        for p in base.parameters():
            p.requires_grad = False
        self.scale = alpha / r
        self.A = nn.Parameter(tp.randn(r, base.in_features) * (1 / math.sqrt(base.in_features)))
        self.B = nn.Parameter(tp.zeros(base.out_features, r))
        # END

    def forward(self, x):
        # TODO exercise 18: LoRALinear.forward
        return self.base(x) + (x @ self.A.transpose(0, 1) @ self.B.transpose(0, 1)) * self.scale
        # END

    def merged(self):
        """An nn.Linear with weight W + (alpha / r) B A and the base's bias: the same outputs."""
        linear = nn.Linear(self.base.in_features, self.base.out_features, bias=self.base.bias is not None)
        # TODO exercise 18: merged
        linear.weight.data = self.base.weight.data + self.scale * (self.B.data @ self.A.data)
        if self.base.bias is not None:
            linear.bias.data = self.base.bias.data.copy()
        # END
        return linear


def add_lora(model, r, alpha):
    """Freeze model, then put a LoRALinear around every block's attn.c_attn and attn.c_proj; returns model."""
    # TODO exercise 18: add_lora
    for p in model.parameters():
        p.requires_grad = False
    for block in model.blocks:
        block.attn.c_attn = LoRALinear(block.attn.c_attn, r, alpha)
        block.attn.c_proj = LoRALinear(block.attn.c_proj, r, alpha)
    return model
    # END


# ---- mistakes: wrong answers the checks must catch
from course.runner import Mistake  # noqa: E402

MISTAKES = [
    Mistake("B initialised randomly", "self.B = nn.Parameter(tp.zeros(base.out_features, r))",
            "self.B = nn.Parameter(tp.randn(base.out_features, r) * 0.02)", "B starts at zero"),
    Mistake("A drawn by randn without the 1/sqrt(in)",
            "tp.randn(r, base.in_features) * (1 / math.sqrt(base.in_features))", "tp.randn(r, base.in_features)",
            "randn / sqrt(in)"),
    Mistake("A drawn at a fixed small scale", "tp.randn(r, base.in_features) * (1 / math.sqrt(base.in_features))",
            "tp.randn(r, base.in_features) * 0.01", "randn / sqrt(in)"),
    Mistake("adapters in the first block only", "    for block in model.blocks:\n        block.attn.c_attn",
            "    for block in list(model.blocks)[:1]:\n        block.attn.c_attn", "in every block"),
    Mistake("the scale alpha / r missing", "@ self.B.transpose(0, 1)) * self.scale", "@ self.B.transpose(0, 1))",
            "alpha / r"),
    Mistake("the scale by integer division, alpha // r", "self.scale = alpha / r", "self.scale = alpha // r",
            "alpha // r"),
    Mistake("the base weights not frozen", "        for p in base.parameters():\n            p.requires_grad = False\n",
            "", "frozen"),
    Mistake("the merged weight without the scale", "self.base.weight.data + self.scale * (self.B.data @ self.A.data)",
            "self.base.weight.data + self.B.data @ self.A.data", "merged"),
]
