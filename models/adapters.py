"""LoRA adapters for a trained GPT: which layers to adapt, the identity of the base model an adapter belongs to,
loading base + adapter, and merging them into one plain checkpoint.

    python train.py --init-from out/best.npz --data sonnets.txt --lora-rank 8      # adapter-only checkpoints
    python generate.py --checkpoint out/last.npz                                     # base + adapter, merged
    python adapters.py merge out-lora/best.npz merged.npz                            # one plain checkpoint

An adapter checkpoint stores only the lora_A/lora_B weights, the LoRA settings, and its base: the path and a
SHA-256 of the base's weights, so it refuses any other base.
"""
import hashlib
from pathlib import Path

from tinygrad_proust import nn
from tinygrad_proust.checkpoint import CheckpointError

TARGETS = {"attn": "*.attn.c_*", "mlp": "*.mlp.c_*", "head": "lm_head"}  # names for --lora-targets


def target_patterns(spec):
    """'attn,mlp' -> module-name patterns; other words are used as fnmatch patterns themselves."""
    return [TARGETS.get(word.strip(), word.strip()) for word in spec.split(",") if word.strip()]


def base_digest(model):
    """SHA-256 of a model's weights (names, shapes, dtypes and bytes): who an adapter belongs to."""
    digest = hashlib.sha256()
    for name, tensor in model.state_dict().items():
        array = tensor.numpy()
        digest.update(f"{name}{array.shape}{array.dtype.str}".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


def base_record(source, model):
    return {"source": str(Path(source).resolve()), "sha256": base_digest(model)}


def load_base(record, load_source):
    """The base model an adapter names, checked against its digest. load_source(path) -> model."""
    source = record["source"]
    if not Path(source).exists():
        raise CheckpointError(f"the adapter's base {source} is missing (an adapter needs the model it was trained on)")
    model = load_source(source)
    if base_digest(model) != record["sha256"]:
        raise CheckpointError(f"{source} is not the base this adapter was trained on (its weights differ)")
    return model


def attach(model, settings, weights=None):
    """Apply the LoRA layers described by `settings` (rank, alpha, targets, dropout) and load adapter weights."""
    nn.apply_lora(model, settings["rank"], settings["alpha"], settings["targets"], settings.get("dropout", 0.0))
    if weights is not None:
        load_weights(model, weights, {name for name, p in model.named_parameters() if p.requires_grad})
    return model


def load_weights(model, weights, expected=None):
    """Load a checkpoint's weights: all of a model's (expected None), or exactly the `expected` names (a LoRA
    adapter's: its trainable parameters, into a model that has its LoRA layers)."""
    if expected is not None and set(weights) != expected:
        raise CheckpointError("the adapter's weights do not match its layers (missing: "
                              f"{sorted(expected - set(weights))[:3]}, unknown: {sorted(set(weights) - expected)[:3]})")
    model.load_state_dict(weights, strict=expected is None)
    return model


def merge_all(model):
    """Fold every adapter into its base weight (for inference at the base's speed)."""
    for module in model.modules():
        if isinstance(module, nn.LoRALinear):
            module.merge()
    return model
