"""Putting a learner's op inside the real framework for the length of a check, and training a small GPT with it.

    with swapped(fused, "LayerNorm", TheirLayerNorm):   every F.layer_norm in the framework now runs theirs
        losses = gpt_losses(steps=6)                    a seeded GPT's training losses on the Sonnets

A check runs the same training twice, with their op and with the framework's, and compares the losses
(`same_losses`): the op passed its own checks; here it has to work inside a model, with real shapes.
"""
import contextlib

import numpy as np

import tinygrad_proust as tp
from tinygrad_proust import optim
from models.gpt import GPT, GPTConfig

from .runner import ROOM, Wrong

SONNETS = ROOM / "data" / "sonnets.txt"


@contextlib.contextmanager
def swapped(owner, name, replacement):
    """owner.name is `replacement` inside the block, and what it was before afterwards, whatever happens."""
    original = getattr(owner, name)
    setattr(owner, name, replacement)
    try:
        yield replacement
    finally:
        setattr(owner, name, original)


def sonnet_ids():
    """The Sonnets as character ids (a vocabulary of the text's own characters, sorted)."""
    text = SONNETS.read_text(encoding="utf-8")
    chars = sorted(set(text))
    index = {c: i for i, c in enumerate(chars)}
    return np.array([index[c] for c in text], dtype=np.int64), len(chars)


def tiny_config(vocab_size, **overrides):
    """A one-block GPT that trains a step in milliseconds: LayerNorm, GELU, learned positions, tied head."""
    values = dict(vocab_size=vocab_size, block_size=16, n_layer=1, n_head=2, n_embd=32, ffn_hidden=64,
                  norm="layernorm", ffn="gelu", positions="learned", tie_weights=True, dropout=0.0)
    return GPTConfig(**{**values, **overrides})


def plain_sgd(model, lr=0.5):
    """Plain gradient descent for the op checks: it moves by the gradient itself, so a gradient off by a factor (a
    forgotten 1/N) shows in the next loss, where Adam would divide the factor out."""
    return optim.SGD(model.parameters(), lr=lr)


def gpt_losses(steps, make_optimizer=None, batch=8, lr=3e-3, seed=0, **overrides):
    """The training losses of a seeded tiny GPT on random windows of the Sonnets, one per step.
    make_optimizer(model) -> an optimizer; the framework's AdamW (nanoGPT's decay groups) by default."""
    ids, vocab = sonnet_ids()
    tp.manual_seed(seed)
    model = GPT(tiny_config(vocab, **overrides))
    if make_optimizer is None:
        optimizer = optim.AdamW(model.optimizer_groups(0.1), lr=lr)
    else:
        optimizer = make_optimizer(model)
    rng = np.random.default_rng(seed)
    block = model.config.block_size
    losses = []
    with np.errstate(all="ignore"):  # a wrong op's NaN is reported by same_losses, in words
        for _ in range(steps):
            starts = rng.integers(0, len(ids) - block - 1, batch)
            x = np.stack([ids[s:s + block] for s in starts])
            y = np.stack([ids[s + 1:s + block + 1] for s in starts])
            _, loss = model(x, y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses.append(float(loss.item()))
    return losses


def trains_as_the_framework(what, owner, name, replacement, steps, **options):
    """A tiny GPT trained with owner.name as it is, then with the learner's `replacement` swapped in: the losses
    must agree step by step (same_losses). options go to gpt_losses (the optimizer, the model's size)."""
    want = gpt_losses(steps, **options)
    with swapped(owner, name, replacement):
        got = gpt_losses(steps, **options)
    same_losses(f"a GPT trained with your {what}", got, want)


def same_losses(what, got, want, rtol=2e-5, reference="the framework's own op",
                later="the first loss agrees, so the forward is right and a gradient is wrong"):
    """Raise Wrong at the first step where a training run with the learner's op leaves the framework's."""
    for step, (a, b) in enumerate(zip(got, want)):
        if not np.isfinite(a):
            raise Wrong(f"{what}: the loss is {a} at step {step} (with {reference} it is {b:.4f})")
        if abs(a - b) > rtol * abs(b):
            raise Wrong(f"{what}: the loss at step {step} is {a:.5f}, with {reference} it is {b:.5f}"
                        + (" (the first step's loss differs: the forward is wrong)" if step == 0 else f" ({later})"))
