"""LoRA adapters for a trained GPT: which layers to adapt, the identity of the base model an adapter belongs to,
loading base + adapter, and merging them into one plain checkpoint.

    python train.py --init-from out/best.npz --data sonnets.txt --lora-rank 8      # adapter-only checkpoints
    python generate.py --checkpoint out/last.npz                                     # base + adapter, merged
    python -m models.adapters merge out-lora/best.npz merged.npz                     # one plain checkpoint

An adapter checkpoint stores only the lora_A/lora_B weights, the LoRA settings, and its base: the path and a
SHA-256 of the base's weights, so it refuses any other base.
"""
import hashlib
import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a file: import from the repository root
    sys.path[0] = str(Path(__file__).resolve().parent.parent)

from models.cli import Parser, console, fail
from tinygrad_proust import nn
from tinygrad_proust.checkpoint import CheckpointError, save_checkpoint

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
    return model if weights is None else load_weights(model, weights)


def load_weights(model, weights):
    """Load an adapter's weights into a model that has its LoRA layers: exactly the trainable parameters."""
    expected = {name for name, p in model.named_parameters() if p.requires_grad}
    if set(weights) != expected:
        raise CheckpointError("the adapter's weights do not match its layers (missing: "
                              f"{sorted(expected - set(weights))[:3]}, unknown: {sorted(set(weights) - expected)[:3]})")
    return model.load_state_dict(weights, strict=False)


def merge_all(model):
    """Fold every adapter into its base weight (for inference at the base's speed)."""
    for module in model.modules():
        if isinstance(module, nn.LoRALinear):
            module.merge()
    return model


@console
def main(argv=None):
    from models.gpt import GPT  # here: models.gpt imports this module
    p = Parser(description=__doc__)
    commands = p.add_subparsers(dest="command", required=True)
    merge = commands.add_parser("merge", help="write base + adapter as one plain checkpoint")
    merge.add_argument("adapter")
    merge.add_argument("out")
    args = p.parse_args(argv)
    try:
        model, tokenizer, meta = GPT.from_checkpoint(args.adapter)
    except CheckpointError as err:
        fail(err)
    if "lora" not in meta:
        fail(f"{args.adapter} is not an adapter checkpoint (it holds a whole model already)")
    plain = GPT(model.config)
    plain.load_state_dict({name: t for name, t in model.state_dict().items() if ".lora_" not in name})
    path = save_checkpoint(args.out, plain, step=meta.get("step", 0), config=model.config.to_dict(),
                           tokenizer=tokenizer.to_dict())
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
