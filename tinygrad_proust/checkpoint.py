"""Checkpoints: one .npz file (a zip of .npy arrays, no pickles), or one .safetensors file (the format Hugging
Face uses; needs the safetensors package), written atomically. The path's suffix chooses the format.

Inside:
    model/<parameter name>         the weights, e.g. model/blocks.0.attn.c_attn.weight
    optimizer/<index>/<key>        optimizer moments, per parameter in optimizer order
    __meta__                       JSON text (UTF-8 bytes): format, step, model config, tokenizer, optimizer
                                   hyperparameters and steps, RNG states, training arguments, ..., and a
                                   CRC-32 of every array (with its name, dtype and shape): a damaged file is
                                   refused when it is loaded, never found out later

Anyone can read the weights without this package:
    import numpy as np
    ckpt = np.load("out/best.npz")
    state = {k[len("model/"):]: ckpt[k] for k in ckpt.files if k.startswith("model/")}
(models/export.py turns a GPT checkpoint into a Hugging Face Transformers directory.)
"""
import collections
import errno
import json
import os
import zlib
from pathlib import Path

import numpy as np

FORMAT = "tinygrad_proust-checkpoint-v1"
# what load_checkpoint returns, by name: the metadata dict, {name: array} of weights, the optimizer state or None
Checkpoint = collections.namedtuple("Checkpoint", ["meta", "weights", "optimizer"])


class CheckpointError(ValueError):
    """A checkpoint that is missing, corrupt, or not one of ours."""


def save_checkpoint(path, model, optimizer=None, parameters=None, **meta):
    """Write model (and optimizer) state plus `meta` (JSON-serialisable) to `path`, atomically: a temporary file
    in the same folder is written, flushed to disk, then renamed over `path`, so a run killed mid-write leaves the
    previous checkpoint intact. `parameters`: the names to store (default: all; a LoRA run stores its adapters)."""
    arrays = {f"model/{name}": t.numpy() for name, t in model.state_dict().items()
              if parameters is None or name in parameters}
    if optimizer is not None:
        state = optimizer.state_dict()
        for i, param_state in enumerate(state["state"]):
            for key, value in param_state.items():
                if hasattr(value, "shape"):
                    arrays[f"optimizer/{i}/{key}"] = _host(value)
        meta["optimizer"] = {"param_groups": state["param_groups"],
                             "scalars": [{k: v for k, v in s.items() if not hasattr(v, "shape")}
                                         for s in state["state"]]}
    return save_arrays(path, arrays, **meta)


def save_arrays(path, arrays, **meta):
    """The writer under save_checkpoint: {name: array} ("model/..." for weights) and meta, atomically."""
    path = Path(path)
    meta["checksums"] = {name: _checksum(array) for name, array in arrays.items()}
    meta = {"format": FORMAT, **meta}
    meta_text = json.dumps({**meta, "meta_crc32": zlib.crc32(json.dumps(meta).encode())})  # the header's own CRC
    if path.suffix == ".safetensors":
        return write_atomically(path, lambda f: f.write(_safetensors_bytes(arrays, meta_text)))
    return write_atomically(path, lambda f: _write_npz(
        f, {"__meta__": np.frombuffer(meta_text.encode("utf-8"), dtype=np.uint8), **arrays}))


def check_writable(path):
    """The OSError a write of path would meet, raised before anything is written: a folder, device or pipe at path
    (the rename would replace it), or a file where one of its folders should be."""
    path = Path(path)
    if path.exists() and not path.is_file():
        raise FileExistsError(errno.EEXIST, "is not a regular file (a folder, a device or a pipe?)", str(path))
    folder = next(p for p in path.parents if p.exists())  # the nearest that exists: "." or "/" at the least
    if not folder.is_dir():
        raise NotADirectoryError(errno.ENOTDIR, "is not a folder", str(folder))


