"""Primitive ops. Each is a Function: forward on arrays, backward on arrays, one screen apart at most.

Binary ops may broadcast; their backward returns the gradient at the broadcast shape and the engine
(Tensor.backward -> unbroadcast) sums it back to each input's shape, in that one place.
`g` is always dL/d(output); the comment above each backward is the derivative it applies.
"""
import math

import numpy as np

from .device import array_module, cupy_module, device_of, is_gpu_array, to_device
from .tensor import Function


# ================================================================================================
# elementwise
# ================================================================================================

class Add(Function):
    def forward(self, x, y):
        return x + y

    # d(x+y)/dx = 1, d(x+y)/dy = 1
    def backward(self, g):
        return g, g


class Sub(Function):
    def forward(self, x, y):
        return x - y

    # d(x-y)/dx = 1, d(x-y)/dy = -1
    def backward(self, g):
        return g, -g


class Mul(Function):
    def forward(self, x, y):
        self.x, self.y = x, y
        return x * y

    # d(xy)/dx = y, d(xy)/dy = x
    def backward(self, g):
        return g * self.y, g * self.x


class Div(Function):
    def forward(self, x, y):
        self.x, self.y = x, y
        return x / y

    # d(x/y)/dx = 1/y, d(x/y)/dy = -x/y²
    def backward(self, g):
        gx = g / self.y
        return gx, -gx * self.x / self.y


class Neg(Function):
    def forward(self, x):
        return -x

    def backward(self, g):
        return -g


class Pow(Function):
    """x ** y elementwise: y a tensor (a second parent) or a constant `exponent`."""

    def forward(self, x, y=None, exponent=None):
        self.x, self.y = x, (exponent if y is None else y)
        self.out = self.xp.power(x, self.y)
        return self.out

    # d/dx = y x^(y-1), 0 where y = 0 (x^0 is constant, at x = 0 too);  d/dy = x^y ln x, 0 where x = 0 <= y
    def backward(self, g):
        xp = self.xp
        with np.errstate(divide="ignore", invalid="ignore"):
            if len(self.parents) == 1:  # a constant exponent: a Python number, decided here, not on the device
                return xp.zeros_like(g) if self.y == 0 else g * self.y * self.x ** (self.y - 1)
            dx = xp.where(self.y == 0, g.dtype.type(0), g * self.y * self.x ** (self.y - 1))
            return dx, xp.where((self.x == 0) & (self.y >= 0), g.dtype.type(0), g * self.out * xp.log(self.x))


class Exp(Function):
    def forward(self, x):
        self.y = self.xp.exp(x)
        return self.y

    # d exp(x) = exp(x) = y
    def backward(self, g):
        return g * self.y


class Log(Function):
    def forward(self, x):
        self.x = x
        return self.xp.log(x)

    # d ln x = 1/x
    def backward(self, g):
        return g / self.x


class Sqrt(Function):
    def forward(self, x):
        self.y = self.xp.sqrt(x)
        return self.y

    # d sqrt(x) = 1 / (2 sqrt(x))
    def backward(self, g):
        return g / (2 * self.y)


class Rsqrt(Function):
    def forward(self, x):
        self.y = 1 / self.xp.sqrt(x)
        return self.y

    # d x^(-1/2) = -1/2 x^(-3/2) = -y³/2
    def backward(self, g):
        return g * (-0.5 * self.y ** 3)


class Abs(Function):
    def forward(self, x):
        self.x = x
        return abs(x)

    # d |x| = sign(x)
    def backward(self, g):
        return g * self.xp.sign(self.x)


class Tanh(Function):
    def forward(self, x):
        self.y = self.xp.tanh(x)
        return self.y

    # d tanh = 1 - y²
    def backward(self, g):
        return g * (1 - self.y * self.y)


class Sigmoid(Function):
    def forward(self, x):
        self.y = sigmoid_array(x)
        return self.y

    # d σ = σ (1 - σ)
    def backward(self, g):
        return g * self.y * (1 - self.y)


