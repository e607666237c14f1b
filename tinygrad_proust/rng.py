"""Random numbers, reset together by manual_seed(seed).

Parameters are initialised from a NumPy generator on the host whatever the device, so a seed gives the same
weights on the CPU and the GPU.

Dropout masks come from a counter-based generator instead: the n-th mask drawn after manual_seed(seed) is a
hash of a counter (one 32-bit word for every two elements), keyed by (seed, n). The whole state is two
integers, so a checkpoint can save it and a resumed run draws exactly the masks a straight run would; and the
same integer arithmetic runs in NumPy and CuPy, so the CPU and the GPU draw the same masks, bit for bit (CuPy's
own generator has no state to save).
"""
import numpy as np

_host = None    # the NumPy generator for initialisation (created from the seed on first use)
_seed = 0
_draws = 0      # masks drawn since manual_seed: the counter of the counter-based generator


def manual_seed(seed):
    """Seed every generator (as torch.manual_seed)."""
    global _seed, _draws, _host
    _seed, _draws, _host = int(seed), 0, None


def generator():
    """The host (NumPy) generator, for initialising parameters."""
    global _host
    if _host is None:
        _host = np.random.default_rng(_seed)
    return _host


def _mix(value):
    """SplitMix64's finaliser: a well-spread 64-bit hash of a Python integer (used for the keys)."""
    value = (value + 0x9E3779B97F4A7C15) & 0xFFFFFFFFFFFFFFFF
    value = ((value ^ (value >> 30)) * 0xBF58476D1CE4E5B9) & 0xFFFFFFFFFFFFFFFF
    value = ((value ^ (value >> 27)) * 0x94D049BB133111EB) & 0xFFFFFFFFFFFFFFFF
    return value ^ (value >> 31)


def _hash32(x, scratch, xp):
    """An invertible hash of uint32 values, in place ("lowbias32": two xor-shift-multiply rounds); `scratch`, an
    array like x, holds the shifted copies."""
    for shift, multiplier in ((16, 0x7FEB352D), (15, 0x846CA68B), (16, None)):
        x ^= xp.right_shift(x, shift, out=scratch)
        if multiplier is not None:
            x *= xp.uint32(multiplier)
    return x


def random_uint16(xp, shape):
    """uint16 random values of `shape` on the device of `xp`. Draw n after manual_seed(seed) hashes counters
    keyed by (k1, k2) from (seed, n): word i = hash(hash(i + k1) ^ k2), 32 bits that give two elements
    (dropout needs no finer resolution than 2⁻¹⁶, and half the words is half the hashing). Each call is the next
    draw."""
    global _draws
    key = _mix(_mix(_seed) ^ _draws)
    _draws += 1
    count = 1
    for n in shape:
        count *= n
    x = xp.arange((count + 1) // 2, dtype=xp.uint32)
    scratch = xp.empty_like(x)
    x += xp.uint32(key & 0xFFFFFFFF)
    x = _hash32(x, scratch, xp)
    x ^= xp.uint32(key >> 32)
    return _hash32(x, scratch, xp).view(xp.uint16)[:count].reshape(shape)


def get_state():
    """Everything needed to continue the same random sequences (plain data, for checkpoints)."""
    return {"seed": _seed, "draws": _draws, "numpy": generator().bit_generator.state}


def set_state(state):
    global _draws
    manual_seed(state["seed"])
    _draws = state.get("draws", 0)
    generator().bit_generator.state = state["numpy"]
