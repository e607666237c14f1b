"""Random numbers: one seeded generator per array module, reset together by manual_seed.

Parameters are initialised on the host (NumPy) whatever the device, so a seed gives the same weights on
CPU and GPU. Dropout masks are drawn where the data lives (CuPy's generator on the GPU).
"""
import numpy as np

_generators = {}
_seed = 0


def manual_seed(seed):
    """Seed every generator (as torch.manual_seed)."""
    global _seed
    _seed = int(seed)
    _generators.clear()


def generator(xp=np):
    """The generator for array module `xp` (created from the current seed on first use)."""
    if xp not in _generators:
        _generators[xp] = xp.random.default_rng(_seed)
    return _generators[xp]


def get_state():
    """The host generator's state (for checkpoints; plain data, no pickled objects)."""
    return {"seed": _seed, "numpy": generator(np).bit_generator.state}


def set_state(state):
    manual_seed(state["seed"])
    generator(np).bit_generator.state = state["numpy"]