class Sin(Function):
    def forward(self, x):
        self.x = x
        return self.xp.sin(x)

    # d sin = cos
    def backward(self, g):
        return g * self.xp.cos(self.x)


class Cos(Function):
    def forward(self, x):
        self.x = x
        return self.xp.cos(x)

    # d cos = -sin
    def backward(self, g):
        return -g * self.xp.sin(self.x)


class Erf(Function):
    def forward(self, x):
        self.x = x
        return erf(x)

    # d erf(x) = 2/sqrt(π) exp(-x²)
    def backward(self, g):
        return g * self.xp.exp(-self.x * self.x) * (2 / math.sqrt(math.pi))


class Maximum(Function):
    """max(a, b) elementwise (NaN if either is NaN)."""

    def forward(self, a, b):
        self.a, self.b = a, b
        return self.xp.maximum(a, b)

    # the larger input gets g; where they are equal each gets g/2; a NaN on either side: both get g (PyTorch's)
    def backward(self, g):
        xp, a, b, half = self.xp, self.a, self.b, g.dtype.type(0.5)
        nan = xp.isnan(a) | xp.isnan(b)
        return (g * xp.where(a == b, half, ((a > b) | nan).astype(g.dtype)),
                g * xp.where(a == b, half, ((a < b) | nan).astype(g.dtype)))


class Fmod(Function):
    """fmod(a, b) = a - trunc(a/b) b, with the sign of a: C's fmod, exact in floating point."""

    def forward(self, a, b):
        self.a, self.b = a, b
        return self.xp.fmod(a, _nonzero_integers(b))

    # d/da = 1, d/db = -trunc(a/b): constant between the jumps (where a/b is a whole number)
    def backward(self, g):
        return g, -g * self.xp.trunc(self.a / self.b)


class FloorDivide(Function):
    """a // b: the quotient rounded down, toward -inf (Python's // and PyTorch's floor_divide)."""

    def forward(self, a, b):
        return self.xp.floor_divide(a, _nonzero_integers(b))

    # a staircase: 0 between the steps, undefined at them. PyTorch defines no gradient and backward through it is
    # an error there; here too, rather than a silent 0
    def backward(self, g):
        raise RuntimeError("floor_divide (//) has no gradient, as in PyTorch: detach() its inputs where the quotient "
                           "is meant as a constant")


def _nonzero_integers(divisor):
    """An integer divisor with a 0 in it is an error, as in PyTorch (NumPy gives 0 and a warning). Checked on the CPU
    only, as check_ids: on the GPU it would make the step wait for the device."""
    if divisor.dtype.kind in "iu" and not is_gpu_array(divisor) and (divisor == 0).any():
        raise ZeroDivisionError("integer division or remainder by zero")
    return divisor


class Relu(Function):
    def forward(self, x):
        out = self.xp.maximum(x, 0)  # not x · (x > 0): -inf · 0 is NaN, and a negative would give -0
        self.positive = out != 0     # x > 0, and NaN (which passes its gradient, as PyTorch's)
        return out

    # d relu = 1 where x > 0 (or NaN), else 0
    def backward(self, g):
        return g * self.positive


class Silu(Function):
    """silu(x) = x σ(x) (also called swish)."""

    def forward(self, x):
        self.x, self.s = x, sigmoid_array(x)
        return x * self.s

    # d (x σ) = σ + x σ (1 - σ) = σ (1 + x (1 - σ))
    def backward(self, g):
        return g * self.s * (1 + self.x * (1 - self.s))


