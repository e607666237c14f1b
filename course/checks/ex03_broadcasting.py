"""Checks of exercise 3: unbroadcast on cases worked by hand, Add and Mul against finite differences, and the
engine running with the learner's unbroadcast in place of its own."""
import importlib

import numpy as np

import tinygrad_proust as tp
from course.diagnose import compare, gradients_against_finite_differences
from course.plugin import swapped
from course.runner import Wrong

TITLE = "Broadcasting, undone (unbroadcast, Add, Mul on arrays)"
MINUTES = 30
NEEDS = [2]

# (grad's shape, the input's shape, the sum that undoes the broadcast, worked out by hand)
CASES = [((3, 4), (4,), lambda g: g.sum(axis=0)),
         ((3, 4), (3, 1), lambda g: g.sum(axis=1, keepdims=True)),
         ((2, 3, 4), (1, 3, 1), lambda g: g.sum(axis=(0, 2), keepdims=True)),
         ((2, 3, 4), (3, 1), lambda g: g.sum(axis=0).sum(axis=1, keepdims=True)),
         ((2, 3), (), lambda g: g.sum()),
         ((), (), lambda g: g),
         ((3, 4), (3, 4), lambda g: g),
         ((5, 1, 4), (1, 4), lambda g: g.sum(axis=0))]


def explain_shape(call, got_shape, grad_shape, shape):
    """What a wrong result shape of unbroadcast says about the code, in words."""
    extra = len(grad_shape) - len(shape)
    ones = [i for i, n in enumerate(shape) if n == 1 and grad_shape[extra + i] != 1]
    if got_shape == grad_shape and extra > 0:
        return (f"{call} has shape {got_shape}, the broadcast shape: sum the gradient back to {shape}, over the "
                f"{extra} leading ax{'is' if extra == 1 else 'es'} broadcasting added")
    if got_shape == grad_shape or (extra > 0 and got_shape == grad_shape[extra:]):
        return (f"{call} has shape {got_shape}: the leading axes are not all there is; also sum over the axes where "
                f"{shape} has size 1 (axis {', '.join(map(str, ones))}), keeping them (keepdims=True)")
    if int(np.prod(got_shape)) == int(np.prod(shape)) and [n for n in got_shape if n != 1] == \
            [n for n in shape if n != 1]:
        return (f"{call} has shape {got_shape}, it should have shape {shape}: keep each summed axis of size 1 "
                "(sum(..., keepdims=True)), so the gradient has its input's shape")
    return None


def check_unbroadcast(ex):
    """unbroadcast on cases worked out by hand: (3, 4) -> (4,), (3, 4) -> (3, 1), (2, 3, 4) -> (1, 3, 1), ..."""
    for grad_shape, shape, by_hand in CASES:
        grad = np.arange(1.0, 1.0 + int(np.prod(grad_shape))).reshape(grad_shape)  # every entry different
        call = f"unbroadcast(grad of shape {grad_shape}, {shape})"
        got = ex.unbroadcast(grad.copy(), shape)
        if got is None:
            raise Wrong(f"{call} returned None: return the summed gradient")
        if np.shape(got) != shape:
            raise Wrong(explain_shape(call, np.shape(got), grad_shape, shape)
                        or f"{call} has shape {np.shape(got)}, it should have shape {shape}")
        compare(call, got, by_hand(grad))


def check_add_mul(ex):
    """Add and Mul: forward, and backward against finite differences (same shapes, then broadcast)"""
    rng = np.random.default_rng(3)
    x, y = rng.standard_normal((3, 4)), rng.standard_normal((3, 4))
    compare("Add.apply(x, y)", ex.Add.apply(*map(tp.Tensor, (x, y))), x + y)
    compare("Mul.apply(x, y)", ex.Mul.apply(*map(tp.Tensor, (x, y))), x * y)
    g = rng.standard_normal((3, 4))
    out = ex.Mul.apply(tp.Tensor(x, requires_grad=True), tp.Tensor(y, requires_grad=True))
    gx, gy = out._ctx.backward(g)
    if np.allclose(gx, g * x) and np.allclose(gy, g * y):
        raise Wrong("Mul.backward gives x the gradient g * x and y the gradient g * y: swapped; d(x*y)/dx = y, so "
                    "dL/dx = g * y, and dL/dy = g * x")
    if np.allclose(gx, y) or np.allclose(gy, x):
        raise Wrong("Mul.backward returns y as x's gradient, without g: by the chain rule dL/dx = g * dout/dx = g * y")
    for op in (ex.Add, ex.Mul):
        for shapes in (((3, 4), (3, 4)), ((3, 4), (4,)), ((3, 1), (1, 4))):
            inputs = [rng.standard_normal(s) for s in shapes]
            try:
                gradients_against_finite_differences(lambda a, b: op.apply(a, b), inputs, ["x", "y"])
            except Wrong as wrong:
                raise Wrong(f"{op.__name__} with x of shape {shapes[0]}, y of shape {shapes[1]}: {wrong}") from None


def check_engine_with_your_unbroadcast(ex):
    """the engine, running your unbroadcast, gets a broadcasting computation's gradients right"""
    engine = importlib.import_module("tinygrad_proust.tensor")
    rng = np.random.default_rng(4)
    inputs = [rng.standard_normal(s) for s in ((2, 3, 4), (4,), (3, 1), (1, 3, 1))]

    def f(x, s, b, c):  # ((x * s + b) * x) * c: every input broadcast a different way
        return ex.mul(ex.mul(ex.add(ex.mul(x, s), b), x), c)

    with swapped(engine, "unbroadcast", ex.unbroadcast):
        try:
            gradients_against_finite_differences(f, inputs, ["x (2, 3, 4)", "s (4,)", "b (3, 1)", "c (1, 3, 1)"])
        except Wrong as wrong:
            raise Wrong(f"with your unbroadcast in the engine, for ((x * s + b) * x) * c: {wrong}") from None
        except AssertionError as error:  # the engine's own shape check (_fit_to)
            raise Wrong("with your unbroadcast in the engine, for ((x * s + b) * x) * c, a gradient did not come "
                        f"back to its input's shape ({error})") from None

