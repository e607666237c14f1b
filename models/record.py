"""What a checkpoint says about the run that wrote it, by name: train.py writes a RunRecord into every checkpoint's
metadata and every reader (resume, the loaders, the tools) reads it back through the same class, so each field is
named, typed and checked in one place. A field of the wrong type (a damaged or hand-edited file) is a
CheckpointError naming it, not a traceback later.
"""
from dataclasses import asdict, dataclass, fields

from models.tokenizer import tokenizer_from_dict
from tinygrad_proust.checkpoint import CheckpointError


@dataclass
class RunRecord:
    config: dict                    # GPTConfig.to_dict()
    tokenizer: dict                 # the tokenizer's to_dict()
    step: int = 0                   # optimizer steps taken
    best_val_loss: float = None     # the best validation loss so far (None: not written by train.py)
    args: dict = None               # train.py's settings, the flags a resume takes as its defaults
    rng: dict = None                # tinygrad_proust.rng's state (parameters' generator, dropout stream)
    batch_rng: dict = None          # the batch sampler's NumPy generator state
    metrics: dict = None            # the metrics row of the evaluation that wrote this checkpoint
    lora: dict = None               # a LoRA adapter: its settings (rank, alpha, targets, dropout)
    base: dict = None               # ... and the base model it belongs to (path and SHA-256 of its weights)
    quantization: dict = None       # a quantised file: bits, group size, size ratio
    corpus: dict = None             # the text it trained on: source, bytes, SHA-256 (a resume checks it)

    TYPES = {"config": dict, "tokenizer": dict, "step": int, "best_val_loss": (float, int, type(None)),
             "args": (dict, type(None)), "rng": (dict, type(None)), "batch_rng": (dict, type(None)),
             "metrics": (dict, type(None)), "lora": (dict, type(None)), "base": (dict, type(None)),
             "quantization": (dict, type(None)), "corpus": (dict, type(None))}

    @classmethod
    def from_meta(cls, meta, source):
        """The record in a checkpoint's metadata (other keys, the file format's own, are left out)."""
        values = {f.name: meta[f.name] for f in fields(cls) if f.name in meta}
        for name in ("config", "tokenizer"):
            if name not in values:
                raise CheckpointError(f"checkpoint {source}: no {name!r} in its metadata (not written by train.py?)")
        for name, value in values.items():
            if not isinstance(value, cls.TYPES[name]) or isinstance(value, bool):
                raise CheckpointError(f"checkpoint {source}: its {name!r} is {value!r} (damaged or edited by hand)")
        return cls(**values)

    def as_meta(self):
        """The fields that are set, for save_checkpoint(**record.as_meta())."""
        return {name: value for name, value in asdict(self).items() if value is not None}

    @property
    def is_adapter(self):
        return self.lora is not None

    def load_tokenizer(self, source):
        """The tokenizer the run used, checked against the model: the same vocabulary size (a smaller one would
        fail on the first id it cannot decode)."""
        try:
            tokenizer = tokenizer_from_dict(self.tokenizer)
        except (KeyError, TypeError, ValueError, AttributeError) as err:
            raise CheckpointError(f"checkpoint {source}: its tokenizer description is damaged ({err})") from None
        if tokenizer.vocab_size != self.config.get("vocab_size"):
            raise CheckpointError(f"checkpoint {source}: its tokenizer has {tokenizer.vocab_size} tokens, its model "
                                  f"{self.config.get('vocab_size')} (damaged or edited by hand)")
        return tokenizer
