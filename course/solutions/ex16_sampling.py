"""Exercise 16 · Sampling: temperature, top-k and top-p

Goal: turn a model's last logits into the next character. Everything here is NumPy on rows of logits, (B, V)
float64: one row per sequence being continued.

    temperature τ:  p = softmax(logits / τ)      τ < 1 sharpens (τ → 0: always the best), τ > 1 flattens.
                    Divide the LOGITS: dividing the probabilities after the softmax and renormalising changes nothing.
    top-k:          keep the k largest logits of each row, set the others to -inf (exp(-inf) = 0 after the softmax).
    top-p:          rank the tokens by probability; keep the smallest set of the top ones whose probabilities add up
                    to at least p (the nucleus), so the token whose probability makes the sum cross p is KEPT:
                    a token is dropped when the tokens ranked above it already add up to p or more.
                    probs [0.5, 0.3, 0.15, 0.05], p = 0.7: keep 0.5 and 0.3 (0.5 < 0.7, 0.5 + 0.3 >= 0.7).
    the order:      subtract each row's max (exp cannot overflow), divide by τ, top-k, top-p, softmax.
    sampling:       u ~ uniform[0, 1) per row (rng.random((B, 1))); the token is the first i whose cumulative
                    probability p_0 + ... + p_i reaches u, that is the count of cumulative sums below u.

The project's generation (models/gpt.py's sample_next) does exactly this, so with the same random numbers your
samples are its samples. You write the five functions below (softmax is given).
Check: python -m course check 16
"""
import numpy as np


def softmax(logits):
    """Rows of logits (-inf allowed) -> rows of probabilities."""
    e = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def apply_temperature(logits, temperature):
    """The logits divided by the temperature (> 0)."""
    # TODO exercise 16: apply_temperature
    return logits / temperature
    # END


def top_k_filter(logits, k):
    """A copy of logits (B, V) with all but each row's k largest set to -inf."""
    # TODO exercise 16: top_k_filter
    logits = logits.copy()
    kth = np.sort(logits, axis=-1)[:, -k][:, None]            # each row's k-th largest
    logits[logits < kth] = -np.inf
    return logits
    # END


def top_p_filter(logits, p):
    """A copy of logits (B, V) with every token outside each row's nucleus (top-p) set to -inf."""
    # TODO exercise 16: top_p_filter
    order = np.argsort(-logits, axis=-1)                      # each row's tokens, most likely first
    probs = softmax(np.take_along_axis(logits, order, axis=-1))
    before = np.cumsum(probs, axis=-1) - probs                # the mass of the tokens ranked above each one
    drop_sorted = before >= p                                 # the nucleus is full without it
    drop = np.zeros_like(drop_sorted)
    np.put_along_axis(drop, order, drop_sorted, axis=-1)      # back to the tokens' own places
    logits = logits.copy()
    logits[drop] = -np.inf
    return logits
    # END


def distribution(logits, temperature=1.0, top_k=None, top_p=None):
    """The probabilities (B, V) to sample the next token from."""
    # TODO exercise 16: distribution
    logits = apply_temperature(logits - logits.max(axis=-1, keepdims=True), temperature)
    if top_k is not None:
        logits = top_k_filter(logits, top_k)
    if top_p is not None:
        logits = top_p_filter(logits, top_p)
    probs = softmax(logits)
    return probs
    # END


def sample(probs, rng):
    """One token id per row of probs (B, V): the first whose cumulative probability reaches u ~ rng.random."""
    # TODO exercise 16: sample
    u = rng.random((probs.shape[0], 1))
    return np.minimum((np.cumsum(probs, axis=-1) < u).sum(axis=-1), probs.shape[-1] - 1)
    # END


# ---- mistakes: wrong answers the checks must catch
from course.runner import Mistake  # noqa: E402

MISTAKES = [
    Mistake("temperature applied after the softmax (probabilities / τ, renormalised: no effect)",
            "    probs = softmax(logits)\n",
            "    probs = apply_temperature(softmax(logits * temperature), temperature)\n"
            "    probs = probs / probs.sum(axis=-1, keepdims=True)\n", "temperature changes nothing"),
    Mistake("top-k keeps k + 1 (the threshold one place too low)", "[:, -k][:, None]", "[:, -k - 1][:, None]",
            "kept 3"),
    Mistake("top-k filters the caller's logits in place", "    logits = logits.copy()\n    kth", "    kth",
            "top_k_filter(logits, 2) changed the logits it was given"),
    Mistake("top-p filters the caller's logits in place", "    logits = logits.copy()\n    logits[drop]",
            "    logits[drop]", "top_p_filter(logits, 0.7) changed the logits it was given"),
    Mistake("top-p drops the token that crosses p", "before = np.cumsum(probs, axis=-1) - probs",
            "before = np.cumsum(probs, axis=-1)", "crosses"),
    Mistake("the most likely token always picked", "np.minimum((np.cumsum(probs, axis=-1) < u).sum(axis=-1)",
            "np.minimum(probs.argmax(axis=-1)", "sample_next"),
]