class Gelu(Function):
    """gelu(x) = x Φ(x), Φ the standard normal CDF.
    approximate='tanh' uses Φ(x) ≈ (1 + tanh(u)) / 2 with u = sqrt(2/π) (x + 0.044715 x³) (GPT-2's form), written
    σ(2u) = 1 / (1 + e^(-2u)), the same number. This is the formula; fused.GeluTanh computes the tanh form in
    fewer passes (and on a GPU in one compiled kernel), and is what F.gelu uses."""

    def forward(self, x, approximate="none"):
        if approximate not in ("none", "tanh"):
            raise ValueError(f"Gelu: approximate must be 'none' or 'tanh', got {approximate!r}")
        self.x, self.approximate = x, approximate
        if approximate == "tanh":
            with np.errstate(over="ignore"):  # e^(-2u) = inf far left of 0 gives σ = 0, the right limit
                self.cdf = 1 / (1 + self.xp.exp(-2 * _SQRT_2_OVER_PI * (x + 0.044715 * x ** 3)))
        else:
            self.cdf = 0.5 * (1 + erf(x / math.sqrt(2)))
        return x * self.cdf

    # exact: d (x Φ) = Φ + x φ(x), φ(x) = exp(-x²/2) / sqrt(2π)
    # tanh:  d (x σ(2u)) = s + x · 2 s (1 - s) · u',  s = σ(2u), u' = sqrt(2/π) (1 + 3·0.044715 x²)
    def backward(self, g):
        x, s = self.x, self.cdf
        if self.approximate == "tanh":
            return g * (s + x * 2 * s * (1 - s) * _SQRT_2_OVER_PI * (1 + 3 * 0.044715 * x * x))
        return g * (s + x * self.xp.exp(-0.5 * x * x) * (1 / math.sqrt(2 * math.pi)))


class Dropout(Function):
    """y = x ⊙ m for a constant mask m (0 where an element is dropped, 1/(1-p) where it is kept: see
    functional.dropout). A Mul would also compute the mask's gradient, g ⊙ x, and throw it away."""

    def forward(self, x, mask):
        self.mask = mask
        return x * mask

    # d(x m)/dx = m
    def backward(self, g):
        return g * self.mask


class MaskedFill(Function):
    def forward(self, x, mask, value):
        self.mask = mask
        return self.xp.where(mask, self.xp.asarray(value, dtype=x.dtype), x)

    # filled places are constants: no gradient reaches x there
    def backward(self, g):
        return self.xp.where(self.mask, self.xp.zeros((), dtype=g.dtype), g)


class Where(Function):
    """where(condition, x, y): x where condition holds, else y."""

    def forward(self, x, y, condition):
        self.condition = condition
        return self.xp.where(condition, x, y)

    def backward(self, g):
        xp = self.xp
        zero = xp.zeros((), dtype=g.dtype)
        return xp.where(self.condition, g, zero), xp.where(self.condition, zero, g)


class Cast(Function):
    def forward(self, x, dtype):
        self.in_dtype = x.dtype
        return x.astype(dtype)

    def backward(self, g):
        return g.astype(self.in_dtype)


class ToDevice(Function):
    """Copy to another device; the gradient is copied back."""

    def forward(self, x, device):
        self.in_device = device_of(x)
        return to_device(x, device)

    def backward(self, g):
        return to_device(g, self.in_device)


# ================================================================================================
# reductions
# ================================================================================================

class Sum(Function):
    def forward(self, x, dim=None, keepdim=False):
        self.in_shape, self.axes, self.keepdim = x.shape, _axes(dim, x.ndim), keepdim
        return x.sum(axis=self.axes, keepdims=keepdim)

    # each input element contributes once: copy g back over the summed axes
    def backward(self, g):
        if not self.keepdim:
            g = self.xp.expand_dims(g, self.axes)
        return self.xp.broadcast_to(g, self.in_shape)


class CumSum(Function):
    def forward(self, x, dim):
        self.dim = dim
        return self.xp.cumsum(x, axis=dim)

    # y_i = Σ_{j<=i} x_j, so dx_j = Σ_{i>=j} g_i: a cumulative sum from the end
    def backward(self, g):
        return _reversed_cumsum(g, self.dim)


