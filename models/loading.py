"""Loading a trained model from wherever it is: a train.py checkpoint (a whole model, a LoRA adapter on its base,
or quantised weights) or a Hugging Face Transformers directory. The one place scripts and tools load from; the
model file (gpt.py) knows only the framework.

    model, tokenizer, record = load_model("out/best.npz", device="gpu")
"""
from pathlib import Path

import numpy as np

from models import adapters
from models.export import load_pretrained
from models.gpt import GPT, GPTConfig
from models.quantize import dequantize_weights
from models.record import RunRecord
from tinygrad_proust.checkpoint import CheckpointError, load_checkpoint


def load_model(source, device="cpu", merge=True, as_base=False):
    """(model in eval mode, tokenizer, its RunRecord) from a train.py checkpoint, or (model, tokenizer or None,
    None) from a Transformers directory of the GPT-2 or LLaMA family (needs safetensors and tokenizers); no corpus
    needed.
    A LoRA adapter loads its base (checked against the digest it stores) with the adapters merged in, unless
    merge=False; a quantised checkpoint is dequantised as it loads. as_base: loaded as an adapter's base, which must
    be a whole model, not another adapter."""
    if Path(source).is_dir() and (Path(source) / "config.json").exists():  # other folders: load_checkpoint says
        model, tokenizer = load_pretrained(source)
        return model.to(device), tokenizer, None
    meta, weights, _ = load_checkpoint(source)
    record = RunRecord.from_meta(meta, source)
    if record.is_adapter and as_base:  # the adapter's own load names it
        raise CheckpointError(f"its base {source} is a LoRA adapter too, not a whole model (a LoRA run written over "
                              "the checkpoint it started from?)")
    try:
        if record.quantization is not None:
            weights = dequantize_weights(record.quantization, weights)
        model = GPT(GPTConfig.from_dict(record.config))
        if record.is_adapter:
            model.load_state_dict(load_lora_base(record.base).state_dict())
            adapters.attach(model, record.lora, weights)
            if merge:
                adapters.merge_all(model)
        else:
            model.load_state_dict(weights)
    except CheckpointError as err:  # an adapter's base: missing, or not the model it was trained on
        raise CheckpointError(f"checkpoint {source}: {err}") from None
    except (KeyError, TypeError, ValueError, AttributeError) as err:
        raise CheckpointError(f"checkpoint {source}: its model or tokenizer description is damaged ({err})") from None
    tokenizer = record.load_tokenizer(source)  # its own errors name the checkpoint
    if not all(np.isfinite(p.data).all() for p in model.parameters()):
        raise CheckpointError(f"checkpoint {source}: its weights hold NaN or Inf (the run that wrote it diverged)")
    return model.to(device).eval(), tokenizer, record



def load_lora_base(record):
    """The base model a LoRA adapter was trained on, from the record it stores (checked against its digest)."""
    return adapters.load_base(record, lambda source: load_model(source, as_base=True)[0])
