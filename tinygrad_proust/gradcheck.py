"""Gradient checking: compare backward() with central finite differences.

This is the numerical gradient a trainer without autograd would use, kept as the oracle:
    dL/dx_i ≈ (L(x + eps e_i) - L(x - eps e_i)) / (2 eps)       error O(eps²)
with L = Σ f(x) ⊙ r for a fixed random r, so every output element (not just their sum) is checked.
Run it in float64: in float32 the rounding error of L swamps the difference quotient.
"""
import numpy as np

from .tensor import Tensor, no_grad


class GradcheckError(AssertionError):
    pass


def gradcheck(fn, *inputs, eps=1e-6, atol=1e-5, rtol=1e-4, seed=0, raise_exception=True):
    """Check fn's analytic gradients against finite differences for every input that requires grad.

    fn(*inputs) must return a Tensor; inputs are Tensors (float64 to be meaningful), other arguments
    are passed through. Returns True, or raises GradcheckError naming the input, the element and both
    values (returns False instead when raise_exception=False).
    """
    checked = [t for t in inputs if isinstance(t, Tensor) and t.requires_grad]
    if not checked:
        raise ValueError("gradcheck: no input has requires_grad=True")
    for t in checked:
        if t.dtype != np.float64:
            raise ValueError(f"gradcheck: inputs should be float64 (got {t.dtype}); finite differences in "
                             "float32 are dominated by rounding")
        t.grad = None
        t.data = t.xp.ascontiguousarray(t.data)  # so that a flat view perturbs t itself

    out = fn(*inputs)
    r = np.random.default_rng(seed).standard_normal(out.shape)
    upstream = out.xp.asarray(r, dtype=out.dtype)
    out.backward(upstream)

    def loss():
        with no_grad():
            return float((fn(*inputs).data * upstream).sum())

    for n, t in enumerate(checked):
        analytic = np.zeros(t.shape) if t.grad is None else t.grad.numpy()
        numeric = np.zeros(t.shape)
        flat = t.data.reshape(-1)  # a view: perturbing it perturbs t
        for i in range(flat.size):
            original = flat[i].item()
            flat[i] = original + eps
            plus = loss()
            flat[i] = original - eps
            minus = loss()
            flat[i] = original
            numeric.reshape(-1)[i] = (plus - minus) / (2 * eps)
        bad = ~np.isclose(analytic, numeric, atol=atol, rtol=rtol)
        if bad.any():
            i = np.unravel_index(np.argmax(np.abs(analytic - numeric) * bad), t.shape)
            message = (f"gradcheck: input {n} (shape {t.shape}) element {tuple(int(j) for j in i)}: "
                       f"backward gives {analytic[i]:.8g}, finite differences {numeric[i]:.8g} "
                       f"({int(bad.sum())} of {bad.size} elements differ)")
            if raise_exception:
                raise GradcheckError(message)
            return False
    return True
