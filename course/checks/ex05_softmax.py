"""Checks of exercise 5: softmax and cross-entropy against float64 references worked in the check and the framework's
own, with logits of 1000; their backwards against the hand-derived gradients and finite differences; a GPT trained
with the learner's CrossEntropy as its loss."""
import numpy as np

import tinygrad_proust as tp
from course.diagnose import compare, gradients_against_finite_differences
from course.plugin import plain_sgd, trains_as_the_framework
from course.runner import Wrong, quick
from tinygrad_proust import fused
from tinygrad_proust import functional as F

TITLE = "Softmax and cross-entropy (stable, with their backwards)"
MINUTES = 35
NEEDS = [3]

UPSTREAM = 0.7  # dL/d loss: not 1, so that a forgotten `* g` shows


def reference_log_softmax(x):
    """float64 log softmax through log-sum-exp, computed another way than the learner's."""
    x = np.asarray(x, dtype=np.float64)
    m = x.max(axis=-1, keepdims=True)
    return x - (m + np.log(np.exp(x - m).sum(axis=-1, keepdims=True)))


def reference_softmax(x):
    return np.exp(reference_log_softmax(x))


def logits_and_targets(seed=0, n=6, c=5):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, c)) * 2, rng.integers(0, c, n)


def check_softmax(ex):
    """softmax: rows of probabilities, right for any logits, 1000 included"""
    rng = np.random.default_rng(0)
    for shape in ((3, 5), (2, 3, 4)):
        x = rng.standard_normal(shape)
        compare(f"softmax of an array of shape {shape}", ex.softmax(x), reference_softmax(x))
    # the last row is 2000 wide: only the maximum keeps every exp at most 1 (its min or mean overflows)
    big = np.array([[1000.0, 1001.0, 1002.0], [-1000.0, -1001.0, -1003.0], [0.0, 0.0, 0.0], [-1000.0, 0.0, 1000.0]])
    with np.errstate(all="ignore"):
        got = ex.softmax(big)
    compare("softmax of [[1000, 1001, 1002], [-1000, -1001, -1003], [0, 0, 0], [-1000, 0, 1000]]", got,
            reference_softmax(big))
    x32 = rng.standard_normal((4, 6)).astype(np.float32)
    if np.asarray(ex.softmax(x32)).dtype != np.float32:
        raise Wrong(f"softmax of float32 logits is {np.asarray(ex.softmax(x32)).dtype}: keep the input's dtype")


def check_softmax_backward(ex):
    """softmax's backward: y (g - Σ g y), the whole Jacobian, against finite differences"""
    rng = np.random.default_rng(1)
    x, g = rng.standard_normal((3, 5)), rng.standard_normal((3, 5))
    y = reference_softmax(x)
    got = ex.softmax_backward(y, g)
    if got is not None and np.shape(got) == y.shape and np.allclose(got, y * (1 - y) * g):
        raise Wrong("your softmax backward is y (1 - y) g, the Jacobian's diagonal only: each y_i depends on every "
                    "x_k (through the sum), so dL/dx_k = y_k (g_k - Σ_i g_i y_i)")
    compare("softmax_backward(y, g)", got, y * (g - (g * y).sum(axis=-1, keepdims=True)))
    gradients_against_finite_differences(lambda t: ex.Softmax.apply(t), [rng.standard_normal((2, 3, 4))], ["x"])


