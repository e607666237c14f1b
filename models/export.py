"""Take a model to Hugging Face Transformers and back: a model directory (config.json, model.safetensors,
tokenizer.json) that `AutoModelForCausalLM.from_pretrained` and `AutoTokenizer.from_pretrained` load.

    python export.py out/best.npz hf/my-model       # or: export_pretrained(model, tokenizer, "hf/my-model")
    model, tokenizer = load_pretrained("hf/my-model")       # a GPT-2 or LLaMA directory into our GPT

Which Transformers class expresses which of our models:
    GPT2LMHeadModel      pre-norm LayerNorm (biases may be absent: exported as zeros), learned positions (or
                         sinusoidal ones, exported as a fixed position table), ReLU or GELU (tanh or exact)
                         feed-forward, tied or untied head without bias; embedding scaling only with an untied
                         head (folded into the exported embedding table).
    LlamaForCausalLM     pre-norm RMSNorm, SwiGLU, rotary positions, no biases, tied or untied head.
Anything else (post-norm, no final norm, RMSNorm with learned positions, ...) is an ExportError naming the setting.
Tokenizers go along as tokenizer.json (the `tokenizers` library's format): byte-level BPE for byte and BPE models,
a word-level vocabulary of single characters for char models.

Needs the extras: pip install safetensors tokenizers (and transformers to load the result).
"""
import json
import math
import shutil
import tempfile
from pathlib import Path

import numpy as np

from models.gpt import GPT, GPTConfig
from models.tokenizer import SPLIT_PATTERNS, BPETokenizer, ByteTokenizer, CharTokenizer


class ExportError(ValueError):
    """A model, tokenizer or directory that cannot cross between here and Transformers, with the reason."""


# ---- which class ----

def transformers_family(config):
    """"gpt2" or "llama", or an ExportError naming what neither class expresses."""
    common = []
    if config.norm_placement != "pre":
        common.append("norm_placement='post' (Transformers' GPT-2 and LLaMA normalise before each sub-layer)")
    if not config.final_norm:
        common.append("final_norm=False (both normalise before the head)")
    if config.head_bias and not config.tie_weights:
        common.append("head_bias=True (neither has a bias on the head)")
    gpt2 = [f"norm='{config.norm}' (GPT-2 uses LayerNorm)"] * (config.norm != "layernorm") + \
        [f"ffn='{config.ffn}' (GPT-2's feed-forward is ReLU or GELU)"] * (config.ffn not in ("relu", "gelu")) + \
        ["positions='rope' (GPT-2 adds a position table)"] * (config.positions == "rope") + \
        ["scale_embeddings=True with a tied head"] * (config.scale_embeddings and config.tie_weights)
    llama = [f"norm='{config.norm}' (LLaMA uses RMSNorm)"] * (config.norm != "rmsnorm") + \
        [f"ffn='{config.ffn}' (LLaMA's feed-forward is SwiGLU)"] * (config.ffn != "swiglu") + \
        [f"positions='{config.positions}' (LLaMA uses rotary positions)"] * (config.positions != "rope") + \
        ["biases (LLaMA has none)"] * (config.attn_bias or config.ffn_bias or config.norm_bias and
                                       config.norm == "layernorm") + \
        ["scale_embeddings=True"] * config.scale_embeddings
    if not common and not gpt2:
        return "gpt2"
    if not common and not llama:
        return "llama"
    closest = min([gpt2, llama], key=len)
    raise ExportError("no Transformers class expresses this model: " + "; ".join(common + closest))


def _gpt2_config(c):
    activation = {"relu": "relu", "gelu": "gelu_new" if c.gelu_approximate == "tanh" else "gelu"}[c.ffn]
    return {"architectures": ["GPT2LMHeadModel"], "model_type": "gpt2", "vocab_size": c.vocab_size,
            "n_positions": c.block_size, "n_embd": c.n_embd, "n_layer": c.n_layer, "n_head": c.n_head,
            "n_inner": c.ffn_hidden, "activation_function": activation, "layer_norm_epsilon": c.norm_eps,
            "resid_pdrop": c.dropout, "embd_pdrop": c.dropout, "attn_pdrop": c.dropout,
            "tie_word_embeddings": c.tie_weights, "bos_token_id": None, "eos_token_id": None,
            "torch_dtype": "float32"}


