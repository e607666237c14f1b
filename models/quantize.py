"""Weight-only quantisation of a trained GPT, for smaller files:

    int8: per output channel (each row of a weight), symmetric: s = max|w| / 127, q = round(w / s) in [-127, 127]
    int4: per group of `group_size` inputs along each row: s = max|w| / 7, q = round(w / s) in [-7, 7], two values
          packed in a byte (low nibble first, stored as q + 8)

Every Linear weight and the token embedding (which is also the head when tied) are quantised; norms, biases and
position tables stay float32. w ≈ q · s, with |w - q · s| ≤ s / 2 for every element.

    python quantize.py out/best.npz out/best-int8.npz --bits 8
    python quantize.py out/best.npz out/best-int4.npz --bits 4 --group-size 32

generate.py and inspection.py load a quantised checkpoint and dequantise it once, as it loads: the file is
4x (int8) or about 7x (int4 with float32 scales) smaller, and the model then runs in float32 at its usual speed.
"""

import numpy as np

from models.record import RunRecord
from tinygrad_proust.checkpoint import CheckpointError, load_checkpoint, save_arrays


def quantize_int8(w):
    """(q int8 (out, in), scale float32 (out, 1)): symmetric absmax per row."""
    scale = np.abs(w).max(axis=1, keepdims=True).astype(np.float32) / 127
    scale[scale == 0] = 1
    return np.clip(np.rint(w / scale), -127, 127).astype(np.int8), scale


def quantize_int4(w, group_size):
    """(packed uint8 (out, in / 2), scale float32 (out, in / group_size)): symmetric absmax per group of inputs."""
    rows, columns = w.shape
    if columns % group_size or group_size % 2:
        raise ValueError(f"int4: the group size {group_size} must be even and divide the input size {columns}")
    groups = w.reshape(rows, columns // group_size, group_size)
    scale = np.abs(groups).max(axis=2).astype(np.float32) / 7
    scale[scale == 0] = 1
    q = np.clip(np.rint(groups / scale[..., None]), -7, 7).astype(np.int8).reshape(rows, columns)
    return pack_int4(q), scale


def pack_int4(q):
    """Two values in [-8, 7] per byte: element 2i in the low nibble, 2i + 1 in the high one, each stored + 8."""
    nibbles = (q.astype(np.int16) + 8).astype(np.uint8)
    return nibbles[..., 0::2] | (nibbles[..., 1::2] << 4)


def unpack_int4(packed):
    out = np.empty(packed.shape[:-1] + (packed.shape[-1] * 2,), dtype=np.int8)
    out[..., 0::2] = (packed & 0x0F).astype(np.int8) - 8
    out[..., 1::2] = (packed >> 4).astype(np.int8) - 8
    return out


def dequantize(q, scale, bits, group_size=None):
    if bits == 8:
        return q.astype(np.float32) * scale
    values = unpack_int4(q).astype(np.float32)
    rows, columns = values.shape
    return (values.reshape(rows, -1, group_size) * scale[..., None]).reshape(rows, columns)


def quantized_names(weights):
    """The weights to quantise: every Linear weight and the token embedding (matrices, not position tables)."""
    return [name for name, w in weights.items()
            if w.ndim == 2 and (name.endswith(".weight") and not name.startswith("wpe.")) and "lora_" not in name]


def quantize_checkpoint(source, target, bits, group_size=32):
    meta, weights, _ = load_checkpoint(source)
    record = RunRecord.from_meta(meta, source)
    record.load_tokenizer(source)  # checked, as every reader does: a damaged record is refused, not passed on
    if record.quantization is not None:
        raise CheckpointError(f"{source} is quantised already")
    if record.is_adapter:
        raise CheckpointError(f"{source} is a LoRA adapter: merge it first (python adapters.py merge)")
    arrays, before, after, chosen = {}, 0, 0, set(quantized_names(weights))
    for name, w in weights.items():
        if name in chosen:
            q, scale = quantize_int8(w) if bits == 8 else quantize_int4(w, group_size)
            arrays[f"model/{name}:q"], arrays[f"model/{name}:scale"] = q, scale
            before, after = before + w.nbytes, after + q.nbytes + scale.nbytes
        else:
            arrays[f"model/{name}"] = w
    settings = {"bits": bits, "group_size": group_size, "weights_ratio": after / before}
    kept = RunRecord(config=record.config, tokenizer=record.tokenizer, step=record.step,
                     best_val_loss=record.best_val_loss, quantization=settings)
    return save_arrays(target, arrays, **kept.as_meta())


def dequantize_weights(settings, weights):
    """{name: float32 array} from a quantised checkpoint's weights and its quantization settings."""
    out = {name: w for name, w in weights.items() if ":" not in name}
    for name in {k.split(":")[0] for k in weights if k.endswith(":q")}:
        out[name] = dequantize(weights[f"{name}:q"], weights[f"{name}:scale"], settings["bits"],
                               settings["group_size"])
    return out
