"""Exercise 3 · Broadcasting, undone: summing a gradient back to its input's shape

Goal: from numbers to arrays. In tinygrad_proust an op is a `tinygrad_proust.Function` subclass with two methods
side by side, both on NumPy arrays:

    forward(self, x, y)   computes the output, and keeps on self what backward will need
    backward(self, g)     g = dL/d out, an array of the output's shape; returns dL/dx, dL/dy, one per input

`Add.apply(a, b)` (given by Function) runs forward on the tensors' arrays and records the op, so that
`loss.backward()` calls your backward at the right moment, as in exercise 2.

Broadcasting. x of shape (3, 4) plus b of shape (4,) works as if b were copied into each of the 3 rows:
out[i, j] = x[i, j] + b[j]. Each b[j] is used 3 times, so its gradient adds the 3 uses (as a Value used twice
did in exercise 1):

    dL/db[j] = Σ_i g[i, j]                       a sum over the axis that broadcasting added

The same holds for an axis where the input had size 1: b of shape (3, 1) is copied along the 4 columns,
dL/db[i, 0] = Σ_j g[i, j], and the sum keeps the axis, so the result has b's shape (3, 1), not (3,).
Broadcasting lines shapes up from the right; so `unbroadcast(grad, shape)`:
  1. sums over the leading axes that grad has and shape has not (grad.ndim - len(shape) of them),
  2. then sums over every axis where shape has 1 and grad has more, with keepdims=True.
     (2, 3, 4) -> (1, 3, 1): axes 0 and 2.      (3, 4) -> (): every axis.      (3, 4) -> (3, 4): nothing.

Then the two ops. Their backwards return gradients at the broadcast shape (the output's); the engine
(`_fit_to` in tinygrad_proust/tensor.py) calls unbroadcast to bring each to its input's shape, in that one place:

    Add: out = x + y        dL/dx = g          dL/dy = g
    Mul: out = x * y        dL/dx = g * y      dL/dy = g * x          (Mul's forward keeps x and y for this)

Write unbroadcast, Add.backward, Mul.forward and Mul.backward. The checks also run the engine with your
unbroadcast in place of its own. Check: python -m course check 3
"""
import tinygrad_proust as tp


def unbroadcast(grad, shape):
    """Sum grad (the broadcast shape) down to `shape`: over added leading axes, and over axes where shape has 1."""
    # TODO exercise 3: unbroadcast
    extra = grad.ndim - len(shape)
    if extra > 0:
        grad = grad.sum(axis=tuple(range(extra)))
    axes = tuple(i for i, n in enumerate(shape) if n == 1 and grad.shape[i] != 1)
    if axes:
        grad = grad.sum(axis=axes, keepdims=True)
    return grad
    # END


class Add(tp.Function):
    """out = x + y, broadcasting."""

    def forward(self, x, y):
        return x + y

    def backward(self, g):
        # TODO exercise 3: Add.backward
        return g, g
        # END


class Mul(tp.Function):
    """out = x * y, broadcasting."""

    def forward(self, x, y):
        # TODO exercise 3: Mul.forward
        self.x, self.y = x, y
        return x * y
        # END

    def backward(self, g):
        # TODO exercise 3: Mul.backward
        return g * self.y, g * self.x
        # END


def add(x, y):
    return Add.apply(x, y)


def mul(x, y):
    return Mul.apply(x, y)


# ---- mistakes: wrong answers the checks must catch
from course.runner import Mistake  # noqa: E402

MISTAKES = [
    Mistake("the size-1 axes summed without keepdims", "grad = grad.sum(axis=axes, keepdims=True)",
            "grad = grad.sum(axis=axes)", "keepdims"),
    Mistake("only the leading axes summed",
            "    if axes:\n        grad = grad.sum(axis=axes, keepdims=True)\n", "", "size 1"),
    Mistake("nothing summed: the gradient left at the broadcast shape", "    extra = grad.ndim - len(shape)\n",
            "    return grad\n", "the broadcast shape: sum the gradient back"),
    Mistake("Mul's two gradients swapped", "return g * self.y, g * self.x", "return g * self.x, g * self.y",
            "dL/dx = g * y"),
    Mistake("Mul's backward without the chain rule's g", "return g * self.y, g * self.x", "return self.y, self.x",
            "chain rule"),
]
