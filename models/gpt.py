"""A decoder-only GPT built from plain tinygrad_proust modules, in nanoGPT's order: config, attention, MLP, block, GPT.

    x₀ = E[idx] (+ positions)                       token embeddings, (B, T, C)
    xₗ = xₗ₋₁ + attn(norm(xₗ₋₁)), then + mlp(norm(·))   each block, pre-norm (post-norm: norm(x + attn(x)), ...)
    logits = norm(x_L) Wᵀ                           W: the embedding matrix itself when tied, (B, T, vocab)

One class covers the common designs through GPTConfig: LayerNorm or RMSNorm, placed before (pre) or after (post)
each sub-layer; a ReLU, GELU or SwiGLU feed-forward; learned, sinusoidal or rotary positions; a tied or
separate output head. Each variant is chosen once, when the model is built (a module per choice), so forward()
reads the same for all of them. PRESETS names the designs this project trains.
"""
import math
from dataclasses import asdict, dataclass, fields

import numpy as np

import tinygrad_proust as tp
from tinygrad_proust import functional as F
from tinygrad_proust import nn


@dataclass
class GPTConfig:
    vocab_size: int = 256
    block_size: int = 128            # context length
    n_layer: int = 4
    n_head: int = 4
    n_embd: int = 64                 # model width (d_model)
    norm: str = "layernorm"          # "layernorm" | "rmsnorm"
    norm_placement: str = "pre"      # "pre" (GPT-2 onwards) | "post" (the original paper)
    norm_bias: bool = True           # LayerNorm bias
    norm_eps: float = 1e-5
    final_norm: bool = True          # a norm before the head
    ffn: str = "gelu"                # "relu" | "gelu" | "swiglu"
    ffn_hidden: int = 256
    ffn_bias: bool = True
    gelu_approximate: str = "tanh"   # "tanh" (GPT-2) | "none" (exact erf)
    attn_bias: bool = True           # biases of the q/k/v and output projections
    positions: str = "learned"       # "learned" | "sinusoidal" | "rope"
    rope_base: float = 10000.0
    scale_embeddings: bool = False   # token embeddings × sqrt(n_embd), as in the original paper
    tie_weights: bool = True         # the head reuses the token embedding matrix
    head_bias: bool = False          # bias of an untied head
    dropout: float = 0.0             # on embeddings, attention weights, residual branches (and see ffn_dropout)
    ffn_dropout: bool = True         # dropout on the feed-forward's hidden layer too (nanoGPT and GPT-2: none there)
    scaled_residual_init: bool = False  # GPT-2: residual output projections ~ normal(0, 0.02 / sqrt(2 n_layer))

    def __post_init__(self):
        choices = {"norm": ("layernorm", "rmsnorm"), "norm_placement": ("pre", "post"),
                   "ffn": ("relu", "gelu", "swiglu"), "positions": ("learned", "sinusoidal", "rope"),
                   "gelu_approximate": ("tanh", "none")}
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise ValueError(f"GPTConfig.{name} must be one of {allowed}, got {getattr(self, name)!r}")
        for name in ("vocab_size", "block_size", "n_layer", "n_head", "n_embd", "ffn_hidden"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"GPTConfig.{name} must be a whole number >= 1, got {value!r}")
        if not self.norm_eps > 0:
            raise ValueError(f"GPTConfig.norm_eps must be > 0, got {self.norm_eps}")
        if self.n_embd % self.n_head:
            raise ValueError(f"GPTConfig: n_embd {self.n_embd} is not divisible by n_head {self.n_head}")
        if self.positions == "rope" and (self.n_embd // self.n_head) % 2:
            raise ValueError("GPTConfig: rotary positions need an even head size")
        if not 0 <= self.dropout < 1:
            raise ValueError(f"GPTConfig.dropout must be in [0, 1), got {self.dropout}")

    @classmethod
    def from_dict(cls, values):
        known = {f.name for f in fields(cls)}
        unknown = set(values) - known
        if unknown:
            raise ValueError(f"GPTConfig: unknown fields {sorted(unknown)}")
        return cls(**values)

    def to_dict(self):
        return asdict(self)


PRESETS = {
    # a byte-level GPT in the modern style (RMSNorm, SwiGLU, no biases)
    "byte-gpt": dict(vocab_size=256, block_size=128, n_layer=4, n_head=4, n_embd=64, norm="rmsnorm",
                     norm_placement="pre", ffn="swiglu", ffn_hidden=172, ffn_bias=False, attn_bias=False,
                     positions="learned", tie_weights=True, norm_eps=1e-5),
    # the Proust character model (420K parameters), in the original paper's layout
    "proust": dict(vocab_size=94, block_size=256, n_layer=2, n_head=2, n_embd=128, norm="layernorm",
                   norm_placement="post", final_norm=True, ffn="relu", ffn_hidden=512, ffn_bias=True,
                   attn_bias=False, positions="sinusoidal", scale_embeddings=True, tie_weights=False,
                   head_bias=False, dropout=0.1),
    # the smallest thing that is still a transformer
    "raven": dict(vocab_size=27, block_size=8, n_layer=1, n_head=1, n_embd=32, norm="layernorm",
                  norm_placement="pre", ffn="relu", ffn_hidden=128, positions="learned", tie_weights=True),
    # the default of train.py: a small character model sized to learn Shakespeare on a 2-core CPU in minutes
    "char-small": dict(vocab_size=84, block_size=64, n_layer=4, n_head=4, n_embd=128, norm="layernorm",
                       norm_placement="pre", ffn="relu", ffn_hidden=512, positions="learned", tie_weights=True),
    # the widely used small character GPT recipe (nanoGPT's shakespeare-char)
    "baby-gpt": dict(vocab_size=65, block_size=256, n_layer=6, n_head=6, n_embd=384, norm="layernorm",
                     norm_placement="pre", norm_bias=False, ffn="gelu", ffn_hidden=1536, ffn_bias=False,
                     attn_bias=False, positions="learned", tie_weights=True, dropout=0.2, ffn_dropout=False,
                     scaled_residual_init=True),
}


def make_norm(config):
    if config.norm == "rmsnorm":
        return nn.RMSNorm(config.n_embd, eps=config.norm_eps)
    return nn.LayerNorm(config.n_embd, eps=config.norm_eps, bias=config.norm_bias)


def make_activation(config):
    """The feed-forward's non-linearity; SwiGLU halves the width (its c_fc is twice as wide)."""
    if config.ffn == "swiglu":
        return nn.SwiGLU()
    return nn.GELU(config.gelu_approximate) if config.ffn == "gelu" else nn.ReLU()


class ScaledEmbedding(nn.Embedding):
    """Token embeddings × sqrt(n_embd), as in the original paper (its embeddings share scale with the positions)."""

    def forward(self, idx):
        return super().forward(idx) * math.sqrt(self.embedding_dim)


class SinusoidalPositions(nn.Module):
    """The original paper's fixed position table, looked up like an embedding (nothing to train)."""

    def __init__(self, block_size, n_embd):
        super().__init__()
        table = nn.sinusoidal_positions(block_size, n_embd).astype(np.float32)
        self.register_buffer("table", tp.tensor(table), persistent=False)  # from the config: not in state_dict

    def forward(self, positions):
        return self.table[positions.data]                            # (T, C)


class RotaryEmbedding(nn.Module):
    """Rotary positions (RoPE): rotate each (x_i, x_{i+d/2}) pair of a head by the angle pos · base^(-2i/d).
    The dot product of a rotated query and key then depends on their distance only."""

    def __init__(self, head_size, max_positions, base=10000.0):
        super().__init__()
        inv_freq = base ** (-np.arange(0, head_size, 2, dtype=np.float64) / head_size)
        angles = np.arange(max_positions, dtype=np.float64)[:, None] * inv_freq  # (T, hs/2)
        angles = np.concatenate([angles, angles], axis=1)                          # (T, hs)
        # computed from the config, so left out of state_dict and the checkpoints (persistent=False)
        self.register_buffer("cos", tp.tensor(np.cos(angles).astype(np.float32)), persistent=False)
        self.register_buffer("sin", tp.tensor(np.sin(angles).astype(np.float32)), persistent=False)

    def forward(self, x, start=0):
        """x: (B, nh, T, hs), positions start .. start+T-1."""
        T, half = x.shape[-2], x.shape[-1] // 2
        cos = self.cos[start:start + T].to(dtype=x.dtype)
        sin = self.sin[start:start + T].to(dtype=x.dtype)
        rotated = tp.cat([-x[..., half:], x[..., :half]], dim=-1)  # (-x2, x1)
        return x * cos + rotated * sin


class CausalSelfAttention(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.n_head, self.n_embd = config.n_head, config.n_embd
        self.c_attn = nn.Linear(config.n_embd, 3 * config.n_embd, bias=config.attn_bias)  # q, k, v in one GEMM
        self.rotary = (RotaryEmbedding(config.n_embd // config.n_head, config.block_size, config.rope_base)
                       if config.positions == "rope" else None)
        self.attend = nn.ScaledDotProductAttention(config.dropout)  # a module: hooks can read its q, k, v
        self.c_proj = nn.Linear(config.n_embd, config.n_embd, bias=config.attn_bias)
        self.resid_dropout = nn.Dropout(config.dropout)

    def forward(self, x, cache=None, start=0):
        """x: (B, T, C) for the tokens at positions start .. start+T-1. With a LayerCache, the keys and values
        of earlier positions come from it and this call's are appended to it (generation)."""
        B, T, C = x.shape
        q, k, v = self.c_attn(x).split(C, dim=2)                     # 3 × (B, T, C)
        q = q.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)  # (B, nh, T, hs)
        k = k.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)  # (B, nh, T, hs)
        v = v.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)  # (B, nh, T, hs)
        if self.rotary is not None:
            q, k = self.rotary(q, start), self.rotary(k, start)
        if cache is None:
            y = self.attend(q, k, v, is_causal=True)                 # (B, nh, T, hs)
        else:
            k, v = cache.append(k, v, start)                         # (B, nh, start+T, hs) each
            # the T queries are the last T positions; one new query may see every cached key (no mask)
            mask = F.causal_mask(T, start + T, offset=start, device=x.device) if T > 1 else None
            y = self.attend(q, k, v, attn_mask=mask)
        y = y.transpose(1, 2).reshape(B, T, C)                       # (B, T, C): heads side by side
        return self.resid_dropout(self.c_proj(y))


