"""Checks of exercise 12: one head against a slow loop over positions (float64), causality, and a training run
that beats exercise 11's averaging."""
import math

import numpy as np

import tinygrad_proust as tp
from course import training
from course.diagnose import compare, positions_that_see
from course.runner import Wrong, quick

TITLE = "One head of self-attention"
MINUTES = 30
NEEDS = [5, 10, 11]


def slow_head(x, wq, wk, wv, scale=True, softmax_over_keys=True, mask_first=True):
    """One head, one query at a time (float64); the options make the usual wrong versions, to name them."""
    B, T, _ = x.shape
    q, k, v = x @ wq.T, x @ wk.T, x @ wv.T
    hs = q.shape[-1]
    out = np.zeros((B, T, v.shape[-1]))
    scores = q @ np.swapaxes(k, 1, 2) / (math.sqrt(hs) if scale else 1.0)
    future = np.triu(np.ones((T, T), bool), 1)
    if not softmax_over_keys:  # each column normalised, a query's row then mixes freely
        s = np.where(future, -np.inf, scores)
        w = np.exp(s - s.max(1, keepdims=True))
        return (w / w.sum(1, keepdims=True)) @ v
    for b in range(B):
        for t in range(T):
            seen = range(t + 1) if mask_first else range(T)
            s = np.array([scores[b, t, j] for j in seen])
            w = np.exp(s - s.max())
            w /= w.sum()
            out[b, t] = sum(w[n] * v[b, j] for n, j in enumerate(seen) if j <= t)
    return out


def big_head(ex, n_embd=8, head_size=4):
    tp.manual_seed(0)
    head = ex.Head(n_embd, head_size)
    rng = np.random.default_rng(5)
    for p in head.parameters():  # weights of a trained size, so that the scores spread and every mistake shows
        p.data = (rng.standard_normal(p.shape) * 0.6).astype(np.float32)
    return head


def check_head(ex):
    """Head(x) equals a slow loop: for each t, softmax(q_t · k_j / sqrt(hs)) over j <= t, weighting the v_j"""
    head = big_head(ex)
    x = np.random.default_rng(6).standard_normal((2, 7, 8))
    with tp.no_grad():
        got = head(tp.tensor(x.astype(np.float32))).numpy()
    w = [p.numpy().astype(np.float64) for p in (head.query.weight, head.key.weight, head.value.weight)]
    want = slow_head(x, *w)
    if got.shape == want.shape and not np.allclose(got, want, rtol=1e-4, atol=1e-5):
        for options, why in ((dict(scale=False), "the scores are not divided by sqrt(head_size)"),
                             (dict(softmax_over_keys=False), "the softmax runs over the queries: take it over "
                              "the last dim (the keys j), so each query's weights sum to 1"),
                             (dict(mask_first=False), "the weights are masked after the softmax, so a row no "
                              "longer sums to 1: fill the future's scores with -inf before the softmax")):
            if np.allclose(got, slow_head(x, *w, **options), rtol=1e-4, atol=1e-5):
                raise Wrong(f"Head(x) is not the attention of the slow loop: {why}")
    compare("Head(x) for x (2, 7, 8), head_size 4", got, want, rtol=1e-4, atol=1e-5)


def check_causal(ex):
    """no position sees a later one: changing position 5 of x leaves the outputs at 0 to 4 as they were"""
    head = big_head(ex)
    moved = positions_that_see(head, np.random.default_rng(7).standard_normal((2, 9, 8)).astype(np.float32), 5)
    if moved:
        raise Wrong(f"your attention lets position {moved[0]} see position 5 (its output changed when x[:, 5] did): "
                    "set the scores of every key j > t to -inf before the softmax")


def check_training(ex):
    """your loop trains it to a lower validation loss than exercise 11's mean of the past"""
    training.require(ex, check_head, check_causal)
    run = training.shared_run()
    # measured on the reference answers: exercise 11 reached 2.378 (full), 2.471 (quick); this one 2.175, 2.417
    previous, target = (2.471, 2.45) if quick() else (2.378, 2.25)
    vocab, _, _ = training.dataset()
    tp.manual_seed(0)
    model = ex.OneHeadLM(vocab, run["n_embd"], run["block_size"])
    val, _ = training.train_with(ex, model, run)
    if not val < target:
        raise Wrong(f"after {run['steps']} steps the validation loss is {val:.3f}; it should be below {target} "
                    f"(exercise 11's mean of the past reached {previous})")