def _llama_config(c):
    return {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "vocab_size": c.vocab_size,
            "hidden_size": c.n_embd, "intermediate_size": c.ffn_hidden, "num_hidden_layers": c.n_layer,
            "num_attention_heads": c.n_head, "num_key_value_heads": c.n_head, "hidden_act": "silu",
            "max_position_embeddings": c.block_size, "rms_norm_eps": c.norm_eps, "tie_word_embeddings": c.tie_weights,
            "rope_parameters": {"rope_type": "default", "rope_theta": c.rope_base}, "attention_bias": False,
            "mlp_bias": False, "attention_dropout": c.dropout, "bos_token_id": None, "eos_token_id": None,
            "torch_dtype": "float32"}


# ---- weights, both ways: each entry is (their name, our name, transposed?) ----

def _gpt2_names(c):
    names = [("transformer.wte.weight", "wte.weight", False), ("transformer.ln_f.weight", "ln_f.weight", False)]
    if c.positions == "learned":
        names.append(("transformer.wpe.weight", "wpe.weight", False))
    for i in range(c.n_layer):
        ours, theirs = f"blocks.{i}.", f"transformer.h.{i}."
        for a, b in (("ln_1", "ln_1"), ("ln_2", "ln_2")):
            names.append((f"{theirs}{a}.weight", f"{ours}{b}.weight", False))
        for a, b in (("attn.c_attn", "attn.c_attn"), ("attn.c_proj", "attn.c_proj"), ("mlp.c_fc", "mlp.c_fc"),
                     ("mlp.c_proj", "mlp.c_proj")):
            names.append((f"{theirs}{a}.weight", f"{ours}{b}.weight", True))    # Conv1D keeps (in, out)
    if not c.tie_weights:
        names.append(("lm_head.weight", "lm_head.weight", False))
    return names


def _gpt2_biases(c):
    """GPT-2's biases and our names for them (None where our model has none: exported as zeros)."""
    biases = [("transformer.ln_f.bias", "ln_f.bias" if c.norm_bias else None, c.n_embd)]
    for i in range(c.n_layer):
        ours, theirs = f"blocks.{i}.", f"transformer.h.{i}."
        biases += [(f"{theirs}ln_1.bias", f"{ours}ln_1.bias" if c.norm_bias else None, c.n_embd),
                   (f"{theirs}ln_2.bias", f"{ours}ln_2.bias" if c.norm_bias else None, c.n_embd),
                   (f"{theirs}attn.c_attn.bias", f"{ours}attn.c_attn.bias" if c.attn_bias else None, 3 * c.n_embd),
                   (f"{theirs}attn.c_proj.bias", f"{ours}attn.c_proj.bias" if c.attn_bias else None, c.n_embd),
                   (f"{theirs}mlp.c_fc.bias", f"{ours}mlp.c_fc.bias" if c.ffn_bias else None, c.ffn_hidden),
                   (f"{theirs}mlp.c_proj.bias", f"{ours}mlp.c_proj.bias" if c.ffn_bias else None, c.n_embd)]
    return biases


def _llama_names(c):
    names = [("model.embed_tokens.weight", "wte.weight", False), ("model.norm.weight", "ln_f.weight", False)]
    for i in range(c.n_layer):
        ours, theirs = f"blocks.{i}.", f"model.layers.{i}."
        names += [(f"{theirs}input_layernorm.weight", f"{ours}ln_1.weight", False),
                  (f"{theirs}post_attention_layernorm.weight", f"{ours}ln_2.weight", False),
                  (f"{theirs}self_attn.o_proj.weight", f"{ours}attn.c_proj.weight", False),
                  (f"{theirs}mlp.down_proj.weight", f"{ours}mlp.c_proj.weight", False)]
    if not c.tie_weights:
        names.append(("lm_head.weight", "lm_head.weight", False))
    return names


def _llama_split(c, i):
    """Our fused projections and the Transformers pieces they are cut into: (ours, [(theirs, rows)])."""
    ours, theirs, C, H = f"blocks.{i}.", f"model.layers.{i}.", c.n_embd, c.ffn_hidden
    return [(f"{ours}attn.c_attn.weight", [(f"{theirs}self_attn.{p}_proj.weight", C) for p in "qkv"]),
            (f"{ours}mlp.c_fc.weight", [(f"{theirs}mlp.gate_proj.weight", H), (f"{theirs}mlp.up_proj.weight", H)])]


