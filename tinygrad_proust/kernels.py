"""Compiled GPU kernels: one launch where the plain path takes many, each defined by that plain path.

On a GPU a small model's step is bound by kernel launches (see device.launch_bound), and each CuPy call is one.
A kernel here does in one launch what a sequence of CuPy calls elsewhere does in several, with the same
arithmetic in the same order; that sequence stays in the code as the reference, runs on the CPU (and wherever
these kernels are off), and is what the GPU tests compare each kernel with:

    keep_mask   the dropout mask: hash, compare and scale in one pass   (reference: functional._keep_mask with
                rng.random_uint16; 12 launches a mask; integer math, so equal bit for bit)
    adam        one Adam/AdamW step of a whole parameter group           (reference: optim.Adam.update; 12
                launches a group; the same float operations, each rounded as CuPy's own kernels round them)
    gelu_tanh, gelu_tanh_backward
                GELU's tanh form and its derivative               (reference: fused.GeluTanh's lines; 8 and 9
                launches; the same operations in the same order: equal bit for bit)
    attention_softmax, attention_softmax_backward
                attention's softmax (causal mask and dropout included) and its backward, a row a warp
                (reference: the plain lines of fused.ScaledDotProductAttention; 7 and 4 launches; each row's
                sum taken in another order than CuPy's, so equal within float rounding, not bit for bit)

The source is compiled by CuPy (NVRTC) on first use, once per dtype (`scalar_t` is float or double), with
`--fmad=false`: a multiply followed by an add stays two roundings, as in the separate kernels of the reference,
instead of one fused multiply-add. The suite compiles the same source with nvcc for a T4 (sm_75) and an H100/H200
(sm_90), so an edit that breaks it fails on a machine without a GPU.
"""
import math

import numpy as np

from . import rng

