"""Saying what is wrong with a learner's numbers in words: a shape, a factor, a sign, a transpose, a place.

`compare` judges an array against the right one; `gradients_against_finite_differences` computes an op's gradients
both ways in float64, so a check can say "the gradient of input 0 (x) is off by a factor of 2 everywhere".
"""
import numpy as np

import tinygrad_proust as tp

from .runner import Wrong


def as_numpy(value):
    if isinstance(value, tp.Tensor):
        return value.numpy()
    if hasattr(value, "get"):  # a CuPy array
        return value.get()
    return np.asarray(value)


def compare(what, got, want, rtol=1e-4, atol=1e-6):
    """Raise Wrong describing how `got` differs from `want`; return quietly when they agree within tolerance."""
    if got is None:
        raise Wrong(f"{what} is None: nothing was computed for it (does backward return a gradient for it?)")
    got, want = as_numpy(got).astype(np.float64), as_numpy(want).astype(np.float64)
    if got.shape != want.shape:
        hint = ""
        if got.ndim >= 2 and got.shape == want.shape[::-1]:
            hint = " (the transposed shape: a missing or extra transpose?)"
        elif got.size > want.size and _broadcasts_to(want.shape, got.shape):
            hint = " (the broadcast shape: sum the gradient back to the input's shape)"
        raise Wrong(f"{what} has shape {got.shape}, it should have shape {want.shape}{hint}")
    if not np.isfinite(got).all():
        kind = "NaN" if np.isnan(got).any() else "inf"
        raise Wrong(f"{what} contains {kind} where the right answer is {_finite_or_not(want)}"
                    " (an exp of a large number overflows: subtract the maximum first)")
    close = np.isclose(got, want, rtol=rtol, atol=atol)
    if close.all():
        return
    if not got.any():
        raise Wrong(f"{what} is zero everywhere: no gradient reached it")
    big = np.abs(want) > 1e-3 * np.abs(want).max() if want.any() else np.zeros(want.shape, bool)
    if big.sum() >= 2:
        ratio = got[big] / want[big]
        if np.allclose(ratio, ratio.mean(), rtol=1e-3) and np.allclose(got[~big], 0, atol=atol * 10):
            factor = ratio.mean()
            if np.isclose(factor, -1, rtol=1e-3):
                raise Wrong(f"{what} has the wrong sign everywhere")
            raise Wrong(f"{what} is off by a factor of {factor:.4g} everywhere")
    if got.ndim >= 2 and got.shape[-1] == got.shape[-2] and np.allclose(got, np.swapaxes(want, -1, -2), rtol, atol):
        raise Wrong(f"{what} is the right answer transposed: a missing or extra transpose")
    index = np.unravel_index(np.argmax(np.abs(got - want) * ~close), got.shape)
    at = tuple(int(i) for i in index)
    raise Wrong(f"{what} is wrong at {int((~close).sum())} of {got.size} entries; at index {at} it is "
                f"{got[index]:.6g}, it should be {want[index]:.6g}")


def _broadcasts_to(small, big):
    return all(s in (1, b) for s, b in zip(small[::-1], big[::-1])) and len(small) <= len(big)


def _finite_or_not(want):
    return "finite" if np.isfinite(want).all() else "not finite either"


def gradients_against_finite_differences(fn, inputs, names, eps=1e-6, seed=0, rtol=1e-5, atol=1e-7):
    """Check fn's backward against central differences: fn(*tensors) -> Tensor, inputs float64 arrays.

    The loss is Σ fn(x) ⊙ r for a fixed random r, so every output element counts. Raises Wrong naming the input.
    """
    tensors = [tp.Tensor(np.array(x, dtype=np.float64), requires_grad=True) for x in inputs]
    out = fn(*tensors)
    upstream = np.random.default_rng(seed).standard_normal(out.shape)
    out.backward(tp.Tensor(upstream))

    def loss():
        with tp.no_grad():
            return float((fn(*tensors).numpy() * upstream).sum())

    for n, (t, name) in enumerate(zip(tensors, names)):
        numeric = np.zeros(t.shape)
        flat = t.data.reshape(-1)
        for i in range(flat.size):
            original = flat[i]
            flat[i] = original + eps
            plus = loss()
            flat[i] = original - eps
            minus = loss()
            flat[i] = original
            numeric.reshape(-1)[i] = (plus - minus) / (2 * eps)
        compare(f"the gradient of input {n} ({name})", None if t.grad is None else t.grad.numpy(), numeric,
                rtol=rtol, atol=atol)


def positions_that_see(fn, x, position, change=3.0):
    """The positions t < position whose output fn(x) (x: (B, T, C) floats) moves when x[:, position] does: in a
    causal model, none."""
    changed = x.copy()
    changed[:, position] += change
    with tp.no_grad():
        before, after = as_numpy(fn(tp.tensor(x))), as_numpy(fn(tp.tensor(changed)))
    return [t for t in range(position) if not np.allclose(before[:, t], after[:, t], rtol=1e-5, atol=1e-6)]
