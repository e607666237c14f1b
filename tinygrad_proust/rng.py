"""Random numbers, reset together by manual_seed(seed).

Parameters are initialised from a NumPy generator on the host whatever the device, so a seed gives the same
weights on the CPU and the GPU.

Dropout masks come from a counter-based generator instead: one stream of 32-bit words, word i a hash of the
counter i keyed by the seed, each mask taking the next words (one word gives two mask elements). The whole state
is two integers (the seed and the position in the stream), so a checkpoint can save it and a resumed run draws
exactly the masks a straight run would; and the same integer arithmetic runs in NumPy and CuPy, so the CPU and
the GPU draw the same masks, bit for bit (CuPy's own generator has no state to save). Every counter is used once
under its key, so one keyed round of a good 32-bit hash is enough: a mask costs one pass to count and nine to
hash.
"""
import math
import warnings

import numpy as np

_host = None    # the NumPy generator for initialisation (created from the seed on first use)
_seed = 0
_position = 0   # words of the mask stream used since manual_seed


def manual_seed(seed):
    """Seed every generator (as torch.manual_seed)."""
    global _seed, _position, _host
    _seed, _position, _host = int(seed), 0, None


class Generator:
    """A stream of random numbers of its own, as torch.Generator: `g = Generator().manual_seed(42)`, then
    randn, rand, randint and multinomial with generator=g draw from it and leave the global stream alone."""

    def __init__(self, device="cpu"):
        self.manual_seed(67280421310721)  # PyTorch's default seed

    def manual_seed(self, seed):
        self.numpy = np.random.default_rng(int(seed))
        return self


def generator(source=None):
    """The host (NumPy) generator, for initialising parameters; a Generator's own when one is given."""
    global _host
    if source is not None:
        return source.numpy
    if _host is None:
        _host = np.random.default_rng(_seed)
    return _host


def _mix(value):
    """SplitMix64's finaliser: a well-spread 64-bit hash of a Python integer (used for the keys)."""
    value = (value + 0x9E3779B97F4A7C15) & 0xFFFFFFFFFFFFFFFF
    value = ((value ^ (value >> 30)) * 0xBF58476D1CE4E5B9) & 0xFFFFFFFFFFFFFFFF
    value = ((value ^ (value >> 27)) * 0x94D049BB133111EB) & 0xFFFFFFFFFFFFFFFF
    return value ^ (value >> 31)


def _hash32(x, key, xp):
    """lowbias32 (two xor-shift-multiply rounds, in place), with the high half of the 64-bit `key` xored in between
    the rounds: a different function for each key (adding a key to the counters alone, the low half's job, would
    give every seed the same sequence, shifted)."""
    scratch = xp.empty_like(x)
    x ^= xp.right_shift(x, 16, out=scratch)
    x *= xp.uint32(0x7FEB352D)
    x ^= xp.uint32(key >> 32)
    x ^= xp.right_shift(x, 15, out=scratch)
    x *= xp.uint32(0x846CA68B)
    x ^= xp.right_shift(x, 16, out=scratch)
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
    """Words start .. start+count-1 of the stream: word i = hash(i mod 2³² + low key, high key), with a 64-bit key
    from the seed and i // 2³² (a new key every 2³² words, so no counter repeats under one key)."""
    pieces = [xp.empty(0, dtype=xp.uint32)]
    while count:
        offset, key, first = _counter(start)
        take = min(count, 2**32 - offset)
        if first + take <= 2**32:
            x = xp.arange(first, first + take, dtype=xp.uint32)
        else:  # the sum wraps inside this piece
            x = xp.arange(offset, offset + take, dtype=xp.uint32)
            x += xp.uint32(first - offset & 0xFFFFFFFF)
        pieces.append(_hash32(x, key, xp))
        start, count = start + take, count - take
    return pieces[-1] if len(pieces) <= 2 else xp.concatenate(pieces[1:])


def _counter(start):
    """For word `start`: its offset under its key, the 64-bit key, and the first counter hashed (offset + low key,
    wrapping as uint32 does)."""
    epoch, offset = divmod(start, 2**32)
    key = _mix(_mix(_seed) ^ epoch)
    return offset, key, (offset + key) & 0xFFFFFFFF


def claim_words(count):
    """The next `count` words for a kernel that hashes them itself (kernels.keep_mask): (first counter, high half of
    the key), the stream advanced as random_uint16 advances it; None, the stream untouched, when the words would
    span two keys (once every 2³² words), which the plain path handles."""
    global _position
    offset, key, first = _counter(_position)
    if offset + count > 2**32:
        return None
    _position += count
    return first, key >> 32


def get_state():
    """Everything needed to continue the same random sequences (plain data, for checkpoints)."""
    return {"seed": _seed, "position": _position, "numpy": generator().bit_generator.state}


def set_state(state):
    global _position
    manual_seed(state["seed"])
    if "position" not in state and state.get("draws"):
        warnings.warn("this random state was saved before dropout masks came from one stream: the masks from "
                      "here on are not those an uninterrupted run would have drawn")
    _position = state.get("position", 0)
    generator().bit_generator.state = state["numpy"]
