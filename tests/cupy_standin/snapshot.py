"""Write the public names of the installed CuPy to cupy-<version>.json beside this file: the list the strict
stand-in (and the static check of the names our code uses) is checked against. CuPy imports without a GPU:

    pip install cupy-cuda12x==14.2.0      # or ==13.6.0; no GPU or driver needed
    python tests/cupy_standin/snapshot.py
"""
import json
from pathlib import Path

import cupy
import cupyx.scipy.special


def public(obj, dunders=False):
    return sorted(n for n in dir(obj) if not n.startswith("_") or (dunders and n.startswith("__")))


def main():
    ufuncs = sorted(n for n in dir(cupy) if isinstance(getattr(cupy, n, None), cupy.ufunc))
    names = {
        "version": cupy.__version__,
        "cupy": public(cupy),
        "cupy.random": public(cupy.random),
        "cupy.random.Generator": public(cupy.random.Generator),
        "cupy.random.BitGenerator": public(cupy.random.BitGenerator),
        "cupy.ndarray": public(cupy.ndarray, dunders=True),
        "cupy.ufunc": public(cupy.ufunc),
        "ufuncs": ufuncs,
        "cupy.cuda": public(cupy.cuda),
        "cupy.cuda.runtime": public(cupy.cuda.runtime),
        "cupy.cuda.Stream": public(cupy.cuda.Stream),
        "cupyx.scipy.special": public(cupyx.scipy.special),
    }
    path = Path(__file__).with_name(f"cupy-{cupy.__version__}.json")
    path.write_text(json.dumps(names, indent=1) + "\n")
    print(f"wrote {path}: {sum(len(v) for v in names.values() if isinstance(v, list))} names")


if __name__ == "__main__":
    main()
