"""Checks of exercise 11: the running mean against a slow loop, causality (no position sees a later one), the
model's logits from its own weights, and a training run to a stated validation loss."""
import numpy as np

import tinygrad_proust as tp
from course import training
from course.diagnose import compare
from course.runner import Wrong, quick

TITLE = "Averaging the past (a lower-triangular matrix of weights)"
MINUTES = 20
NEEDS = [10]


def slow_average(x):
    """out[b, t] = mean of x[b, 0..t], one position at a time (float64)."""
    out = np.zeros_like(x)
    for t in range(x.shape[1]):
        out[:, t] = x[:, :t + 1].mean(axis=1)
    return out


def first_leak(before, after, changed):
    """The earliest position t < changed whose output moved when position `changed` of the input did."""
    moved = ~np.isclose(before, after, rtol=1e-6, atol=1e-7).reshape(before.shape[0], before.shape[1], -1).all(-1)
    early = [t for t in range(changed) if moved[:, t].any()]
    return early[0] if early else None


def check_average(ex):
    """causal_average(x)[:, t] is the mean of x[:, 0..t], as a slow loop says"""
    x = np.random.default_rng(0).standard_normal((2, 6, 3))
    got = ex.causal_average(tp.tensor(x)).numpy()
    want = slow_average(x)
    if got.shape == want.shape and np.allclose(got, np.cumsum(x, axis=1), rtol=1e-6):
        raise Wrong("causal_average gives the sum of x[:, 0..t], not the mean: divide each row of the weights by "
                    "its sum (row t by t + 1)")
    compare("causal_average(x) for x of shape (2, 6, 3)", got, want, rtol=1e-6, atol=1e-9)


def check_causal(ex):
    """no position sees a later one: changing position 5 leaves positions 0 to 4 as they were"""
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 8, 3))
    changed = x.copy()
    changed[:, 5] += 10.0
    leak = first_leak(ex.causal_average(tp.tensor(x)).numpy(), ex.causal_average(tp.tensor(changed)).numpy(), 5)
    if leak is not None:
        raise Wrong(f"in causal_average, position {leak} sees position 5 (its output changed when x[:, 5] did): "
                    "row t of the weights must be 0 after column t")
    vocab, _, _ = training.dataset()
    tp.manual_seed(0)
    model = ex.AveragingLM(vocab, 16, 16)
    idx = rng.integers(0, vocab, (2, 16))
    other = idx.copy()
    other[:, 5] = (other[:, 5] + 7) % vocab
    with tp.no_grad():
        leak = first_leak(model(tp.tensor(idx)).numpy(), model(tp.tensor(other)).numpy(), 5)
    if leak is not None:
        raise Wrong(f"in AveragingLM, position {leak} sees position 5 (its logits changed when token 5 did)")


def check_logits(ex):
    """AveragingLM's logits are the Linear layer of [x, causal_average(x)], x = token + position embeddings"""
    vocab, _, _ = training.dataset()
    tp.manual_seed(0)
    model = ex.AveragingLM(vocab, 8, 16)
    for p in model.parameters():  # larger weights than the initial ones, so that every term shows
        p.data = p.data + np.random.default_rng(2).standard_normal(p.shape).astype(np.float32) * 0.5
    idx = np.random.default_rng(3).integers(0, vocab, (2, 10))
    with tp.no_grad():
        got = model(tp.tensor(idx)).numpy()
    x = model.wte.weight.numpy().astype(np.float64)[idx] + model.wpe.weight.numpy()[:10]
    features = np.concatenate([x, slow_average(x)], axis=-1)
    want = features @ model.lm_head.weight.numpy().T + model.lm_head.bias.numpy()
    if got.shape == want.shape and not np.allclose(got, want, rtol=1e-4, atol=1e-4):
        raise Wrong("AveragingLM's logits are not lm_head([x, causal_average(x)]): the features are the character "
                    "itself (x = token + position embedding) and the mean of its past, side by side (tp.cat on the "
                    "last dim)")
    compare("AveragingLM's logits", got, want, rtol=1e-4, atol=1e-4)


def check_training(ex):
    """your loop from exercise 10 trains it to the stated validation loss"""
    training.require(ex, check_average, check_causal, check_logits)
    run = training.shared_run()
    target = 2.55 if quick() else 2.42  # measured on the reference answer: 2.378 (full), 2.471 (quick)
    vocab, _, _ = training.dataset()
    tp.manual_seed(0)
    model = ex.AveragingLM(vocab, run["n_embd"], run["block_size"])
    val, _ = training.train_with(ex, model, run)
    if not val < target:
        raise Wrong(f"after {run['steps']} steps the validation loss is {val:.3f}; it should be below {target}")
