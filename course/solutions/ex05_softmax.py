"""Exercise 5 · Softmax and cross-entropy, stable and exact

Goal: the model's last step. Softmax turns a row of scores x (logits) into probabilities, over the last axis:

    y_i = exp(x_i) / Σ_j exp(x_j)

Stable: exp(1000) overflows to inf, and inf / inf is NaN. Subtracting the row's maximum m first changes nothing
(exp(x_i - m) / Σ_j exp(x_j - m): the factor exp(-m) cancels) and keeps every exp at most 1.

Backward. Every y_i depends on every x_k, through the sum:

    dy_i/dx_k = y_i (δ_ik - y_k)          (δ_ik = 1 when i = k, else 0)
    dL/dx_k = Σ_i g_i y_i (δ_ik - y_k) = y_k (g_k - Σ_i g_i y_i)

so the backward is y * (g - Σ_i g_i y_i), the sum over the last axis kept (keepdims). The diagonal alone,
y_k (1 - y_k) g_k, leaves out the off-diagonal terms: it is the derivative of each y_k by its own x_k only.

Cross-entropy of N rows of logits (N, C) with targets t (N,) (one class index per row), the mean over the rows:

    loss = -(1/N) Σ_n log softmax(x_n)[t_n],      log softmax(x)_i = x_i - m - log Σ_j exp(x_j - m)

Backward: d(-log softmax(x)[t]) / dx_k = softmax(x)_k - [k = t], so with g = dL/d loss (a number)

    dL/dx_n = g (softmax(x_n) - onehot(t_n)) / N          the 1/N of the mean is there too

Write softmax and softmax_backward (on arrays: exercise 8 uses them again), and CrossEntropy's forward and
backward. The last check trains a GPT with your CrossEntropy as its loss. Check: python -m course check 5
"""
import numpy as np  # noqa: F401  (for your code)

import tinygrad_proust as tp


def softmax(x):
    """exp(x) / Σ exp(x) over the last axis of an array, computed without overflow."""
    # TODO exercise 5: softmax of an array, over its last axis
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)
    # END


def softmax_backward(y, g):
    """dL/dx for y = softmax(x) over the last axis, given y and g = dL/dy."""
    # TODO exercise 5: softmax's backward, from y and g
    return y * (g - (g * y).sum(axis=-1, keepdims=True))
    # END


class Softmax(tp.Function):
    """softmax over the last dim."""

    def forward(self, x):
        self.y = softmax(x)
        return self.y

    def backward(self, g):
        return softmax_backward(self.y, g)


class CrossEntropy(tp.Function):
    """The mean over N rows of -log softmax(logits)[target]: logits (N, C), target (N,) class indices.
    Called as CrossEntropy.apply(logits, target=target): the targets are an option, not an input (no gradient)."""

    def forward(self, logits, target):
        # TODO exercise 5: CrossEntropy.forward
        shifted = logits - logits.max(axis=1, keepdims=True)
        log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
        self.probs, self.target = np.exp(log_probs), target
        rows = np.arange(logits.shape[0])
        return -log_probs[rows, target].mean()
        # END

    def backward(self, g):
        # TODO exercise 5: CrossEntropy.backward
        N = self.probs.shape[0]
        grad = self.probs.copy()
        grad[np.arange(N), self.target] -= 1
        return grad * (g / N)
        # END


def cross_entropy(logits, target):
    return CrossEntropy.apply(logits, target=target)


# ---- mistakes: wrong answers the checks must catch
from course.runner import Mistake  # noqa: E402

MISTAKES = [
    Mistake("softmax without subtracting the maximum", "e = np.exp(x - x.max(axis=-1, keepdims=True))",
            "e = np.exp(x)", "subtract the maximum"),
    Mistake("softmax subtracting each row's minimum", "e = np.exp(x - x.max(axis=-1, keepdims=True))",
            "e = np.exp(x - x.min(axis=-1, keepdims=True))", "subtract the maximum"),
    Mistake("softmax subtracting each row's mean", "e = np.exp(x - x.max(axis=-1, keepdims=True))",
            "e = np.exp(x - x.mean(axis=-1, keepdims=True))", "subtract the maximum"),
    Mistake("cross-entropy subtracting each row's minimum", "shifted = logits - logits.max(axis=1, keepdims=True)",
            "shifted = logits - logits.min(axis=1, keepdims=True)", "subtract each row's maximum"),
    Mistake("cross-entropy as the log of the softmax (log 0 = -inf)",
            "log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))",
            "log_probs = np.log(np.exp(shifted) / np.exp(shifted).sum(axis=1, keepdims=True))", "log of the softmax"),
    Mistake("cross-entropy without subtracting the maximum", "shifted = logits - logits.max(axis=1, keepdims=True)",
            "shifted = logits", "subtract the maximum"),
    Mistake("softmax's backward as its Jacobian's diagonal only",
            "return y * (g - (g * y).sum(axis=-1, keepdims=True))", "return y * (1 - y) * g", "diagonal"),
    Mistake("the cross-entropy gradient not divided by N", "return grad * (g / N)", "return grad * g",
            "off by a factor of N"),
    Mistake("the one-hot left out", "        grad[np.arange(N), self.target] -= 1\n", "", "one-hot"),
    Mistake("the one-hot at the wrong class", "grad[np.arange(N), self.target] -= 1",
            "grad[np.arange(N), self.target - 1] -= 1", "one-hot"),
    Mistake("the loss summed over rows, not averaged", "return -log_probs[rows, target].mean()",
            "return -log_probs[rows, target].sum()", "mean"),
]