class CumProd(Function):
    def forward(self, x, dim):
        self.x, self.dim = x, dim
        self.y = self.xp.cumprod(x, axis=dim)
        return self.y

    # y_i = Π_{j<=i} x_j, so dx_k = Σ_{i>=k} g_i Π_{j<=i, j≠k} x_j. Before the first zero along dim that is
    # Σ_{i>=k} g_i y_i / x_k; at the first zero, Σ_{i>=k} g_i y_i with that zero taken as 1 (no division by it);
    # past it, every product holds the first zero: 0. (Σ g y / x everywhere would divide by the zeros.)
    def backward(self, g):
        xp, x, dim = self.xp, self.x, self.dim
        zeros_so_far = xp.cumsum(x == 0, axis=dim)
        before, first = zeros_so_far == 0, (zeros_so_far == 1) & (x == 0)
        one, zero = x.dtype.type(1), g.dtype.type(0)
        before_zero = _reversed_cumsum(g * self.y, dim) / xp.where(before, x, one)
        at_zero = _reversed_cumsum(g * xp.cumprod(xp.where(first, one, x), axis=dim), dim)
        return xp.where(before, before_zero, xp.where(first, at_zero, zero))


class Mean(Function):
    def forward(self, x, dim=None, keepdim=False):
        self.in_shape, self.axes, self.keepdim = x.shape, _axes(dim, x.ndim), keepdim
        self.count = math.prod(x.shape[a] for a in self.axes)
        return x.mean(axis=self.axes, keepdims=keepdim)

    # d mean / d x_i = 1/N
    def backward(self, g):
        if not self.keepdim:
            g = self.xp.expand_dims(g, self.axes)
        return self.xp.broadcast_to(g * (1 / max(self.count, 1)), self.in_shape)  # no elements: an empty gradient


class Max(Function):
    """Largest value along `dim` (or overall). Along one dim (an int: max(dim)) the gradient goes to the first
    arg-max only; overall or over a tuple of dims (amax) it is split evenly between tied maxima (as PyTorch does
    for each)."""

    def forward(self, x, dim=None, keepdim=False):
        xp = self.xp
        self.in_shape, self.dim, self.keepdim = x.shape, dim, keepdim
        if dim is None or isinstance(dim, tuple):
            self.axes = _axes(dim, x.ndim)
            out = x.max(axis=self.axes, keepdims=True)
            ties = (x == out) | (xp.isnan(x) & xp.isnan(out))  # a NaN maximum: the NaNs share it
            self.share = ties / ties.sum(axis=self.axes, keepdims=True, dtype=x.dtype)  # 1/k at each of k maxima
            return out if keepdim else out.squeeze(self.axes)
        self.index = xp.expand_dims(x.argmax(axis=dim), dim)
        out = xp.take_along_axis(x, self.index, axis=dim)
        return out if keepdim else out.squeeze(dim)

    def backward(self, g):
        xp = self.xp
        if self.dim is None or isinstance(self.dim, tuple):
            return (self.share * (g if self.keepdim else xp.expand_dims(g, self.axes))).astype(g.dtype, copy=False)
        if not self.keepdim:
            g = xp.expand_dims(g, self.dim)
        dim = self.dim % len(self.in_shape)
        positions = xp.arange(self.in_shape[dim]).reshape((-1,) + (1,) * (len(self.in_shape) - dim - 1))
        return xp.where(positions == self.index, g, xp.zeros((), dtype=g.dtype))


# ================================================================================================
# movement (views: no arithmetic, the gradient is moved back the same way)
# ================================================================================================

class Reshape(Function):
    def forward(self, x, shape):
        self.in_shape = x.shape
        try:
            return x.reshape(shape)
        except ValueError:
            raise ValueError(f"Reshape: cannot view shape {x.shape} ({x.size} elements) as {shape}") from None

    def backward(self, g):
        return g.reshape(self.in_shape)


class Transpose(Function):
    def forward(self, x, dim0, dim1):
        self.dim0, self.dim1 = dim0, dim1
        return x.swapaxes(dim0, dim1)

    def backward(self, g):
        return g.swapaxes(self.dim0, self.dim1)


