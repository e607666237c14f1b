"""Exercise 9 · AdamW: Adam's step, with the weight decay kept out of the gradient

Goal: the optimizer that trains a GPT. For each parameter w with gradient g, at step t = 1, 2, 3, ...:

    m = β1 m + (1 - β1) g               a running mean of the gradient (the first moment), m = 0 at the start
    v = β2 v + (1 - β2) g²              a running mean of its square (the second moment), v = 0 at the start
    m̂ = m / (1 - β1ᵗ)                   bias correction: m and v start at 0, so early on they are too small;
    v̂ = v / (1 - β2ᵗ)                   at t = 1, m = (1 - β1) g and m̂ = g exactly
    w = w - lr · wd · w                 decoupled weight decay: shrink the weight itself
    w = w - lr · m̂ / (sqrt(v̂) + eps)    the step: about lr per coordinate, whatever the gradient's scale

Decoupled (Loshchilov & Hutter): Adam with L2 regularisation adds wd · w to the gradient, where it is then divided
by sqrt(v̂), so weights with large gradients are decayed less; AdamW applies the decay to the weight, the same for
every weight. eps guards the division and goes outside the square root.

The framework's optimizers (tinygrad_proust/optim/__init__.py) keep the bookkeeping: `Optimizer.step()` calls
`update(p, grad, state, group)` once per parameter that has a gradient, where p.data is the weight's array (change
it in place), grad the gradient's array, state a dict kept for this parameter between steps (empty at the first
step: keep m, v and t there, as "exp_avg", "exp_avg_sq" and "step", PyTorch's names) and group the
hyperparameters: group["lr"], group["betas"], group["eps"], group["weight_decay"].

Write AdamW.update. The checks run it against a float64 NumPy AdamW and PyTorch's where installed, and train a GPT
with it. Check: python -m course check 9
"""
import numpy as np  # noqa: F401  (for your code)

from tinygrad_proust.optim import Optimizer


class AdamW(Optimizer):
    """AdamW as torch.optim.AdamW: lr, betas (β1, β2), eps, weight_decay (decoupled)."""

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01):
        super().__init__(params, {"lr": lr, "betas": tuple(betas), "eps": eps, "weight_decay": weight_decay})

    def update(self, p, grad, state, group):
        raise NotImplementedError('exercise 9: one AdamW step of p, in place')
