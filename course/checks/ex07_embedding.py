"""Checks of exercise 7: Embedding's lookup against the framework's, its backward against a one-hot product worked in
the check and finite differences, with ids repeated as text repeats them, and a GPT trained with it."""
import numpy as np

import tinygrad_proust as tp
from course.diagnose import compare, gradients_against_finite_differences
from course.plugin import plain_sgd, trains_as_the_framework
from course.runner import Wrong, quick
from tinygrad_proust import fused
from tinygrad_proust import functional as F

TITLE = "Embedding (a lookup, and a scatter-add backward)"
MINUTES = 20
NEEDS = [3]

V, C = 10, 4


def scattered(ids, g):
    """Σ over positions with ids == v of g, as a product: onehot(ids)ᵀ g (float64, another way than a scatter)."""
    onehot = np.eye(V)[ids.reshape(-1)]
    return onehot.T @ g.reshape(-1, C)


def backward_of(ex, weight, ids, g):
    out = ex.Embedding.apply(tp.Tensor(weight, requires_grad=True), indices=ids)
    got = out._ctx.backward(g)
    return got[0] if isinstance(got, tuple) else got


def check_forward(ex):
    """forward: the rows of the table picked by ids of any shape, as the framework's embedding"""
    rng = np.random.default_rng(0)
    weight = rng.standard_normal((V, C))
    for ids in (np.array([3, 1, 4]), rng.integers(0, V, (2, 5)), rng.integers(0, V, (2, 2, 3))):
        got = ex.Embedding.apply(tp.Tensor(weight), indices=ids)
        compare(f"the embedding of ids of shape {ids.shape}", got, F.embedding(tp.Tensor(ids), tp.Tensor(weight)))


def check_backward(ex):
    """backward with distinct ids: each used row gets its position's gradient, the others 0"""
    rng = np.random.default_rng(1)
    weight, ids = rng.standard_normal((V, C)), np.array([[7, 2, 5], [0, 9, 3]])
    g = rng.standard_normal(ids.shape + (C,))
    got = backward_of(ex, weight, ids, g)
    if got is not None and np.shape(got) == g.shape:
        raise Wrong(f"the gradient has shape {g.shape}, that of the looked-up rows: the gradient is for the table, "
                    f"shape {(V, C)}: add each position's gradient into the row of its id")
    compare("the table's gradient (distinct ids)", got, scattered(ids, g))


def check_repeated_ids(ex):
    """backward with ids repeated, as in text: a row used three times gets all three gradients"""
    rng = np.random.default_rng(2)
    weight, ids = rng.standard_normal((V, C)), np.array([[1, 3, 1], [3, 3, 0]])
    g = rng.standard_normal(ids.shape + (C,))
    got = backward_of(ex, weight, ids, g)
    want = scattered(ids, g)
    if got is not None and np.shape(got) == want.shape and not np.allclose(got, want):
        one_use = np.zeros((V, C))
        one_use[ids] = g  # what fancy-index assignment leaves: one position per id
        if np.allclose(got, one_use):
            raise Wrong("id 3 is used 3 times and id 1 twice, but their rows of the gradient hold one use each: a "
                        "token id that appears twice in the batch gets the gradient of only one of its uses "
                        "(dweight[ids] += g writes each row once; np.add.at(dweight, ids, g) adds every use)")
    compare("the table's gradient (ids [[1, 3, 1], [3, 3, 0]])", got, want)
    gradients_against_finite_differences(lambda w: ex.Embedding.apply(w, indices=ids), [weight], ["weight"])


def check_in_a_gpt(ex):
    """a GPT trains with your Embedding for its token and position tables exactly as with the framework's"""
    steps = 6 if quick() else 30
    trains_as_the_framework("Embedding", fused, "Embedding", ex.Embedding, steps, make_optimizer=plain_sgd)
