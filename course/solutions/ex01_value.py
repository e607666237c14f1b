"""Exercise 1 · A number that knows its gradient

Goal: a `Value` holds one number and remembers how it was made (its `_prev` inputs and its `_op`). Each operation
returns a new Value and gives it a `_backward` function that, when the output's gradient `out.grad` (dL/d out) is
known, adds each input's share by the chain rule, dL/d input = dL/d out · d out/d input:

    out = a + b        a.grad += out.grad                 b.grad += out.grad
    out = a * b        a.grad += b.data * out.grad        b.grad += a.data * out.grad
    out = tanh(a)      a.grad += (1 - out.data**2) * out.grad          (d tanh x / dx = 1 - tanh² x)
    out = exp(a)       a.grad += out.data * out.grad                   (d eˣ / dx = eˣ)

Add (+=), never assign: a Value used twice, as in a * a, gets gradient from both uses.
Write the four `_backward` functions; the forward values and the other operations are given.
Check: python -m course check 1
"""
import math


class Value:
    def __init__(self, data, _prev=(), _op=""):
        self.data = float(data)
        self.grad = 0.0
        self._backward = lambda: None  # a leaf passes nothing on
        self._prev = tuple(_prev)
        self._op = _op

    def __add__(self, other):
        other = other if isinstance(other, Value) else Value(other)
        out = Value(self.data + other.data, (self, other), "+")

        def _backward():
            # TODO exercise 1: the gradient of a + b
            self.grad += out.grad
            other.grad += out.grad
            # END
        out._backward = _backward
        return out

    def __mul__(self, other):
        other = other if isinstance(other, Value) else Value(other)
        out = Value(self.data * other.data, (self, other), "*")

        def _backward():
            # TODO exercise 1: the gradient of a * b
            self.grad += other.data * out.grad
            other.grad += self.data * out.grad
            # END
        out._backward = _backward
        return out

    def tanh(self):
        out = Value(math.tanh(self.data), (self,), "tanh")

        def _backward():
            # TODO exercise 1: the gradient of tanh(a)
            self.grad += (1 - out.data ** 2) * out.grad
            # END
        out._backward = _backward
        return out

    def exp(self):
        out = Value(math.exp(self.data), (self,), "exp")

        def _backward():
            # TODO exercise 1: the gradient of exp(a)
            self.grad += out.data * out.grad
            # END
        out._backward = _backward
        return out

    # the rest is made of the four above
    def __neg__(self):
        return self * -1

    def __sub__(self, other):
        return self + (-other)

    def __radd__(self, other):
        return self + other

    def __rmul__(self, other):
        return self * other

    def __rsub__(self, other):
        return (-self) + other

    def __repr__(self):
        return f"Value(data={self.data:.6g}, grad={self.grad:.6g})"


# ---- mistakes: wrong answers the checks must catch
from course.runner import Mistake  # noqa: E402

MISTAKES = [
    Mistake("a * b passes b's gradient to b (the inputs swapped)",
            "self.grad += other.data * out.grad", "self.grad += self.data * out.grad", "a * b"),
    Mistake("the gradient is assigned, not added",
            "self.grad += (1 - out.data ** 2) * out.grad", "self.grad = (1 - out.data ** 2) * out.grad",
            "added (+=), not assigned"),
    Mistake("tanh's derivative without the square", "(1 - out.data ** 2)", "(1 - out.data)", "tanh"),
    Mistake("the chain rule forgotten in exp", "self.grad += out.data * out.grad", "self.grad += out.data",
            "exp"),
]
