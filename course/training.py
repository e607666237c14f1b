"""The Sonnets as character ids, and the training runs that the model exercises (10 to 18) and their checks share.

    vocab_size, train_ids, val_ids = dataset()       62 characters; the first 90% of the text trains, the rest judges
    validation_loss(model, val_ids, block_size)      the mean cross-entropy over fixed windows (no randomness)
    shared_run()                                     batch, context, width, steps and learning rate of a check's run
    train_with(ex, model, run)                       the learner's loop (exercise 10) and AdamW (exercise 9) train it

A check trains the learner's model once with the learner's own loop (exercise 10's `train`) and keeps the result
for the checks after it (`trained`), so a check run trains each model once.
"""
from functools import lru_cache

import numpy as np

import tinygrad_proust as tp
from tinygrad_proust import functional as F

from .runner import ROOM, quick

TEXT = ROOM / "data" / "sonnets.txt"


@lru_cache(maxsize=None)
def text():
    return TEXT.read_text(encoding="utf-8")


@lru_cache(maxsize=None)
def chars():
    """The vocabulary: the text's distinct characters, sorted (id i is chars()[i])."""
    return "".join(sorted(set(text())))


def encode(s):
    index = {c: i for i, c in enumerate(chars())}
    return np.array([index[c] for c in s], dtype=np.int64)


def decode(ids):
    return "".join(chars()[int(i)] for i in ids)


@lru_cache(maxsize=None)
def _split():
    ids = encode(text())
    cut = int(0.9 * len(ids))
    ids.setflags(write=False)
    return ids[:cut], ids[cut:]


def dataset():
    """(vocab_size, train_ids, val_ids): 1-D int64 arrays, read-only."""
    train_ids, val_ids = _split()
    return len(chars()), train_ids, val_ids


def run_settings(full, fast):
    """The settings of a check's training run: `full` for the learner (about a minute), `fast` under quick()."""
    return dict(fast if quick() else full)


# The runs of exercises 11 to 15 share their sizes, so their losses compare: each step of the model grown should
# reach a lower loss than the step before in the same number of steps.
def shared_run():
    return run_settings(full=dict(batch_size=32, block_size=64, n_embd=64, n_head=4, steps=1500, lr=3e-3),
                        fast=dict(batch_size=16, block_size=32, n_embd=32, n_head=4, steps=250, lr=1e-2))


def validation_loss(model, ids, block_size, windows=64):
    """The model's mean cross-entropy on `windows` evenly spaced windows of ids (the same ones every time), by the
    framework's own cross_entropy. model(idx (B, T)) -> logits (B, T, V)."""
    starts = np.linspace(0, len(ids) - block_size - 1, windows).astype(np.int64)
    x = np.stack([ids[s:s + block_size] for s in starts])
    y = np.stack([ids[s + 1:s + block_size + 1] for s in starts])
    was_training = model.training
    model.eval()
    try:
        with tp.no_grad():
            logits = model(tp.tensor(x))
            V = logits.shape[-1]
            loss = F.cross_entropy(logits.reshape(-1, V), tp.tensor(y.reshape(-1)))
    finally:
        model.train(was_training)
    return float(loss.item())


_trained = {}


def trained(ex, key, make):
    """make() once per learner module and key: (model, validation loss, ...) kept for the checks that follow."""
    cache_key = (id(ex), key)
    if cache_key not in _trained or _trained[cache_key][0] is not ex:
        _trained[cache_key] = (ex, make())
    return _trained[cache_key][1]


def train_with(ex, model, run, seed=0):
    """Train `model` over the training text with the learner's own loop (exercise 10's `train`) and own optimizer
    (exercise 9's AdamW), both from the folder of the learner's module `ex`; returns the validation loss and the
    training losses."""
    from .runner import sibling
    _, train_ids, val_ids = dataset()
    optimizer = sibling(ex, "ex09_adamw").AdamW(model.parameters(), lr=run["lr"], weight_decay=0.0)
    losses = sibling(ex, "ex10_bigram").train(model, optimizer, train_ids, run["steps"], run["batch_size"],
                                              run["block_size"], np.random.default_rng(seed))
    return validation_loss(model, val_ids, run["block_size"]), losses


def require(ex, *checks):
    """Train only a model whose forward is right: a wrong one is reported by the checks named, and its training
    would take time to say less."""
    from .runner import Wrong
    for check in checks:
        try:
            check(ex)
        except Wrong:
            raise Wrong("not trained yet: first make the checks above pass") from None
