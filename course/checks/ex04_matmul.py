"""Checks of exercise 4: Matmul's forward against einsum, its backward against the hand-derived formulas and finite
differences (square, non-square, batched, broadcast batches), and a GPT trained with it in the framework."""
import numpy as np

import tinygrad_proust as tp
from course.diagnose import compare, gradients_against_finite_differences
from course.plugin import plain_sgd, trains_as_the_framework
from course.runner import Wrong, quick
from tinygrad_proust import ops

TITLE = "The matrix product (Matmul, batched)"
MINUTES = 30
NEEDS = [3]

BATCH_HINT = " (in a batched array transpose the last two axes only: a.swapaxes(-1, -2); a.T reverses all of them)"


def backward_of(ex, x, y, g):
    """The learner's (dx, dy) for out = x @ y and dL/d out = g, straight from their backward."""
    out = ex.Matmul.apply(tp.Tensor(x, requires_grad=True), tp.Tensor(y, requires_grad=True))
    try:
        return out._ctx.backward(g)
    except ValueError:
        raise Wrong(f"Matmul.backward for x {x.shape} @ y {y.shape} (so g {g.shape}) multiplies arrays whose shapes "
                    f"do not fit a matrix product; dx must have x's shape {x.shape} and dy y's shape {y.shape}: "
                    "which operand needs a transpose, and which comes first?"
                    + (BATCH_HINT if x.ndim > 2 or y.ndim > 2 else "")) from None


def check_forward(ex):
    """forward: 2-D, batched, and with broadcast batch dims, against einsum"""
    rng = np.random.default_rng(0)
    for xs, ys in (((3, 4), (4, 5)), ((2, 3, 4), (2, 4, 5)), ((2, 3, 4), (4, 5)), ((2, 1, 3, 4), (3, 4, 2))):
        x, y = rng.standard_normal(xs), rng.standard_normal(ys)
        compare(f"Matmul.apply(x {xs}, y {ys})", ex.Matmul.apply(tp.Tensor(x), tp.Tensor(y)),
                np.einsum("...ik,...kj->...ij", x, y))


def check_backward_square(ex):
    """backward of square matrices: dx = g @ yᵀ and dy = xᵀ @ g, not another order or transpose"""
    rng = np.random.default_rng(1)
    x, y, g = (rng.standard_normal((4, 4)) for _ in range(3))
    dx, dy = backward_of(ex, x, y, g)
    wrong_dx = {"g @ y: y needs a transpose, dx = g @ yᵀ": g @ y,
                "yᵀ @ g: the operands swapped, dx = g @ yᵀ (g first: dx[i, p] = Σ_j g[i, j] y[p, j])": y.T @ g,
                "y @ gᵀ, the right answer transposed: dx = g @ yᵀ": y @ g.T}
    wrong_dy = {"x @ g: x needs a transpose, dy = xᵀ @ g": x @ g,
                "g @ xᵀ: the operands swapped, dy = xᵀ @ g (x first: dy[p, j] = Σ_i x[i, p] g[i, j])": g @ x.T,
                "gᵀ @ x, the right answer transposed: dy = xᵀ @ g": g.T @ x}
    for name, got, right, wrong in (("dx", dx, g @ y.T, wrong_dx), ("dy", dy, x.T @ g, wrong_dy)):
        if got is not None and np.shape(got) == right.shape and not np.allclose(got, right):
            for says, value in wrong.items():
                if np.allclose(got, value):
                    raise Wrong(f"for 4 × 4 matrices your {name} is {says}")
        compare(f"for 4 × 4 matrices, {name}", got, right)


def check_backward_shapes(ex):
    """backward of non-square matrices (2, 3) @ (3, 4), against finite differences"""
    rng = np.random.default_rng(2)
    x, y = rng.standard_normal((2, 3)), rng.standard_normal((3, 4))
    dx, dy = backward_of(ex, x, y, rng.standard_normal((2, 4)))
    for name, got, shape in (("dx", dx, x.shape), ("dy", dy, y.shape)):
        if got is None or np.shape(got) != shape:  # compare names the shape (a transposed one, say)
            compare(f"for x (2, 3) @ y (3, 4), {name}", got, np.ones(shape))
    gradients_against_finite_differences(lambda a, b: ex.Matmul.apply(a, b), [x, y], ["x", "y"])


def check_backward_batched(ex):
    """backward of batched products, with batch dims shared or broadcast, against finite differences"""
    rng = np.random.default_rng(3)
    for xs, ys in (((2, 3, 4), (2, 4, 5)), ((2, 3, 4), (4, 5)), ((3, 4), (2, 4, 5)), ((2, 1, 2, 3), (3, 3, 2))):
        x, y = rng.standard_normal(xs), rng.standard_normal(ys)
        backward_of(ex, x, y, rng.standard_normal(np.broadcast_shapes(xs[:-2], ys[:-2]) + (xs[-2], ys[-1])))
        try:
            gradients_against_finite_differences(lambda a, b: ex.Matmul.apply(a, b), [x, y], ["x", "y"])
        except AssertionError as error:  # a gradient that no sum over batch dims brings to its input's shape
            raise Wrong(f"for x {xs} @ y {ys}: {error}" + BATCH_HINT) from None


def check_in_a_gpt(ex):
    """a GPT (its layers unfused, so every product is a Matmul) trains with yours exactly as with the framework's"""
    steps = 6 if quick() else 20
    with tp.use_fused(False):
        trains_as_the_framework("Matmul", ops, "Matmul", ex.Matmul, steps, make_optimizer=plain_sgd)