class Permute(Function):
    def forward(self, x, dims):
        if sorted(d % x.ndim for d in dims) != list(range(x.ndim)):
            raise ValueError(f"Permute: dims {dims} are not a permutation of the {x.ndim} dims of shape {x.shape}")
        self.dims = dims
        return x.transpose(dims)

    # undo the permutation with its inverse
    def backward(self, g):
        return g.transpose(tuple(np.argsort([d % g.ndim for d in self.dims])))


class Expand(Function):
    def forward(self, x, shape):
        shape = tuple(x.shape[i - (len(shape) - x.ndim)] if n == -1 else n for i, n in enumerate(shape))
        try:
            return self.xp.broadcast_to(x, shape)
        except ValueError:
            raise ValueError(f"Expand: cannot expand shape {x.shape} to {shape}") from None

    # the engine's unbroadcast sums g back to the input's shape
    def backward(self, g):
        return g


class GetItem(Function):
    """x[index]: slices, integers, None, and integer/boolean arrays (advanced indexing)."""

    def forward(self, x, index):
        self.in_shape, self.index = x.shape, index
        return x[index]

    # scatter g back to where the values came from; an index repeated k times receives k
    # contributions, so it must be a scatter-ADD (ufunc.at), not an assignment
    def backward(self, g):
        gx = self.xp.zeros(self.in_shape, dtype=g.dtype)
        self.backward_into(g, gx)
        return gx

    def region(self):
        """(dim, start, stop) when x[index] is the places start..stop-1 of one dim and all of every other, by slices
        (a piece of split or chunk, x[:, 2:5]), else None: the walk joins pieces that tile x by one concatenation."""
        index = self.index if isinstance(self.index, tuple) else (self.index,)
        if not all(isinstance(part, slice) for part in index):
            return None
        cuts = [(dim, *bounds) for dim, (part, n) in enumerate(zip(index, self.in_shape))
                if (bounds := part.indices(n)) != (0, n, 1)]
        if len(cuts) != 1 or cuts[0][3] != 1:
            return None
        dim, start, stop, _ = cuts[0]
        return dim, start, max(start, stop)

    # the same, added into a gradient the walk already holds for x (the other slices' share)
    def backward_into(self, g, gx):
        if _has_array(self.index):
            _scatter_add(gx, self.index, g)
            return
        part = gx[self.index] if _is_basic(self.index) else None
        if isinstance(part, self.xp.ndarray):  # a view of gx: add in it (`gx[index] += g` would copy it back)
            self.xp.add(part, g, out=part)
        else:  # one element (NumPy gives a number), a bool or a 0-d array (NumPy gives a copy): each place once
            gx[self.index] += g


class Scatter(Function):
    """src written (accumulate=False) or added (True: places `index` repeats add up) into zeros of `shape`, at
    `index`, an advanced index of src's shape (scatter, scatter_add): GetItem the other way round."""

    def forward(self, src, index, shape, accumulate):
        self.index = index
        out = self.xp.zeros(shape, dtype=src.dtype)
        if accumulate:
            _scatter_add(out, index, src)
        else:
            out[index] = src
        return out

    # each src entry went to one place of the output: its gradient is read back from there
    def backward(self, g):
        return g[self.index]


class Einsum(Function):
    """xp.einsum(equation, *operands), e.g. "bhqd,bhkd->bhqk". Backward for operand i: the same contraction of g
    with the other operands, written back to operand i's subscripts (broadcast along any letter only it has)."""

    def forward(self, *operands, equation):
        inputs, self.output = _einsum_subscripts(equation, operands)
        self.inputs, self.operands = inputs, operands
        return self.xp.einsum(f"{','.join(inputs)}->{self.output}", *operands)

    def backward(self, g):
        xp, grads = self.xp, []
        for i, (subscripts, x) in enumerate(zip(self.inputs, self.operands)):
            others = [s for j, s in enumerate(self.inputs) if j != i]
            kept = "".join(c for c in subscripts if c in self.output or any(c in s for s in others))
            terms = ",".join([self.output, *others])
            grad = xp.einsum(f"{terms}->{kept}", g, *(o for j, o in enumerate(self.operands) if j != i))
            broadcast = tuple(a for a, c in enumerate(kept) if x.shape[subscripts.index(c)] == 1 < grad.shape[a])
            grad = grad.sum(axis=broadcast, keepdims=True) if broadcast else grad
            grad = grad.reshape(tuple(n if c in kept else 1 for c, n in zip(subscripts, x.shape)))
            grads.append(xp.broadcast_to(grad, x.shape))
        return tuple(grads)


