"""Checks of exercise 16: temperature, top-k and top-p against distributions worked out by hand, against the
project's own filter_logits on random rows, and the samples against models.gpt.sample_next's with the same
random numbers."""
import numpy as np

from course.diagnose import compare
from course.runner import Wrong
from models.gpt import filter_logits, sample_next

TITLE = "Sampling: temperature, top-k, top-p"
MINUTES = 25
NEEDS = []


def rows(*probs):
    """Logits whose softmax is the given probabilities (exactly, up to rounding)."""
    return np.log(np.array(probs, dtype=np.float64))


def check_temperature(ex):
    """temperature divides the logits: probabilities ∝ (1, 2, 3, 4) at τ = 1 are ∝ (1, 4, 9, 16) at τ = 0.5"""
    logits = rows([0.1, 0.2, 0.3, 0.4])
    got = ex.distribution(logits, temperature=0.5)
    want = np.array([[1, 4, 9, 16]]) / 30
    if np.allclose(got, [[0.1, 0.2, 0.3, 0.4]], atol=1e-9):
        raise Wrong("at τ = 0.5 your distribution is the one at τ = 1: the temperature changes nothing after the "
                    "softmax; divide the logits by τ before it")
    compare("distribution(logits ∝ log(1, 2, 3, 4), temperature=0.5)", got, want, rtol=1e-9, atol=1e-12)
    compare("distribution(same, temperature=2)", ex.distribution(logits, temperature=2.0),
            np.sqrt([[1, 2, 3, 4]]) / np.sqrt([1, 2, 3, 4]).sum(), rtol=1e-9, atol=1e-12)


def leaves_alone(name, fn, logits, *args):
    """Raise Wrong if fn(logits, *args) (a filter) changes the array it is given."""
    given = logits.copy()
    fn(given, *args)
    if not np.array_equal(given, logits):
        raise Wrong(f"{name} changed the logits it was given: return a filtered copy (logits.copy() first), the "
                    "caller's logits are still theirs (to try another setting, say)")


def check_top_k(ex):
    """top-k keeps the k most likely: probabilities (.05 .1 .15 .3 .4) with k = 2 become (0 0 0 3/7 4/7)"""
    logits = rows([0.05, 0.1, 0.15, 0.3, 0.4])
    leaves_alone("top_k_filter(logits, 2)", ex.top_k_filter, logits, 2)
    got = ex.distribution(logits, top_k=2)
    kept = int((np.asarray(got) > 0).sum())
    if kept != 2:
        raise Wrong(f"top-k with k = 2 kept {kept} tokens of 5: keep each row's k largest logits "
                    "(the threshold is the k-th largest, np.sort(...)[:, -k])")
    compare("distribution(logits, top_k=2)", got, [[0, 0, 0, 3 / 7, 4 / 7]], rtol=1e-9, atol=1e-12)


def check_top_p(ex):
    """top-p keeps the smallest top set reaching p, the token that crosses p included"""
    logits = rows([0.15, 0.5, 0.05, 0.3])
    leaves_alone("top_p_filter(logits, 0.7)", ex.top_p_filter, logits, 0.7)
    got = ex.distribution(logits, top_p=0.7)
    want = np.array([[0, 0.5 / 0.8, 0, 0.3 / 0.8]])
    if np.allclose(got, [[0, 1, 0, 0]], atol=1e-9):
        raise Wrong("for probabilities (.15 .5 .05 .3) and p = 0.7, your nucleus is the 0.5 alone; 0.5 < 0.7, "
                    "so the 0.3 that crosses p belongs to it too: drop a token only when the tokens ranked above "
                    "it already add up to p")
    compare("distribution(probabilities (.15 .5 .05 .3) as logits, top_p=0.7)", got, want, rtol=1e-9, atol=1e-12)
    compare("distribution(same, top_p=0.9)", ex.distribution(logits, top_p=0.9),
            [[0.15 / 0.95, 0.5 / 0.95, 0, 0.3 / 0.95]], rtol=1e-9, atol=1e-12)


def check_like_the_project(ex):
    """on random rows, top-k and top-p keep what models.gpt's filter_logits keeps"""
    rng = np.random.default_rng(19)
    logits = rng.standard_normal((4, 30)) * 2
    for k, p in ((5, None), (None, 0.6), (10, 0.8), (1, None), (None, 0.05)):
        want = np.exp(filter_logits(logits - logits.max(-1, keepdims=True), top_k=k, top_p=p))
        want /= want.sum(-1, keepdims=True)
        compare(f"distribution(random logits, top_k={k}, top_p={p})", ex.distribution(logits, top_k=k, top_p=p),
                want, rtol=1e-9, atol=1e-12)


def check_sample(ex):
    """sampling gives models.gpt.sample_next's tokens with the same random numbers"""
    logits = np.random.default_rng(20).standard_normal((6, 30)) * 2
    for seed, (t, k, p) in enumerate(((1.0, None, None), (0.7, 5, None), (1.3, None, 0.9), (0.8, 10, 0.7))):
        got = np.asarray(ex.sample(ex.distribution(logits, t, k, p), np.random.default_rng(seed)))
        want = sample_next(logits, t, k, p, np.random.default_rng(seed))
        if got.shape != want.shape or not (got == want).all():
            raise Wrong(f"with temperature {t}, top_k {k}, top_p {p}, your samples are {got.tolist()}, "
                        f"sample_next's with the same random numbers are {want.tolist()}: draw u = "
                        "rng.random((B, 1)) and take the first token whose cumulative probability reaches u")
    counts = np.bincount([int(ex.sample(np.array([[0.2, 0.8]]), np.random.default_rng(s))[0])
                          for s in range(400)], minlength=2)
    if not 0.7 < counts[1] / 400 < 0.9:
        raise Wrong(f"sampling (0.2, 0.8) 400 times gave token 1 {counts[1]} times; about 320 are expected")
