"""Exercise 7 · Embedding: a lookup, and the scatter-add behind its gradient

Goal: the GPT's first layer. A table weight of shape (V, C) holds one vector per token id; the forward picks the
rows of the ids, any shape of ids (B, T) giving (B, T, C):

    out[b, t, :] = weight[ids[b, t], :]

Backward, with g = dL/d out of shape (B, T, C). Row v of the table is used once for every position where the id
is v, so its gradient adds those positions' gradients (a Value used twice, once more):

    dweight[v, :] = Σ over (b, t) with ids[b, t] = v of g[b, t, :]          rows never used: 0

A batch of text repeats ids all the time (every space, every "e"). NumPy's `dweight[ids] += g` does NOT add the
repeats: fancy-index assignment reads all the rows first and writes each back once, so an id that appears twice
keeps one use's gradient. `np.add.at(dweight, ids, g)` adds every one (an unbuffered scatter-add).

Write Embedding.forward and Embedding.backward; ids arrive as the option `indices`, as in the framework (ids get no
gradient). The last check trains a GPT with your Embedding for its token and position tables.
Check: python -m course check 7
"""
import numpy as np  # noqa: F401  (for your code)

import tinygrad_proust as tp


class Embedding(tp.Function):
    """out = weight[indices]: weight (V, C), integer indices of any shape -> (*indices.shape, C).
    Called as Embedding.apply(weight, indices=ids)."""

    def forward(self, weight, indices):
        # TODO exercise 7: Embedding.forward
        self.indices, self.weight_shape = indices, weight.shape
        return weight[indices]
        # END

    def backward(self, g):
        # TODO exercise 7: Embedding.backward
        dweight = np.zeros(self.weight_shape, dtype=g.dtype)
        np.add.at(dweight, self.indices, g)
        return dweight
        # END


def embedding(ids, weight):
    return Embedding.apply(weight, indices=ids)


# ---- mistakes: wrong answers the checks must catch
from course.runner import Mistake  # noqa: E402

MISTAKES = [
    Mistake("dweight[ids] += g, which keeps one use of a repeated id", "np.add.at(dweight, self.indices, g)",
            "dweight[self.indices] += g", "a token id that appears twice in the batch gets the gradient of only one"),
    Mistake("the gradient of the looked-up rows, not of the table", "        return dweight\n",
            "        return g\n", "table"),
    Mistake("dweight[ids] = g, which keeps one use of a repeated id", "np.add.at(dweight, self.indices, g)",
            "dweight[self.indices] = g", "a token id that appears twice in the batch gets the gradient of only one"),
]