class MLP(nn.Module):
    """c_proj(act(c_fc(x))); for SwiGLU, act(h) = silu(gate) * up with [gate, up] = h."""

    def __init__(self, config):
        super().__init__()
        width = 2 * config.ffn_hidden if config.ffn == "swiglu" else config.ffn_hidden
        self.c_fc = nn.Linear(config.n_embd, width, bias=config.ffn_bias)
        self.act = make_activation(config)
        self.hidden_dropout = nn.Dropout(config.dropout) if config.ffn_dropout else nn.Identity()
        self.c_proj = nn.Linear(config.ffn_hidden, config.n_embd, bias=config.ffn_bias)
        self.resid_dropout = nn.Dropout(config.dropout)

    def forward(self, x):
        h = self.act(self.c_fc(x))                                   # (B, T, H)
        return self.resid_dropout(self.c_proj(self.hidden_dropout(h)))


class Block(nn.Module):
    """Pre-norm (GPT-2 onwards): x + attn(ln_1(x)), then + mlp(ln_2(x))."""

    def __init__(self, config):
        super().__init__()
        self.ln_1 = make_norm(config)
        self.attn = CausalSelfAttention(config)
        self.ln_2 = make_norm(config)
        self.mlp = MLP(config)

    def forward(self, x, cache=None, start=0):
        x = x + self.attn(self.ln_1(x), cache=cache, start=start)
        return x + self.mlp(self.ln_2(x))


