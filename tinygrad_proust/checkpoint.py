"""Checkpoints: one .npz file (a zip of .npy arrays, no pickles), written atomically.

Inside:
    model/<parameter name>         the weights, e.g. model/blocks.0.attn.c_attn.weight
    optimizer/<index>/<key>        optimizer moments, per parameter in optimizer order
    __meta__                       a JSON string: format, step, model config, tokenizer, optimizer
                                   hyperparameters and steps, RNG states, training arguments, ...

Anyone can read the weights without this package:
    import numpy as np, torch
    ckpt = np.load("out/best.npz")
    state = {k[len("model/"):]: torch.from_numpy(ckpt[k]) for k in ckpt.files if k.startswith("model/")}
"""
import json
import os
import zipfile
from pathlib import Path

import numpy as np

FORMAT = "tinygrad_proust-checkpoint-v1"


class CheckpointError(ValueError):
    """A checkpoint that is missing, corrupt, or not one of ours."""


def save_checkpoint(path, model, optimizer=None, **meta):
    """Write model (and optimizer) state plus `meta` (JSON-serialisable) to `path`, atomically:
    a temporary file in the same folder is written, flushed to disk, then renamed over `path`,
    so a run killed mid-write leaves the previous checkpoint intact."""
    path = Path(path)
    arrays = {f"model/{name}": t.numpy() for name, t in model.state_dict().items()}
    if optimizer is not None:
        state = optimizer.state_dict()
        for i, param_state in enumerate(state["state"]):
            for key, value in param_state.items():
                if hasattr(value, "shape"):
                    arrays[f"optimizer/{i}/{key}"] = _host(value)
        meta["optimizer"] = {"param_groups": state["param_groups"],
                             "scalars": [{k: v for k, v in s.items() if not hasattr(v, "shape")} for s in state["state"]]}
    arrays["__meta__"] = np.array(json.dumps({"format": FORMAT, **meta}))
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    try:
        with open(tmp, "wb") as f:
            _write_npz(f, arrays)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def _write_npz(f, arrays):
    np.savez(f, **arrays)


def _host(array):
    return array.get() if hasattr(array, "get") else np.asarray(array)


def load_checkpoint(path):
    """(meta dict, {name: array} of weights, optimizer state dict or None). Refuses, with a CheckpointError,
    a missing file, a corrupt one, and any .npz that this package did not write."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path}: no such file")
    try:
        with np.load(path, allow_pickle=False) as archive:
            if "__meta__" not in archive.files:
                raise CheckpointError(f"checkpoint {path}: not a tinygrad_proust checkpoint (no __meta__ entry)")
            meta = json.loads(str(archive["__meta__"]))
            if meta.get("format") != FORMAT:
                raise CheckpointError(f"checkpoint {path}: unknown format {meta.get('format')!r}")
            weights = {k[len("model/"):]: archive[k] for k in archive.files if k.startswith("model/")}
            optimizer_arrays = {k: archive[k] for k in archive.files if k.startswith("optimizer/")}
    except CheckpointError:
        raise
    except (zipfile.BadZipFile, ValueError, OSError, EOFError, KeyError, json.JSONDecodeError) as err:
        raise CheckpointError(f"checkpoint {path}: corrupt or not a checkpoint ({type(err).__name__}: {err})") from None
    optimizer_state = None
    if "optimizer" in meta:
        states = [dict(s) for s in meta["optimizer"]["scalars"]]
        for key, value in optimizer_arrays.items():
            _, index, name = key.split("/", 2)
            states[int(index)][name] = value
        optimizer_state = {"param_groups": meta["optimizer"]["param_groups"], "state": states}
    return meta, weights, optimizer_state
