"""Compiled GPU kernels: one launch where the plain path takes many, each defined by that plain path.

On a GPU a small model's step is bound by kernel launches (see device.launch_bound), and each CuPy call is one.
A kernel here does in one launch what a sequence of CuPy calls elsewhere does in several, with the same
arithmetic in the same order; that sequence stays in the code as the reference, runs on the CPU (and wherever
these kernels are off), and is what the GPU tests compare each kernel with:

    keep_mask   the dropout mask: hash, compare and scale in one pass   (reference: functional._keep_mask with
                rng.random_uint16; 12 launches a mask; integer math, so equal bit for bit)
    adam        one Adam/AdamW step of a whole parameter group           (reference: optim.Adam.update; 12
                launches a group; the same float operations, each rounded as CuPy's own kernels round them)

The source is compiled by CuPy (NVRTC) on first use, once per dtype (`scalar_t` is float or double), with
`--fmad=false`: a multiply followed by an add stays two roundings, as in the separate kernels of the reference,
instead of one fused multiply-add. The
suite compiles the same source with nvcc for a T4 (sm_75) and an H100/H200 (sm_90), so an edit that breaks it
fails on a machine without a GPU.
"""
import math

import numpy as np

from . import rng

SOURCE = r"""
// word i of the dropout stream is lowbias32(first + i, key_high) (see rng.py); each word gives two 16-bit
// values, low half first (as NumPy's uint16 view of a little-endian uint32); element j is kept (set to `scale`)
// when its value is >= threshold, else 0.
extern "C" __global__ void keep_mask(scalar_t* mask, unsigned int first, unsigned int key_high,
                                     unsigned int threshold, scalar_t scale, long long n) {
    for (long long j = blockIdx.x * (long long)blockDim.x + threadIdx.x; j < n; j += (long long)blockDim.x * gridDim.x) {
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
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)blockDim.x * gridDim.x) {
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
"""
TYPES = {np.dtype(np.float32): "float", np.dtype(np.float64): "double"}
OPTIONS = ("--fmad=false",)
THREADS = 256

enabled = True   # False: the plain paths everywhere (to compare, or to step through on a GPU)
_modules = {}    # dtype -> the compiled module


def available(xp, dtype):
    """Whether arrays of `dtype` from the array module `xp` can take these kernels: a CuPy that compiles (any real
    one; not NumPy, nor a stand-in without a GPU), float32 or float64."""
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
