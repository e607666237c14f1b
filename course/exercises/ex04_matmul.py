"""Exercise 4 · The matrix product and its two transposes

Goal: `Matmul`, the op behind every layer: out = x @ y with x of shape (n, k) and y of shape (k, m), out (n, m):

    out[i, j] = Σ_p x[i, p] y[p, j]

Backward. g = dL/d out has out's shape (n, m). x[i, p] appears in every out[i, j] of row i, with factor y[p, j]:

    dL/dx[i, p] = Σ_j g[i, j] y[p, j] = (g yᵀ)[i, p]        dL/dx = g @ yᵀ      (n, m) @ (m, k) -> (n, k)
    dL/dy[p, j] = Σ_i x[i, p] g[i, j] = (xᵀ g)[p, j]        dL/dy = xᵀ @ g      (k, n) @ (n, m) -> (k, m)

Let the shapes guide you: each gradient has its input's shape, and only one order of the operands, with one
transpose, gives it.

Batched: x of shape (..., n, k) and y of shape (..., k, m) multiply matrix by matrix over the leading (batch)
dims, which broadcast as in exercise 3: (2, 3, 4) @ (4, 5) uses the same y for both of x's matrices. The same
two formulas hold per matrix, with the transpose of the last two axes only: `a.swapaxes(-1, -2)` (a.T reverses
every axis of a batched array). Where y was shared by the batch, xᵀ @ g has the batch's shape (2, 4, 5); the
engine sums it back to y's (4, 5) with unbroadcast, as for Add.

Write Matmul.forward and Matmul.backward. The last check puts your Matmul in the framework (every `a @ b`, and
every layer of a GPT when it is not fused) and trains a GPT with it. Check: python -m course check 4
"""
import tinygrad_proust as tp


class Matmul(tp.Function):
    """out = x @ y: x (..., n, k), y (..., k, m) -> out (..., n, m), batch dims broadcast."""

    def forward(self, x, y):
        raise NotImplementedError('exercise 4: Matmul.forward')

    def backward(self, g):
        raise NotImplementedError('exercise 4: Matmul.backward')


def matmul(x, y):
    return Matmul.apply(x, y)