def hf_state_dict(model):
    """Our weights under Transformers' names and layouts (float32 NumPy arrays)."""
    c, ours = model.config, {name: t.numpy() for name, t in model.state_dict().items()}
    family = transformers_family(c)
    state = {}
    for theirs, name, transpose in (_gpt2_names(c) if family == "gpt2" else _llama_names(c)):
        state[theirs] = ours[name].T if transpose else ours[name]
    if family == "gpt2":
        for theirs, name, size in _gpt2_biases(c):
            state[theirs] = ours[name] if name else np.zeros(size, dtype=np.float32)
        if c.positions == "sinusoidal":
            state["transformer.wpe.weight"] = model.wpe.table.numpy()
        if c.scale_embeddings:  # untied (checked): fold the scale into the table, which nothing else reads
            state["transformer.wte.weight"] = ours["wte.weight"] * np.float32(math.sqrt(c.n_embd))
    else:
        for i in range(c.n_layer):
            for name, pieces in _llama_split(c, i):
                start = 0
                for theirs, rows in pieces:
                    state[theirs] = ours[name][start:start + rows]
                    start += rows
    return {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in state.items()}


# ---- tokenizers ----

def bytes_to_unicode():
    """GPT-2's table from bytes to printable characters, which byte-level tokenizer.json files are written in:
    printable Latin-1 bytes stand for themselves, the other 68 bytes for the characters from U+0100 on."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    table, extra = {}, 0
    for b in range(256):
        if b in printable:
            table[b] = chr(b)
        else:
            table[b] = chr(256 + extra)
            extra += 1
    return table


def tokenizer_json(tokenizer):
    """Our tokenizer as a `tokenizers.Tokenizer` (byte-level BPE for byte and BPE models, word-level characters
    for char models)."""
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers
    if isinstance(tokenizer, CharTokenizer):
        # a character outside the vocabulary: the replacement (as the unknown token), or deleted before the split
        # (dropped), or an error ([UNK] is no token of the vocabulary), as ours; NFC first where ours composes
        unknown = tokenizer.replacement if tokenizer.unknown == "replace" else "[UNK]"
        hf = Tokenizer(models.WordLevel({c: i for i, c in enumerate(tokenizer.chars)}, unk_token=unknown))
        steps = [normalizers.NFC()] if tokenizer.normalize == "NFC" else []
        if tokenizer.unknown == "drop":
            outside = "[^" + "".join("\\" + c if c in "\\[]^-" else c for c in tokenizer.chars) + "]"
            steps.append(normalizers.Replace(Regex(outside), ""))
        if steps:
            hf.normalizer = normalizers.Sequence(steps)
        hf.pre_tokenizer = pre_tokenizers.Split(Regex(r"[\s\S]"), behavior="isolated")
        hf.decoder = decoders.Fuse()
        return hf
    bpe = tokenizer if isinstance(tokenizer, BPETokenizer) else BPETokenizer([], None)
    table = bytes_to_unicode()
    text = ["".join(table[b] for b in piece) for piece in bpe.vocab]
    if len(set(text)) != len(text):
        raise ExportError("the BPE tokenizer has two tokens for the same bytes, which tokenizer.json cannot express")
    hf = Tokenizer(models.BPE({t: i for i, t in enumerate(text)}, [(text[a], text[b]) for (a, b), _ in bpe.merges]))
    byte_level = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    if bpe.pattern is None:
        hf.pre_tokenizer = byte_level
    else:
        split = pre_tokenizers.Split(Regex(SPLIT_PATTERNS.get(bpe.pattern, bpe.pattern)), behavior="isolated")
        hf.pre_tokenizer = pre_tokenizers.Sequence([split, byte_level])
    hf.decoder = decoders.ByteLevel()
    return hf


def tokenizer_from_json(path):
    """Ours from a tokenizer.json written by tokenizer_json (a char vocabulary, or byte-level BPE whose ids are the
    256 bytes in order followed by the merges); any other tokenizer is an ExportError."""
    try:
        spec = json.loads(Path(path).read_text())
        model = spec["model"]
        if model["type"] == "WordLevel":
            vocab = sorted(model["vocab"].items(), key=lambda item: item[1])
            if [i for _, i in vocab] != list(range(len(vocab))) or any(len(c) != 1 for c, _ in vocab):
                raise ExportError(f"{path}: a word-level vocabulary of more than single characters")
            steps = spec.get("normalizer") or {}
            steps = [step["type"] for step in steps.get("normalizers", [steps])] if steps else []
            unknown = ("drop" if "Replace" in steps else "replace" if model.get("unk_token") in model["vocab"]
                       else "error")
            return CharTokenizer("".join(c for c, _ in vocab), unknown=unknown,
                                 replacement=model["unk_token"] if unknown == "replace" else None,
                                 normalize="NFC" if "NFC" in steps else None)
        if model["type"] != "BPE":
            raise ExportError(f"{path}: a {model['type']} tokenizer (only byte-level BPE and characters come in)")
        to_char = bytes_to_unicode()
        ids = model["vocab"]
        if any(ids.get(char) != b for b, char in to_char.items()):
            raise ExportError(f"{path}: its first 256 ids are not the bytes in order")
        merges = [m.split(" ") if isinstance(m, str) else m for m in model["merges"]]
        pattern = None
        pre = spec.get("pre_tokenizer") or {}
        for part in pre.get("pretokenizers", [pre]):
            if part.get("type") == "Split":
                regex = part["pattern"].get("Regex")
                pattern = next((name for name, p in SPLIT_PATTERNS.items() if p == regex), None)
                if pattern is None:  # any other expression could take forever on some text
                    raise ExportError(f"{path}: its split pattern is not GPT-2's or GPT-4's ({str(regex)[:40]!r})")
        tokenizer = BPETokenizer([((ids[a], ids[b]), 256 + i) for i, (a, b) in enumerate(merges)], pattern)
        if any(ids.get("".join(to_char[x] for x in piece)) != i for i, piece in enumerate(tokenizer.vocab)):
            raise ExportError(f"{path}: merge ids are not 256, 257, ... in order")
        return tokenizer if merges or pattern else ByteTokenizer()
    except ExportError:
        raise
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as err:
        raise ExportError(f"{path}: not a tokenizer.json we can read ({type(err).__name__}: {err})") from None


# ---- the two directions ----

def export_pretrained(model, tokenizer, out_dir):
    """Write model and tokenizer as a Transformers directory; out_dir must not exist, or be empty. The files are
    written into a temporary folder beside it and renamed, so nothing is ever half-written."""
    from safetensors.numpy import save_file
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise ExportError(f"{out_dir} is a file, not a directory: choose a new directory")
    if out_dir.exists() and any(out_dir.iterdir()):
        raise ExportError(f"{out_dir} already exists and is not empty: choose a new directory")
    if out_dir.parent.exists() and not out_dir.parent.is_dir():
        raise ExportError(f"{out_dir.parent} is not a folder: choose a directory to write into")
    family = transformers_family(model.config)
    config = (_gpt2_config if family == "gpt2" else _llama_config)(model.config)
    state = hf_state_dict(model)
    hf_tokenizer = tokenizer_json(tokenizer) if tokenizer is not None else None
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out_dir.parent, prefix=f".{out_dir.name}-"))
    try:
        (tmp / "config.json").write_text(json.dumps(config, indent=2) + "\n")
        (tmp / "generation_config.json").write_text(json.dumps({"do_sample": False}) + "\n")
        save_file(state, str(tmp / "model.safetensors"), metadata={"format": "pt"})
        if hf_tokenizer is not None:
            hf_tokenizer.save(str(tmp / "tokenizer.json"))
            (tmp / "tokenizer_config.json").write_text(json.dumps(
                {"tokenizer_class": "PreTrainedTokenizerFast", "clean_up_tokenization_spaces": False,
                 "model_max_length": model.config.block_size}, indent=2) + "\n")
        if out_dir.exists():
            out_dir.rmdir()
        tmp.rename(out_dir)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    return out_dir


def load_pretrained(directory):
    """(our GPT in eval mode, our tokenizer or None) from a Transformers directory of the GPT-2 or LLaMA family
    (config.json and model.safetensors; tokenizer.json if present)."""
    from safetensors import SafetensorError
    from safetensors.numpy import load_file
    directory = Path(directory)
    try:
        spec = json.loads((directory / "config.json").read_text())
    except (OSError, ValueError) as err:
        raise ExportError(f"{directory}: no readable config.json ({err})") from None
    if not isinstance(spec, dict):
        raise ExportError(f"{directory}: config.json holds a {type(spec).__name__}, not a JSON object of settings")
    kind = spec.get("model_type")
    if kind not in ("gpt2", "llama"):
        raise ExportError(f"{directory}: a {kind!r} model; GPT-2 and LLaMA models come in")
    try:
        config = _config_from_gpt2(spec) if kind == "gpt2" else _config_from_llama(spec)
        weights = load_file(str(directory / "model.safetensors"))
    except (KeyError, TypeError, ValueError) as err:
        raise ExportError(f"{directory}: config.json is not one we can read ({type(err).__name__}: {err})") from None
    except (OSError, SafetensorError) as err:
        raise ExportError(f"{directory}: no readable model.safetensors ({err})") from None
    table = weights.get("transformer.wte.weight" if kind == "gpt2" else "model.embed_tokens.weight")
    if table is None or table.shape != (config.vocab_size, config.n_embd):  # checked before any allocation
        raise ExportError(f"{directory}: config.json says vocab_size {config.vocab_size} and {config.n_embd} "
                          f"features, model.safetensors holds a token table of shape "
                          f"{None if table is None else table.shape}")
    if not all(np.isfinite(w).all() for w in weights.values()):
        raise ExportError(f"{directory}: model.safetensors holds NaN or Inf")
    model = GPT(config)
    ours = {}
    try:
        for theirs, name, transpose in (_gpt2_names(config) if kind == "gpt2" else _llama_names(config)):
            ours[name] = weights[theirs].T if transpose else weights[theirs]
        if kind == "gpt2":
            for theirs, name, _ in _gpt2_biases(config):
                if name is not None:
                    ours[name] = weights[theirs]
        else:
            for i in range(config.n_layer):
                for name, pieces in _llama_split(config, i):
                    ours[name] = np.concatenate([weights[theirs] for theirs, _ in pieces])
        model.load_state_dict(ours)
    except KeyError as err:
        raise ExportError(f"{directory}: model.safetensors has no tensor {err}") from None
    except ValueError as err:
        raise ExportError(f"{directory}: {err}") from None
    tokenizer = tokenizer_from_json(directory / "tokenizer.json") if (directory / "tokenizer.json").exists() else None
    if tokenizer is not None and tokenizer.vocab_size > config.vocab_size:
        raise ExportError(f"{directory}: tokenizer.json has {tokenizer.vocab_size} tokens, the model only "
                          f"{config.vocab_size}")
    return model.eval(), tokenizer


def _config_from_gpt2(spec):
    activation = spec.get("activation_function", "gelu_new")
    ffn = {"relu": ("relu", "tanh"), "gelu_new": ("gelu", "tanh"), "gelu_pytorch_tanh": ("gelu", "tanh"),
           "gelu": ("gelu", "none")}.get(activation)
    if ffn is None:
        raise ExportError(f"a GPT-2 with activation_function={activation!r} (relu, gelu or gelu_new come in)")
    return GPTConfig(vocab_size=spec["vocab_size"], block_size=spec["n_positions"], n_layer=spec["n_layer"],
                     n_head=spec["n_head"], n_embd=spec["n_embd"], norm="layernorm", norm_placement="pre",
                     norm_eps=spec.get("layer_norm_epsilon", 1e-5), ffn=ffn[0], gelu_approximate=ffn[1],
                     ffn_hidden=spec.get("n_inner") or 4 * spec["n_embd"], positions="learned",
                     tie_weights=spec.get("tie_word_embeddings", True), dropout=0.0, ffn_dropout=False)


def _config_from_llama(spec):
    heads = spec["num_attention_heads"]
    if spec.get("num_key_value_heads", heads) != heads:
        raise ExportError("a LLaMA with grouped-query attention (num_key_value_heads < num_attention_heads)")
    rope = spec.get("rope_parameters") or {}
    if rope.get("rope_type", "default") != "default":
        raise ExportError(f"a LLaMA with rope_type={rope['rope_type']!r} (only the default rotary positions)")
    return GPTConfig(vocab_size=spec["vocab_size"], block_size=spec["max_position_embeddings"],
                     n_layer=spec["num_hidden_layers"], n_head=heads, n_embd=spec["hidden_size"], norm="rmsnorm",
                     norm_placement="pre", norm_eps=spec.get("rms_norm_eps", 1e-6), ffn="swiglu",
                     ffn_hidden=spec["intermediate_size"], ffn_bias=False, attn_bias=False, positions="rope",
                     rope_base=rope.get("rope_theta", spec.get("rope_theta", 10000.0)),
                     tie_weights=spec.get("tie_word_embeddings", False), dropout=0.0, ffn_dropout=False)