def write_atomically(path, write):
    """write(f) into a temporary file beside path, then rename it over path: a reader (or a kill) finds the old file
    or the new one, never half of one. A folder, device or pipe at path is refused (the rename would replace it),
    and an error (a full disk, a read-only folder) names path itself."""
    path = Path(path)
    check_writable(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    try:
        with open(tmp, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as err:
        err.filename = str(path)  # the file the caller named, not its .tmp
        raise
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def _write_npz(f, arrays):
    np.savez(f, **arrays)


def _safetensors_bytes(arrays, meta_text):
    """The safetensors format (pip install safetensors): the arrays, and the metadata as its string header."""
    try:
        from safetensors.numpy import save
    except ImportError:
        raise ImportError("a .safetensors checkpoint needs the safetensors package: pip install safetensors") from None
    # np.require keeps a 0-d array 0-d (ascontiguousarray would make it 1-d)
    return save({name: np.require(a, requirements="C") for name, a in arrays.items()}, metadata={"__meta__": meta_text})


def _read_safetensors(path):
    try:
        from safetensors import safe_open
    except ImportError:  # by its name a .safetensors file; any other that is not an .npz archive is no checkpoint
        raise CheckpointError(f"checkpoint {path}: a .safetensors checkpoint needs the safetensors package: pip "
                              "install safetensors" if Path(path).suffix == ".safetensors" else
                              f"checkpoint {path}: corrupt or not a checkpoint (neither an .npz archive nor a "
                              "safetensors file)") from None
    with safe_open(str(path), framework="numpy") as archive:
        meta_text = (archive.metadata() or {}).get("__meta__")
        if meta_text is None:
            raise CheckpointError(f"checkpoint {path}: not a tinygrad_proust checkpoint (no __meta__ in its header)")
        return meta_text, {name: archive.get_tensor(name) for name in archive.keys()}


def _read_npz(path):
    with np.load(path, allow_pickle=False) as archive:
        if "__meta__" not in archive.files:
            raise CheckpointError(f"checkpoint {path}: not a tinygrad_proust checkpoint (no __meta__ entry)")
        meta = archive["__meta__"]  # UTF-8 bytes (older files: a NumPy string)
        meta = meta.tobytes().decode("utf-8") if meta.dtype == np.uint8 else str(meta)
        return meta, {k: archive[k] for k in archive.files if k != "__meta__"}


def _checksum(array):
    """CRC-32 of an array's dtype, shape and bytes."""
    array = np.ascontiguousarray(array)
    return zlib.crc32(memoryview(array).cast("B"), zlib.crc32(f"{array.dtype.str}{array.shape}".encode()))


def _verify(path, meta, arrays):
    """Every array listed in the checksums is there, nothing else is, and each one's CRC matches."""
    expected = meta.get("checksums")
    if not isinstance(expected, dict):
        raise CheckpointError(f"checkpoint {path}: corrupt (its list of checksums is missing)")
    if set(expected) != set(arrays):
        differ = sorted(set(expected) ^ set(arrays))
        raise CheckpointError(f"checkpoint {path}: corrupt (entries {', '.join(differ[:3])} missing or unknown)")
    for name, array in arrays.items():
        if _checksum(array) != expected[name]:
            raise CheckpointError(f"checkpoint {path}: corrupt (checksum of {name} does not match)")


def _host(array):
    return array.get() if hasattr(array, "get") else np.asarray(array)


def load_checkpoint(path):
    """Checkpoint(meta dict, {name: array} of weights, optimizer state dict or None). Refuses, with a
    CheckpointError, a missing file, a corrupt one, and any .npz that this package did not write."""
    path = Path(path)
    if path.is_dir():  # a run's folder, most often: name the checkpoints it holds
        inside = sorted(p.name for p in path.iterdir() if p.suffix in (".npz", ".safetensors"))
        raise CheckpointError(f"checkpoint {path}: a folder, not a checkpoint file"
                              + (f" (it holds {', '.join(inside)})" if inside else ""))
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path}: no such file")
    zip_file = False
    try:
        with open(path, "rb") as f:
            zip_file = f.read(2) == b"PK"  # .npz is a zip; anything else is read as safetensors
        meta_text, arrays = _read_npz(path) if zip_file else _read_safetensors(path)
        meta = json.loads(meta_text)
        crc = meta.pop("meta_crc32", None)  # absent in files written before it was added
        if crc is not None and zlib.crc32(json.dumps(meta).encode()) != crc:
            raise CheckpointError(f"checkpoint {path}: corrupt (the checksum of its metadata does not match)")
        if meta.get("format") != FORMAT:
            raise CheckpointError(f"checkpoint {path}: unknown format {meta.get('format')!r}")
        _verify(path, meta, arrays)
        weights = {k[len("model/"):]: v for k, v in arrays.items() if k.startswith("model/")}
        optimizer_arrays = {k: v for k, v in arrays.items() if k.startswith("optimizer/")}
        optimizer_state = _optimizer_state(meta, optimizer_arrays)
    except CheckpointError:
        raise
    except Exception as err:  # any failure to read a file not yet verified (NumPy parses headers before the
        # zip CRC is checked, and a damaged one can raise almost anything) means the file is damaged
        unread = not zip_file and path.suffix != ".safetensors" and not isinstance(err, OSError)
        why = "neither an .npz archive nor a safetensors file" if unread else f"{type(err).__name__}: {err}"
        raise CheckpointError(f"checkpoint {path}: corrupt or not a checkpoint ({why})") from None
    return Checkpoint(meta, weights, optimizer_state)


def _optimizer_state(meta, optimizer_arrays):
    if "optimizer" not in meta:
        return None
    states = [dict(s) for s in meta["optimizer"]["scalars"]]
    for key, value in optimizer_arrays.items():
        _, index, name = key.split("/", 2)
        states[int(index)][name] = value
    return {"param_groups": meta["optimizer"]["param_groups"], "state": states}