def check_cross_entropy(ex):
    """cross-entropy: the mean of -log softmax[target], as the framework's, for logits of 1000 too"""
    for seed, offset in ((0, 0.0), (1, 1000.0), (2, -1000.0)):
        logits, target = logits_and_targets(seed)
        logits = logits + offset  # the same probabilities: softmax does not see a shift of every logit
        want = -reference_log_softmax(logits)[np.arange(len(target)), target].mean()
        with np.errstate(all="ignore"):
            got = ex.CrossEntropy.apply(tp.Tensor(logits), target=target)
        what = "the cross-entropy" + (f" of logits around {offset:.0f}" if offset else "")
        got_value = float(got.item()) if isinstance(got, tp.Tensor) and got.numel() == 1 else got
        summed = isinstance(got_value, float) and np.isfinite(got_value) and want * len(target)
        if summed and np.isclose(got_value, want * len(target), rtol=1e-6):
            raise Wrong(f"{what} is {got_value:.6g}, {len(target)} times the right {want:.6g}: that is the sum over "
                        f"the rows; the loss is their mean")
        compare(what, got, want)
        compare(f"{what}, by the framework's cross_entropy", got,
                F.cross_entropy(tp.Tensor(logits), tp.Tensor(target)))
    # rows 2000 wide whose targets are far below the maximum: the loss is large and finite (-log p of a p that
    # rounds to 0 in float64)
    logits, target = np.array([[0.0, 1000.0, -1000.0], [500.0, -500.0, 0.0]]), np.array([2, 1])
    with np.errstate(all="ignore"):
        got = ex.CrossEntropy.apply(tp.Tensor(logits), target=target)
    what = "the cross-entropy of logits [[0, 1000, -1000], [500, -500, 0]] with targets [2, 1]"
    got_value = float(got.item()) if isinstance(got, tp.Tensor) and got.numel() == 1 else None
    if got_value is not None and not np.isfinite(got_value):
        raise Wrong(f"{what} is {got_value}, it should be 1500: subtract each row's maximum m before exp, and take "
                    "log softmax as x - m - log Σ exp(x - m), not as the log of the softmax (a probability that "
                    "rounds to 0 has log -inf)")
    compare(what, got, 1500.0)


def check_cross_entropy_backward(ex):
    """cross-entropy's backward: g (softmax - onehot(target)) / N, against finite differences"""
    logits, target = logits_and_targets(2)
    n = len(target)
    p, onehot = reference_softmax(logits), np.eye(logits.shape[1])[target]
    out = ex.CrossEntropy.apply(tp.Tensor(logits, requires_grad=True), target=target)
    got = out._ctx.backward(np.array(UPSTREAM))
    got = got[0] if isinstance(got, tuple) else got
    want = UPSTREAM * (p - onehot) / n
    what = f"the cross-entropy's gradient for {n} rows"
    if got is not None and np.shape(got) == want.shape and not np.allclose(got, want):
        if np.allclose(got, want * n):
            raise Wrong(f"{what} is off by a factor of N = {n}: the loss is the mean over the N rows, so its "
                        "gradient is divided by N too")
        if np.allclose(got, UPSTREAM * p / n):
            raise Wrong(f"{what} is g softmax / N: the one-hot is missing; subtract 1 at each row's target class, "
                        "dL/dx_n = g (softmax(x_n) - onehot(t_n)) / N")
        lowest = np.argmin((np.asarray(got) - UPSTREAM * p / n), axis=1)
        if (lowest != target).any():
            row = int(np.flatnonzero(lowest != target)[0])
            raise Wrong(f"{what}: in row {row} the one-hot's 1 is subtracted at class {lowest[row]}, but that row's "
                        f"target is {target[row]}")
    compare(what, got, want)
    gradients_against_finite_differences(lambda t: ex.CrossEntropy.apply(t, target=target), [logits], ["logits"])


def framework_shaped(CrossEntropy):
    """The learner's CrossEntropy under the framework's signature (fused.CrossEntropy takes ignore_index too)."""
    class Adapter(CrossEntropy):
        def forward(self, logits, target, ignore_index=-100):
            if (target == ignore_index).any():
                raise Wrong("the GPT's targets hold ignored rows, which your CrossEntropy does not know about")
            return super().forward(logits, target)
    return Adapter


def check_in_a_gpt(ex):
    """a GPT trains with your CrossEntropy as its loss exactly as with the framework's"""
    steps = 6 if quick() else 30
    trains_as_the_framework("CrossEntropy", fused, "CrossEntropy", framework_shaped(ex.CrossEntropy), steps,
                            make_optimizer=plain_sgd)