def _einsum_subscripts(equation, operands):
    """(one subscript string per operand, the output's), "..." spelt out as letters and the output made explicit
    when the equation has no "->" (NumPy's implicit rule: the letters that appear once, in order)."""
    equation = equation.replace(" ", "")
    left, arrow, output = equation.partition("->")
    inputs = left.split(",")
    if len(inputs) != len(operands):
        raise ValueError(f"Einsum: {equation!r} names {len(inputs)} operands, got {len(operands)}")
    spare = [c for c in "ABCDEFGHIJKLMNOPQRSTUVWXYZ" if c not in equation]
    width = max([x.ndim - len(s.replace("...", "")) for s, x in zip(inputs, operands) if "..." in s], default=0)
    ellipsis = "".join(spare[:width])
    inputs = [s.replace("...", ellipsis[len(ellipsis) - (x.ndim - len(s) + 3):] if "..." in s else "")
              for s, x in zip(inputs, operands)]
    letters = "".join(inputs)
    output = output.replace("...", ellipsis) if arrow else ellipsis + "".join(
        sorted(c for c in set(letters) if letters.count(c) == 1 and c not in ellipsis))
    for s, x in zip(inputs, operands):
        if len(s) != x.ndim or len(set(s)) != len(s):
            raise ValueError(f"Einsum: subscripts {s!r} for an operand of shape {x.shape} (one letter per dim; a "
                             "letter repeated within an operand, a diagonal, is not supported)")
    return inputs, output


class Cat(Function):
    def forward(self, *arrays, dim=0):
        self.dim, self.sizes = dim, [a.shape[dim] for a in arrays]
        try:
            return self.xp.concatenate(arrays, axis=dim)
        except ValueError:
            raise ValueError(f"Cat: shapes {[a.shape for a in arrays]} do not match outside dim {dim}") from None

    # each input gets its own slice of g
    def backward(self, g):
        bounds = np.cumsum(self.sizes)[:-1].tolist()
        return tuple(self.xp.split(g, bounds, axis=self.dim))


class Tril(Function):
    def forward(self, x, diagonal=0):
        self.diagonal = diagonal
        return self.xp.tril(x, diagonal)

    def backward(self, g):
        return self.xp.tril(g, self.diagonal)


class Triu(Function):
    def forward(self, x, diagonal=0):
        self.diagonal = diagonal
        return self.xp.triu(x, diagonal)

    def backward(self, g):
        return self.xp.triu(g, self.diagonal)


# ================================================================================================
# matmul
# ================================================================================================

class Matmul(Function):
    """x @ y with batch dims broadcast. A 2-D y (a weight) is one 2-D GEMM over the flattened batch."""

    def forward(self, x, y):
        if x.shape[-1] != y.shape[-2]:
            raise ValueError(f"Matmul: shapes {x.shape} @ {y.shape}: inner dims {x.shape[-1]} != {y.shape[-2]}")
        self.x, self.y = x, y
        if y.ndim == 2 and x.ndim > 2:  # (B, T, C) @ (C, D) as one (B*T, C) @ (C, D)
            return (x.reshape(-1, x.shape[-1]) @ y).reshape(x.shape[:-1] + (y.shape[-1],))
        try:
            return x @ y
        except ValueError:
            raise ValueError(f"Matmul: batch dims of {x.shape} and {y.shape} do not broadcast") from None

    # d(xy)/dx = g yᵀ, d(xy)/dy = xᵀ g (broadcast batch dims are summed by the engine)
    def backward(self, g):
        x, y = self.x, self.y
        gx = g @ y.swapaxes(-1, -2)
        if y.ndim == 2 and x.ndim > 2:
            gy = x.reshape(-1, x.shape[-1]).T @ g.reshape(-1, g.shape[-1])
        else:
            gy = x.swapaxes(-1, -2) @ g
        return gx, gy


