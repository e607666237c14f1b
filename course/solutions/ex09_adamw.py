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
        # TODO exercise 9: one AdamW step of p, in place
        lr, (beta1, beta2), eps, wd = group["lr"], group["betas"], group["eps"], group["weight_decay"]
        p.data -= lr * wd * p.data  # decoupled: the weight shrinks; the gradient is left alone
        if not state:
            state.update(step=0, exp_avg=np.zeros_like(p.data), exp_avg_sq=np.zeros_like(p.data))
        state["step"] += 1
        t = state["step"]
        state["exp_avg"] = m = beta1 * state["exp_avg"] + (1 - beta1) * grad
        state["exp_avg_sq"] = v = beta2 * state["exp_avg_sq"] + (1 - beta2) * grad * grad
        m_hat = m / (1 - beta1 ** t)
        v_hat = v / (1 - beta2 ** t)
        p.data -= lr * m_hat / (np.sqrt(v_hat) + eps)
        # END


# ---- mistakes: wrong answers the checks must catch
from course.runner import Mistake  # noqa: E402

MISTAKES = [
    Mistake("weight decay added to the gradient (Adam with L2)", "p.data -= lr * wd * p.data",
            "grad = grad + wd * p.data", "Adam with L2"),
    Mistake("no bias correction of m", "m_hat = m / (1 - beta1 ** t)", "m_hat = m", "the first steps are too small"),
    Mistake("no bias correction at all", "m_hat = m / (1 - beta1 ** t)\n        v_hat = v / (1 - beta2 ** t)",
            "m_hat, v_hat = m, v", "bias correction"),
    Mistake("eps inside the square root", "(np.sqrt(v_hat) + eps)", "np.sqrt(v_hat + eps)", "inside the square root"),
    Mistake("weight decay by the weight's shape (nanoGPT's rule), not by its group", "p.data -= lr * wd * p.data",
            "p.data -= lr * (wd if p.data.ndim >= 2 else 0.0) * p.data", "its group's weight_decay"),
    Mistake("the learning rate of the first group for every weight",
            'lr, (beta1, beta2), eps, wd = group["lr"]', 'lr, (beta1, beta2), eps, wd = self.param_groups[0]["lr"]',
            "own group"),
    Mistake("the moments not kept between steps",
            "state[\"exp_avg\"] = m = beta1 * state[\"exp_avg\"] + (1 - beta1) * grad",
            "m = beta1 * state[\"exp_avg\"] + (1 - beta1) * grad", "exp_avg"),
]
