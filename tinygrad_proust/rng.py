"""Random numbers, reset together by manual_seed(seed).

Parameters are initialised from a NumPy generator on the host whatever the device, so a seed gives the same
weights on the CPU and the GPU.

Dropout masks come from a counter-based generator instead: one stream of 32-bit words, word i a hash of the
counter i keyed by the seed, each mask taking the next words (one word gives two mask elements). The whole state
is two integers (the seed and the position in the stream), so a checkpoint can save it and a resumed run draws
exactly the masks a straight run would; and the same integer arithmetic runs in NumPy and CuPy, so the CPU and
the GPU draw the same masks, bit for bit (CuPy's own generator has no state to save). Every counter is used once,
so one round of a good 32-bit hash is enough: a mask costs one pass to count and eight to hash.
"""
import math

import numpy as np

_host = None    # the NumPy generator for initialisation (created from the seed on first use)
_seed = 0
_position = 0   # words of the mask stream used since manual_seed


def manual_seed(seed):
    """Seed every generator (as torch.manual_seed)."""
    global _seed, _position, _host
    _seed, _position, _host = int(seed), 0, None


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
    """uint16 random values of `shape` on the device of `xp`: the next (size + 1) // 2 words of the stream, each
    giving two values (dropout needs no finer resolution than 2⁻¹⁶)."""
    global _position
    count = math.prod(shape)
    words = _words(xp, _position, (count + 1) // 2)
    _position += words.size
    return words.view(xp.uint16)[:count].reshape(shape)


def _words(xp, start, count):
    """Words start .. start+count-1 of the stream: word i = hash(i mod 2³² + key), with a key from the seed and
    i // 2³² (a new key every 2³² words, so no counter repeats)."""
    pieces = []
    while count:
        epoch, offset = divmod(start, 2**32)
        take = min(count, 2**32 - offset)
        first = (offset + _mix(_mix(_seed) ^ epoch)) & 0xFFFFFFFF  # counter + key, wrapping as uint32 does
        if first + take <= 2**32:
            x = xp.arange(first, first + take, dtype=xp.uint32)
        else:  # the sum wraps inside this piece
            x = xp.arange(offset, offset + take, dtype=xp.uint32)
            x += xp.uint32(first - offset & 0xFFFFFFFF)
        pieces.append(_hash32(x, xp.empty_like(x), xp))
        start, count = start + take, count - take
    return pieces[0] if len(pieces) == 1 else xp.concatenate(pieces)


def get_state():
    """Everything needed to continue the same random sequences (plain data, for checkpoints)."""
    return {"seed": _seed, "position": _position, "numpy": generator().bit_generator.state}


def set_state(state):
    global _position
    manual_seed(state["seed"])
    _position = state.get("position", 0)  # a checkpoint from before the one stream has none: masks start afresh
    generator().bit_generator.state = state["numpy"]