SOURCE = r"""
// i over 0 .. n-1 in a grid-stride loop: any grid covers any n
#define FOR_EACH(i, n) \
  for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < (n); i += (long long)blockDim.x * gridDim.x)

// word i of the dropout stream is lowbias32(first + i, key_high) (see rng.py); each word gives two 16-bit
// values, low half first (as NumPy's uint16 view of a little-endian uint32); element j is kept (set to `scale`)
// when its value is >= threshold, else 0.
extern "C" __global__ void keep_mask(scalar_t* mask, unsigned int first, unsigned int key_high,
                                     unsigned int threshold, scalar_t scale, long long n) {
    FOR_EACH(j, n) {
        unsigned int x = first + (unsigned int)(j >> 1);
        x ^= x >> 16; x *= 0x7FEB352Du; x ^= key_high;
        x ^= x >> 15; x *= 0x846CA68Bu; x ^= x >> 16;
        unsigned int value = (j & 1) ? (x >> 16) : (x & 0xFFFFu);
        mask[j] = value >= threshold ? scale : (scalar_t)0;
    }
}

// one Adam step, in optim.Adam.update's order: decay (decoupled: p *= 1 - lr wd; else g += wd p), m = beta1 m +
// (1 - beta1) g, v = beta2 v + (1 - beta2) g g, p -= (lr / bias1) m / (sqrt(v) / sqrt(bias2) + eps).
extern "C" __global__ void adam(scalar_t* p, const scalar_t* g, scalar_t* m, scalar_t* v, scalar_t beta1,
                                scalar_t one_minus_beta1, scalar_t beta2, scalar_t one_minus_beta2,
                                scalar_t inv_sqrt_bias2, scalar_t eps, scalar_t step_size, scalar_t decay, scalar_t l2,
                                long long n) {
    FOR_EACH(i, n) {
        scalar_t param = p[i], grad = g[i];
        if (decay != (scalar_t)1) param *= decay;
        if (l2 != (scalar_t)0) grad = grad + l2 * param;
        scalar_t m_i = m[i] * beta1 + grad * one_minus_beta1;
        scalar_t v_i = v[i] * beta2 + (grad * grad) * one_minus_beta2;
        m[i] = m_i; v[i] = v_i;
        scalar_t denominator = sqrt(v_i) * inv_sqrt_bias2 + eps;
        p[i] = param - (m_i / denominator) * step_size;
    }
}

// one warp (32 threads) a row of n scores, in place: the softmax over the keys a query may see (causal: key j <= the
// query's index i = row mod t_query, aligned top-left; else all n), 0 for the rest; then, with a dropout mask,
// dropped = p * keep.
// As fused.ScaledDotProductAttention's plain lines: subtract the row's max, exp, divide by the row's sum.
extern "C" __global__ void attention_softmax(scalar_t* p, scalar_t* dropped, const scalar_t* keep, long long rows,
                                             int n, int t_query, int causal) {
    long long row = (blockIdx.x * (long long)blockDim.x + threadIdx.x) / 32;
    int lane = threadIdx.x % 32;
    if (row >= rows) return;  // the whole warp: one row each
    scalar_t* x = p + row * n;
    int end = causal ? min((int)(row % t_query) + 1, n) : n;
    scalar_t most = x[0], sum = 0;
    for (int j = lane; j < end; j += 32) most = max(most, x[j]);
    for (int o = 16; o > 0; o /= 2) most = max(most, __shfl_xor_sync(0xffffffffu, most, o));
    for (int j = lane; j < n; j += 32) {
        scalar_t e = j < end ? exp(x[j] - most) : (scalar_t)0;
        x[j] = e; sum += e;
    }
    for (int o = 16; o > 0; o /= 2) sum += __shfl_xor_sync(0xffffffffu, sum, o);
    for (int j = lane; j < n; j += 32) {
        x[j] /= sum;
        if (keep) dropped[row * n + j] = x[j] * keep[row * n + j];
    }
}

// its backward, one warp a row, in place on dp (G Vᵀ): with a dropout mask dp *= keep; then
// ds = p * (dp - rowsum(dp * p)).
extern "C" __global__ void attention_softmax_backward(scalar_t* dp, const scalar_t* p, const scalar_t* keep,
                                                      long long rows, int n) {
    long long row = (blockIdx.x * (long long)blockDim.x + threadIdx.x) / 32;
    int lane = threadIdx.x % 32;
    if (row >= rows) return;
    scalar_t* d = dp + row * n;
    const scalar_t* pr = p + row * n;
    scalar_t dot = 0;
    for (int j = lane; j < n; j += 32) {
        if (keep) d[j] *= keep[row * n + j];
        dot += d[j] * pr[j];
    }
    for (int o = 16; o > 0; o /= 2) dot += __shfl_xor_sync(0xffffffffu, dot, o);
    for (int j = lane; j < n; j += 32) d[j] = (d[j] - dot) * pr[j];
}

// GELU, tanh form, as fused.GeluTanh's plain lines: cdf = 1 / (1 + exp((c2 + c1 x²) x)) = σ(2u), y = x cdf
// (c1 = -2 sqrt(2/π) 0.044715, c2 = -2 sqrt(2/π)); and its backward dx = g (cdf + 2 x u' cdf (1 - cdf)),
// 2 x u' = (c4 + c3 x²) x (c3 = 2 sqrt(2/π) 3 0.044715, c4 = 2 sqrt(2/π)). One pass each.
extern "C" __global__ void gelu_tanh(const scalar_t* x, scalar_t* cdf, scalar_t* y, scalar_t c1, scalar_t c2,
                                     long long n) {
    FOR_EACH(i, n) {
        scalar_t xi = x[i], s = xi * xi;
        s = (s * c1 + c2) * xi;
        s = (scalar_t)1 / (exp(s) + (scalar_t)1);
        cdf[i] = s; y[i] = xi * s;
    }
}

extern "C" __global__ void gelu_tanh_backward(const scalar_t* x, const scalar_t* cdf, const scalar_t* g,
                                              scalar_t* dx, scalar_t c3, scalar_t c4, long long n) {
    FOR_EACH(i, n) {
        scalar_t xi = x[i], s = cdf[i];
        scalar_t d = (xi * xi * c3 + c4) * xi;
        d = (d * (((scalar_t)1 - s) * s) + s) * g[i];
        dx[i] = d;
    }
}
"""
TYPES = {np.dtype(np.float32): "float", np.dtype(np.float64): "double"}
OPTIONS = ("--fmad=false",)
THREADS = 256

enabled = True   # False: the plain paths everywhere (to compare, or to step through on a GPU)
_modules = {}    # dtype -> the compiled module


def available(xp, dtype):
    """Whether arrays of `dtype` from the array module `xp` can take these kernels: a CuPy with RawModule (any real
    one, and the test suite's stand-in, which runs each kernel's NumPy twin), float32 or float64; not NumPy."""
    return enabled and xp is not np and np.dtype(dtype) in TYPES and hasattr(xp, "RawModule")


