"""Exercise 10 · A bigram model and its training loop

Goal: the simplest language model of the Sonnets' characters, in which the next character depends on the current
one only, and the loop that trains it (every model after this one trains with your loop).

The model is a table W of shape (V, V), V = 62 characters: row i holds the logits of the character after i,

    logits[b, t, :] = W[idx[b, t], :]                      idx (B, T) int64 -> logits (B, T, V)
    p = softmax(logits[b, t])                              the model's guess for the character at t + 1
    loss = -1/(B·T) Σ_{b,t} log p[targets[b, t]]           the mean cross-entropy over all B·T positions

The data is the text as one array of ids. A training example is a window of T characters x = ids[i : i+T] with its
targets y = ids[i+1 : i+T+1]: each position's target is the character that follows it. A model that knows nothing
gives each character probability 1/V, so a fresh model's loss is near ln V = ln 62 ≈ 4.13.

You write:
1. `get_batch(ids, batch_size, block_size, rng)`: B windows at random starts i = rng.integers(0, len(ids) - T, B)
   (the last start whose targets still fit is len(ids) - T - 1), returned as x, y: int64 arrays of shape (B, T).
2. `Bigram.forward(idx)`: the table's rows for idx (the table is an nn.Embedding(V, V): it looks rows up).
3. `loss_of(logits, targets)`: the mean cross-entropy, by your CrossEntropy from exercise 5 (imported below): it
   takes (N, V) logits and (N,) targets (a NumPy array, given as an option: CrossEntropy.apply(logits,
   target=...)), so view the (B, T, V) logits as (B·T, V) and reshape the (B, T) targets to (B·T,). It takes the
   logits themselves (its softmax is inside). Every model after this one trains on this loss: on your CrossEntropy.
4. `train(model, optimizer, ids, steps, batch_size, block_size, rng)`: each step: a batch, the logits, the loss,
   optimizer.zero_grad() (backward ADDS to .grad: without it every step's gradient piles onto the last ones),
   loss.backward(), optimizer.step(). Return the list of the losses (floats).

Trained by your AdamW from exercise 9 (lr 0.1) for 1,500 steps of 32 windows of 64 characters (a few seconds),
the bigram model reaches a validation loss of 2.41 on the last tenth of the text (the check asks for below 2.46).
Check: python -m course check 10
"""
import numpy as np  # noqa: F401  (for your code)

import tinygrad_proust as tp
from tinygrad_proust import nn

from .ex05_softmax import CrossEntropy  # noqa: F401  (your exercise 5: CrossEntropy.apply(logits, target=ids))


def get_batch(ids, batch_size, block_size, rng):
    """x, y: (batch_size, block_size) int64 windows of ids at random starts, y one character after x."""
    # TODO exercise 10: get_batch
    starts = rng.integers(0, len(ids) - block_size, batch_size)
    x = np.stack([ids[i:i + block_size] for i in starts]).astype(np.int64)
    y = np.stack([ids[i + 1:i + block_size + 1] for i in starts]).astype(np.int64)
    return x, y
    # END


class Bigram(nn.Module):
    def __init__(self, vocab_size):
        super().__init__()
        self.table = nn.Embedding(vocab_size, vocab_size)  # row i: the logits of the character after i

    def forward(self, idx):
        """idx (B, T) -> logits (B, T, V)."""
        # TODO exercise 10: Bigram.forward
        return self.table(idx)
        # END


def loss_of(logits, targets):
    """The mean cross-entropy of logits (B, T, V) against targets (B, T) of ids: a Tensor holding one number."""
    targets = targets.numpy() if isinstance(targets, tp.Tensor) else np.asarray(targets)  # a NumPy array of ids
    # TODO exercise 10: loss_of
    B, T, V = logits.shape
    return CrossEntropy.apply(logits.view(B * T, V), target=targets.reshape(B * T))
    # END


def train(model, optimizer, ids, steps, batch_size, block_size, rng):
    """Train model for `steps` steps on random windows of ids; return the training losses (floats)."""
    losses = []
    # TODO exercise 10: the training loop
    for _ in range(steps):
        x, y = get_batch(ids, batch_size, block_size, rng)
        loss = loss_of(model(tp.tensor(x)), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    # END
    return losses


# ---- mistakes: wrong answers the checks must catch
from course.runner import Mistake  # noqa: E402

MISTAKES = [
    Mistake("targets not shifted: y is the window itself", "y = np.stack([ids[i + 1:i + block_size + 1] for i",
            "y = np.stack([ids[i:i + block_size] for i", "one character after"),
    Mistake("a start so late that the targets run off the end", "rng.integers(0, len(ids) - block_size, batch_size)",
            "rng.integers(0, len(ids) - block_size + 1, batch_size)", "len(ids) - T - 1"),
    Mistake("the sum of the losses, not the mean",
            "return CrossEntropy.apply(logits.view(B * T, V), target=targets.reshape(B * T))",
            "return CrossEntropy.apply(logits.view(B * T, V), target=targets.reshape(B * T)) * (B * T)", "the mean"),
    Mistake("softmax before the cross-entropy", "CrossEntropy.apply(logits.view(B * T, V)",
            "CrossEntropy.apply(logits.softmax(-1).view(B * T, V)", "softmax is inside"),
    Mistake("the losses kept as Tensors, not floats", "losses.append(loss.item())", "losses.append(loss)",
            "as Tensors"),
    Mistake("batch_size and block_size swapped in the loop",
            "x, y = get_batch(ids, batch_size, block_size, rng)", "x, y = get_batch(ids, block_size, batch_size, rng)",
            "get_batch in its order"),
    Mistake("zero_grad forgotten: gradients accumulate", "        optimizer.zero_grad()\n", "", "zero_grad"),
    Mistake("zero_grad between backward and step: nothing to step with",
            "        optimizer.zero_grad()\n        loss.backward()\n",
            "        loss.backward()\n        optimizer.zero_grad()\n", "did not learn"),
]