# ================================================================================================
# helpers
# ================================================================================================

_SQRT_2_OVER_PI = math.sqrt(2 / math.pi)


def sigmoid_array(x):
    """σ(x) = 1 / (1 + e^-x). For x below about -88 (float32), e^-x overflows to inf and σ = 1/inf = 0,
    which is the right limit, so the overflow warning is silenced rather than avoided with extra passes."""
    xp = array_module(x)
    with np.errstate(over="ignore"):
        y = xp.negative(x, out=xp.empty_like(x))  # a new array, also for a 0-d x (where NumPy gives a scalar)
        xp.exp(y, out=y)
        y += 1
        return xp.reciprocal(y, out=y)


def erf(x):
    """The error function, elementwise, in x's dtype: CuPy's kernel on the GPU; SciPy's when installed;
    else math.erf per element (exact, slow: fine for tests, use gelu(approximate='tanh') for speed)."""
    if array_module(x) is not np:
        import cupyx.scipy.special
        cupy_module()
        return cupyx.scipy.special.erf(x)
    try:
        from scipy.special import erf as scipy_erf
        return scipy_erf(x).astype(x.dtype)
    except ImportError:
        return np.vectorize(math.erf, otypes=[x.dtype])(x)


def _axes(dim, ndim):
    """A tuple of non-negative axes from dim=None | int | tuple."""
    if dim is None:
        return tuple(range(ndim))
    dims = (dim,) if isinstance(dim, int) else tuple(dim)
    for d in dims:  # a 0-d tensor takes dim 0 or -1, as in PyTorch: there is nothing to reduce or squeeze
        if not -max(ndim, 1) <= d < max(ndim, 1):
            raise IndexError(f"dim {d} is out of range for a tensor with {ndim} dims")
    return tuple(sorted(d % ndim for d in dims)) if ndim else ()


def _reversed_cumsum(a, dim):
    """Σ_{i>=j} a_i at each j along dim: the cumulative sum from the end."""
    backwards = (slice(None),) * (dim % a.ndim) + (slice(None, None, -1),)
    return array_module(a).cumsum(a[backwards], axis=dim)[backwards]


def check_ids(what, ids, count, ignore_index=None):
    """Every id must be in [0, count) (or equal ignore_index): a negative id would silently pick a row from the end.
    Checked on the CPU only: on the GPU it would make every step wait for the device (CuPy does not check either:
    an id out of range wraps around there, so check ids on the host before they go to the GPU)."""
    if is_gpu_array(ids) or ids.size == 0:
        return
    counted = ids if ignore_index is None else ids[ids != ignore_index]
    if not counted.size:
        return
    low, high = counted.min(), counted.max()
    if low < 0 or high >= count:
        raise IndexError(f"{what} {int(low if low < 0 else high)} is out of range: ids must be in [0, {count})"
                         + (f" or {ignore_index} (ignored)" if ignore_index is not None else ""))


def _has_array(index):
    parts = index if isinstance(index, tuple) else (index,)
    return any(hasattr(p, "shape") and getattr(p, "ndim", 0) > 0 or isinstance(p, list) for p in parts)


def _is_basic(index):
    """Slices, integers, None and Ellipsis only: x[index] is a view of x (or, NumPy's, one element's number)."""
    return all(p is None or p is Ellipsis or isinstance(p, slice) or isinstance(p, (int, np.integer))
               and not isinstance(p, (bool, np.bool_)) for p in (index if isinstance(index, tuple) else (index,)))


def _scatter_add(target, index, values):
    """target[index] += values, with repeated indices adding up (NumPy and CuPy both have ufunc.at)."""
    array_module(target).add.at(target, index, values)