def _function(xp, name, dtype):
    if dtype not in _modules:
        _modules[dtype] = xp.RawModule(code=SOURCE, options=(*OPTIONS, f"-Dscalar_t={TYPES[dtype]}"))
    return _modules[dtype].get_function(name)


def _launch(xp, name, n, *args):
    blocks = max(1, min((n + THREADS - 1) // THREADS, 4096))
    _function(xp, name, args[0].dtype)((blocks,), (THREADS,), (*args, np.int64(n)))


def keep_mask(xp, shape, threshold, scale, dtype):
    """functional._keep_mask in one launch, on the dropout stream's next words (advanced as rng.random_uint16
    advances it); None where these kernels are not available, or the words span two keys: the plain path then."""
    if not available(xp, dtype) or (words := rng.claim_words((math.prod(shape) + 1) // 2)) is None:
        return None
    mask = xp.empty(shape, dtype=dtype)
    _launch(xp, "keep_mask", mask.size, mask, *map(np.uint32, (*words, threshold)), dtype.type(scale))
    return mask


def adam(xp, p, g, m, v, beta1, beta2, eps, lr, bias1, bias2, decoupled_decay, l2):
    """optim.Adam.update in one launch, on contiguous arrays of one dtype, p, m and v in place."""
    t = p.dtype.type
    decay = 1 - lr * decoupled_decay if decoupled_decay else 1.0
    _launch(xp, "adam", p.size, p, g, m, v, t(beta1), t(1 - beta1), t(beta2), t(1 - beta2),
            t(1 / np.sqrt(bias2)), t(eps), t(lr / bias1), t(decay), t(l2))


def attention_softmax(xp, p, keep, causal):
    """In place on the scores p (..., T, n), C-contiguous: their softmax over the keys (causal: key j <= query i);
    returns p, or p * keep when there is a dropout mask. None where these kernels are not available."""
    if not available(xp, p.dtype) or not p.flags.c_contiguous or keep is not None and (keep.shape, keep.dtype) != (
            p.shape, p.dtype):  # the kernel reads the mask element for element, in p's dtype
        return None
    dropped = p if keep is None else xp.empty_like(p)
    rows = p.size // p.shape[-1]
    _rows(xp, "attention_softmax", rows, p, dropped, _contiguous(xp, keep), np.int64(rows),
          np.int32(p.shape[-1]), np.int32(p.shape[-2]), np.int32(causal))
    return dropped


def attention_softmax_backward(xp, dp, p, keep):
    """In place on dp = G Vᵀ: the scores' gradient dS = p ⊙ (dp' - rowsum(dp' ⊙ p)), dp' = dp ⊙ keep. False where
    these kernels are not available (nothing done)."""
    if not available(xp, dp.dtype) or not (dp.flags.c_contiguous and p.flags.c_contiguous) or p.dtype != dp.dtype \
            or keep is not None and (keep.shape, keep.dtype) != (dp.shape, dp.dtype):
        return False
    rows = dp.size // dp.shape[-1]
    _rows(xp, "attention_softmax_backward", rows, dp, p, _contiguous(xp, keep), np.int64(rows),
          np.int32(dp.shape[-1]))
    return True


def _contiguous(xp, keep):
    """The dropout mask as the kernels read it (C-contiguous), or a null pointer (0) for none."""
    return np.uint64(0) if keep is None else xp.ascontiguousarray(keep)


def _rows(xp, name, rows, *args):
    """Launch a row-a-warp kernel over `rows` rows."""
    warps = THREADS // 32
    _function(xp, name, args[0].dtype)(((rows + warps - 1) // warps,), (THREADS,), args)


def gelu_tanh(xp, x, c1, c2):
    """fused.GeluTanh in one launch: (cdf, y), or None where these kernels are not available."""
    if not available(xp, x.dtype) or not x.flags.c_contiguous or x.ndim == 0:
        return None
    t, cdf, y = x.dtype.type, xp.empty_like(x), xp.empty_like(x)
    _launch(xp, "gelu_tanh", x.size, x, cdf, y, t(c1), t(c2))
    return cdf, y


def gelu_tanh_backward(xp, x, cdf, g, c3, c4):
    """Its derivative times g in one launch, or None where these kernels are not available."""
    if not available(xp, g.dtype) or not (x.flags.c_contiguous and g.flags.c_contiguous) or g.ndim == 0:
        return None
    t, dx = g.dtype.type, xp.empty_like(g)
    _launch(xp, "gelu_tanh_backward", g.size, x, cdf, g, dx, t(c3), t(c4))
    return dx
