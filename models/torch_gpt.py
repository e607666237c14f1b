"""The same GPT in PyTorch: the reference for the parity tests and the benchmark (not used for training).

Parameter names and shapes equal models/gpt.py's, so weights move across with state_dict:
    twin.load_state_dict({k: torch.from_numpy(v.numpy()) for k, v in ours.state_dict().items()})
Written independently of tinygrad_proust, with torch.nn's own modules and functions.
"""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F


def _norm(config):
    if config.norm == "rmsnorm":
        return nn.RMSNorm(config.n_embd, eps=config.norm_eps)
    return nn.LayerNorm(config.n_embd, eps=config.norm_eps, bias=config.norm_bias)


def _rotate(x, cos, sin):
    half = x.shape[-1] // 2
    return x * cos + torch.cat([-x[..., half:], x[..., :half]], dim=-1) * sin


class TorchAttention(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.n_head, self.dropout, self.positions = config.n_head, config.dropout, config.positions
        self.c_attn = nn.Linear(config.n_embd, 3 * config.n_embd, bias=config.attn_bias)
        self.c_proj = nn.Linear(config.n_embd, config.n_embd, bias=config.attn_bias)
        self.resid_dropout = nn.Dropout(config.dropout)
        if config.positions == "rope":
            hs = config.n_embd // config.n_head
            inv_freq = config.rope_base ** (-torch.arange(0, hs, 2, dtype=torch.float64) / hs)
            angles = torch.arange(config.block_size, dtype=torch.float64)[:, None] * inv_freq
            angles = torch.cat([angles, angles], dim=1)
            self.register_buffer("cos", angles.cos().float(), persistent=False)
            self.register_buffer("sin", angles.sin().float(), persistent=False)

    def forward(self, x, use_sdpa=False):
        B, T, C = x.shape
        q, k, v = self.c_attn(x).split(C, dim=2)
        q, k, v = (t.view(B, T, self.n_head, C // self.n_head).transpose(1, 2) for t in (q, k, v))
        if self.positions == "rope":
            cos, sin = self.cos[:T].to(x.dtype), self.sin[:T].to(x.dtype)
            q, k = _rotate(q, cos, sin), _rotate(k, cos, sin)
        p = self.dropout if self.training else 0.0
        if use_sdpa:
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True, dropout_p=p)
        else:  # the plain eager formulation, one kernel per op
            att = (q @ k.transpose(-2, -1)) / math.sqrt(k.shape[-1])
            mask = torch.ones(T, T, dtype=torch.bool, device=x.device).tril()
            att = F.dropout(att.masked_fill(~mask, float("-inf")).softmax(dim=-1), p, self.training)
            y = att @ v
        return self.resid_dropout(self.c_proj(y.transpose(1, 2).reshape(B, T, C)))


class TorchMLP(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.kind, self.gelu_approximate = config.ffn, config.gelu_approximate
        width = 2 * config.ffn_hidden if config.ffn == "swiglu" else config.ffn_hidden
        self.c_fc = nn.Linear(config.n_embd, width, bias=config.ffn_bias)
        self.c_proj = nn.Linear(config.ffn_hidden, config.n_embd, bias=config.ffn_bias)
        self.hidden_dropout = nn.Dropout(config.dropout) if config.ffn_dropout else nn.Identity()
        self.resid_dropout = nn.Dropout(config.dropout)

    def forward(self, x):
        h = self.c_fc(x)
        if self.kind == "swiglu":
            gate, up = h.chunk(2, dim=-1)
            h = F.silu(gate) * up
        elif self.kind == "gelu":
            h = F.gelu(h, approximate=self.gelu_approximate)
        else:
            h = F.relu(h)
        return self.resid_dropout(self.c_proj(self.hidden_dropout(h)))


class TorchBlock(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.pre_norm = config.norm_placement == "pre"
        self.ln_1, self.attn, self.ln_2, self.mlp = (_norm(config), TorchAttention(config), _norm(config),
                                                     TorchMLP(config))

    def forward(self, x, use_sdpa=False):
        if self.pre_norm:
            x = x + self.attn(self.ln_1(x), use_sdpa)
            return x + self.mlp(self.ln_2(x))
        x = self.ln_1(x + self.attn(x, use_sdpa))
        return self.ln_2(x + self.mlp(x))


class TorchGPT(nn.Module):
    def __init__(self, config, use_sdpa=False):
        super().__init__()
        self.config, self.use_sdpa = config, use_sdpa
        self.wte = nn.Embedding(config.vocab_size, config.n_embd)
        if config.positions == "learned":
            self.wpe = nn.Embedding(config.block_size, config.n_embd)
        elif config.positions == "sinusoidal":
            pos = torch.arange(config.block_size, dtype=torch.float64)[:, None]
            freq = torch.exp(-math.log(10000.0) * torch.arange(0, config.n_embd, 2, dtype=torch.float64)
                             / config.n_embd)
            table = torch.zeros(config.block_size, config.n_embd, dtype=torch.float64)
            table[:, 0::2], table[:, 1::2] = torch.sin(pos * freq), torch.cos(pos * freq)
            self.register_buffer("pos_table", table.float(), persistent=False)
        self.drop = nn.Dropout(config.dropout)
        self.blocks = nn.ModuleList(TorchBlock(config) for _ in range(config.n_layer))
        self.ln_f = _norm(config) if config.final_norm else None
        self.lm_head = None if config.tie_weights else nn.Linear(config.n_embd, config.vocab_size,
                                                                 bias=config.head_bias)

    def forward(self, idx, targets=None):
        B, T = idx.shape
        x = self.wte(idx)
        if self.config.scale_embeddings:
            x = x * math.sqrt(self.config.n_embd)
        if self.config.positions == "learned":
            x = x + self.wpe(torch.arange(T, device=idx.device))
        elif self.config.positions == "sinusoidal":
            x = x + self.pos_table[:T].to(x.dtype)
        x = self.drop(x)
        for block in self.blocks:
            x = block(x, self.use_sdpa)
        if self.ln_f is not None:
            x = self.ln_f(x)
        logits = F.linear(x, self.wte.weight) if self.lm_head is None else self.lm_head(x)
        loss = None if targets is None else F.cross_entropy(logits.view(B * T, -1), targets.view(B * T))
        return logits, loss


def copy_weights(ours, twin):
    """Load our model's weights into the PyTorch twin (same names, same shapes, same dtype)."""
    state = {name: torch.from_numpy(t.numpy()) for name, t in ours.state_dict().items()}
    twin.load_state_dict(state, strict=True)
    return twin