class PostNormBlock(Block):
    """Post-norm (the original paper): ln_1(x + attn(x)), then ln_2(x + mlp(x))."""

    def forward(self, x, cache=None, start=0):
        x = self.ln_1(x + self.attn(x, cache=cache, start=start))
        return self.ln_2(x + self.mlp(x))


class GPT(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.config = config
        embedding = ScaledEmbedding if config.scale_embeddings else nn.Embedding
        self.wte = embedding(config.vocab_size, config.n_embd)
        if config.positions == "learned":
            self.wpe = nn.Embedding(config.block_size, config.n_embd)
        elif config.positions == "sinusoidal":
            self.wpe = SinusoidalPositions(config.block_size, config.n_embd)
        else:
            self.wpe = None  # rotary positions act inside attention
        self.drop = nn.Dropout(config.dropout)
        block = Block if config.norm_placement == "pre" else PostNormBlock
        self.blocks = nn.ModuleList(block(config) for _ in range(config.n_layer))
        self.ln_f = make_norm(config) if config.final_norm else nn.Identity()
        if config.tie_weights:
            self.lm_head = None  # logits = x @ wte.weightᵀ: the embedding matrix is shared, not copied
        else:
            self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=config.head_bias)
        if config.scaled_residual_init:
            for name, p in self.named_parameters():
                if name.endswith("c_proj.weight"):
                    nn.normal_(p, std=0.02 / math.sqrt(2 * config.n_layer))
        for name, p in self.named_parameters():
            p.name = name  # leaves show their module path in graphs and errors

    @classmethod
    def from_preset(cls, name, **overrides):
        """GPT.from_preset("proust", vocab_size=len(tokenizer)): a preset, with any config field overridden."""
        return cls(preset_config(name, **overrides))

    def optimizer_groups(self, weight_decay):
        """AdamW's parameter groups over the parameters that train, as nanoGPT's configure_optimizers makes them:
        the weight matrices (the token embedding too) decay; gains, biases and the position table do not."""
        trained = [(name, p) for name, p in self.named_parameters() if p.requires_grad]
        decays = {name: p.ndim >= 2 and name != "wpe.weight" for name, p in trained}
        return [{"params": [p for name, p in trained if decays[name]], "weight_decay": weight_decay},
                {"params": [p for name, p in trained if not decays[name]], "weight_decay": 0.0}]

    @property
    def device(self):
        return self.wte.weight.device

    def head_weight(self):
        """The output projection's (vocab, C) weight: the token embedding matrix itself when tied."""
        return self.wte.weight if self.lm_head is None else self.lm_head.weight

    def head(self, x):
        """Final norm and the output projection: (B, T, C) residual stream -> (B, T, vocab) logits."""
        x = self.ln_f(x)
        if self.lm_head is None:
            return F.linear(x, self.wte.weight)
        return self.lm_head(x)

    def forward(self, idx, targets=None, kv_cache=None):
        """idx: (B, T) token ids -> (logits (B, T, vocab), loss or None), as nanoGPT's. With a KVCache, idx
        continues the tokens already in the cache (their keys and values are reused) and the cache grows by T.
        To look inside (attention weights, the residual stream), hook the modules: see models/inspection.py."""
        idx = idx if isinstance(idx, tp.Tensor) else tp.tensor(idx, device=self.device)
        B, T = idx.shape
        start = 0 if kv_cache is None else kv_cache.length
        if start + T > self.config.block_size:
            raise ValueError(f"GPT: sequence of length {start + T} is longer than the context (block_size "
                             f"{self.config.block_size})")
        x = self.wte(idx)                                            # (B, T, C)
        if self.wpe is not None:
            x = x + self.wpe(tp.arange(start, start + T, device=x.device))  # (T, C) broadcast over B
        x = self.drop(x)
        for i, block in enumerate(self.blocks):
            x = block(x, cache=None if kv_cache is None else kv_cache.layers[i], start=start)
        if kv_cache is not None:
            kv_cache.length += T
        logits = self.head(x)                                        # (B, T, vocab)
        loss = None
        if targets is not None:
            targets = targets if isinstance(targets, tp.Tensor) else tp.tensor(targets, device=logits.device)
            loss = F.cross_entropy(logits.view(B * T, -1), targets.view(B * T))
        return logits, loss

    def generate(self, idx, max_new_tokens, temperature=1.0, top_k=None, top_p=None, rng=None, use_cache=True):
        """Continue each row of idx (B, T) by max_new_tokens sampled tokens; returns (B, T + max_new_tokens) ids.
        Each step: logits of the last position -> / temperature (0: greedy) -> top_k / top_p -> softmax -> sample."""
        idx = tp.tensor(idx).numpy().astype(np.int64)  # a list, or either device's array or Tensor
        new = list(self.stream(idx, max_new_tokens, temperature, top_k, top_p, rng, use_cache))
        return np.concatenate([idx] + [t[:, None] for t in new], axis=1) if new else idx

    def stream(self, idx, max_new_tokens, temperature=1.0, top_k=None, top_p=None, rng=None, use_cache=True):
        """Yield each new (B,) array of token ids as soon as it is sampled (what generate() collects).

        The context window: a prompt longer than block_size keeps its last block_size tokens; when the context
        fills the window, it jumps forward to its last block_size // 2 tokens (at least one; half a window of context
        is always kept). With learned or sinusoidal (absolute) positions every kept token then has a new
        position, so its keys and values must be recomputed; with RoPE the keys would survive a shift, but
        the deeper layers' keys still depend on the tokens that left the window. So for every scheme the cache
        is rebuilt (one forward pass over the kept half) at each jump, and the uncached path uses the same
        window, so both give the same tokens. Between jumps each token costs one position of attention.
        """
        rng = rng if rng is not None else np.random.default_rng()
        idx = tp.tensor(idx).numpy().astype(np.int64)  # the context is kept on the host
        if idx.ndim != 2 or idx.shape[1] == 0:
            raise ValueError(f"generate: idx must be (B, T) with T >= 1, got shape {idx.shape}")
        if idx.min() < 0 or idx.max() >= self.config.vocab_size:  # on the host, before any device sees them
            raise IndexError(f"generate: token ids must be in [0, {self.config.vocab_size}), got {idx.min()} .. "
                             f"{idx.max()}")
        block = self.config.block_size
        start, cache = max(0, idx.shape[1] - block), None   # the window is idx[:, start:]
        was_training = self.training
        self.eval()
        try:
            with tp.no_grad():
                for _ in range(max_new_tokens):
                    if idx.shape[1] - start > block:       # the window is full: jump, and rebuild the cache
                        start, cache = idx.shape[1] - max(1, block // 2), None
                    if not use_cache:
                        logits, _ = self(idx[:, start:])
                    elif cache is None:                   # fill the cache with the whole window
                        cache = KVCache(len(self.blocks), block)
                        logits, _ = self(idx[:, start:], kv_cache=cache)
                    else:                                 # one new position
                        logits, _ = self(idx[:, -1:], kv_cache=cache)
                    last = logits[:, -1, :].numpy().astype(np.float64)  # (B, vocab), on the host
                    next_ids = sample_next(last, temperature, top_k, top_p, rng)
                    idx = np.concatenate([idx, next_ids[:, None]], axis=1)
                    yield next_ids
        finally:
            self.train(was_training)


class LayerCache:
    """One layer's keys and values: buffers of (B, nh, block_size, hs) allocated at the first call, of which
    the first `start + T` positions are filled. For generation under no_grad: the buffers are written in place."""

    def __init__(self, block_size):
        self.block_size = block_size
        self.k = self.v = None

    def append(self, k, v, start):
        """Write the keys/values of positions start .. start+T-1; return those of positions 0 .. start+T-1."""
        if tp.is_grad_enabled():
            raise RuntimeError("KVCache is for generation: use it under tinygrad_proust.no_grad()")
        if self.k is None:
            B, nh, _, hs = k.shape
            self.k = k.xp.empty((B, nh, self.block_size, hs), dtype=k.dtype)
            self.v = v.xp.empty((B, nh, self.block_size, v.shape[-1]), dtype=v.dtype)
        end = start + k.shape[2]
        self.k[:, :, start:end], self.v[:, :, start:end] = k.data, v.data
        return tp.Tensor(self.k[:, :, :end]), tp.Tensor(self.v[:, :, :end])


class KVCache:
    """Keys and values of every layer for the tokens seen so far (`length` of them), for generation."""

    def __init__(self, n_layer, block_size):
        self.layers = [LayerCache(block_size) for _ in range(n_layer)]
        self.length = 0


def filter_logits(logits, top_k=None, top_p=None):
    """Set to -inf every logit outside the top_k largest and outside the smallest set of tokens whose
    probability adds up to at least top_p (the nucleus). logits: (B, vocab) float64 on the host."""
    logits = logits.copy()
    if top_k is not None and top_k < logits.shape[-1]:
        kth = np.sort(logits, axis=-1)[:, -top_k][:, None]
        logits[logits < kth] = -np.inf
    if top_p is not None and top_p < 1.0:
        order = np.argsort(-logits, axis=-1)
        sorted_logits = np.take_along_axis(logits, order, axis=-1)
        probs = np.exp(sorted_logits - sorted_logits[:, :1])
        probs /= probs.sum(axis=-1, keepdims=True)
        before = np.cumsum(probs, axis=-1) - probs              # mass of the tokens ranked above each one
        drop_sorted = before >= top_p - 1e-9                     # the nucleus is already full without it
                                                                 # (1e-9: rounding of the running sum)
        drop_sorted[:, 0] = False                                # the most likely token always stays
        drop = np.zeros_like(drop_sorted)
        np.put_along_axis(drop, order, drop_sorted, axis=-1)
        logits[drop] = -np.inf
    return logits


def sample_next(logits, temperature=1.0, top_k=None, top_p=None, rng=None):
    """One token id per row of logits (B, vocab): greedy when temperature is 0, else a filtered softmax sample."""
    if not np.isfinite(logits).all():
        raise FloatingPointError("the model's logits are NaN or Inf: its weights are broken (did training diverge?)")
    if not (temperature >= 0 and math.isfinite(temperature)):
        raise ValueError(f"temperature must be a finite number >= 0, got {temperature}")
    if temperature == 0:
        return logits.argmax(axis=-1)
    # shift before dividing, so a tiny temperature sends the others to -inf and the best stays at 0 (no inf - inf)
    with np.errstate(over="ignore"):
        logits = filter_logits((logits - logits.max(axis=-1, keepdims=True)) / temperature, top_k, top_p)
    probs = np.exp(logits - logits.max(axis=-1, keepdims=True))
    probs /= probs.sum(axis=-1, keepdims=True)
    cumulative = probs.cumsum(axis=-1)
    draws = rng.random((logits.shape[0], 1))
    return np.minimum((cumulative < draws).sum(axis=-1), logits.shape[-1] - 1)


def preset_config(name, **overrides):
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}: choose from {', '.join(PRESETS)}")
    return GPTConfig(**{**PRESETS[name], **overrides})
