"""Exercise 17 · A KV cache: generating one token at a time

Goal: generate without recomputing the past. Generating n tokens by running the whole GPT on the whole text at each
step costs n forward passes over ever longer inputs. But a position's key and value depend only on the tokens up to
it, so they never change once computed: keep them (the cache) and, at each step, run the model on the NEW token only.

    start = cache.length                                 the new tokens are at positions start .. start+T-1
    x = wte[idx] + wpe[start .. start+T-1]               NOT positions 0 .. T-1: the new token's place in the text
    in each block's attention, for the new positions:
        q, k, v = the new queries, keys, values          (B, nh, T, hs)
        K = [cached keys, k], V = [cached values, v]     (B, nh, start+T, hs): append on dim 2, keep in the cache
        y = attention(q, K, V), query i (at position start+i) seeing keys 0 .. start+i
    cache.length += T

The first call gives the whole prompt (start 0, the usual causal mask); a later call gives one token, whose query
sees every cached key (the mask is all True), or several (more of a prompt), the one at position start+i seeing
keys 0 .. start+i. F.causal_mask(T, start + T, offset=start) is the (T, start+T) mask for every case. Your
attention from exercise 8 knows only the square causal mask of T queries over their own T keys, so here the
framework's F.scaled_dot_product_attention takes the mask (attn_mask=mask); the norms and the MLP are
still your exercise 14's. With the cache, the logits are the uncached model's, position by position (up to float32
rounding).

You write `cached_attention` (the new keys and values appended, the attention over all of them, the heads merged
back and attn.c_proj applied, as exercise 13's forward ends) and `forward_cached` (exercise 15's forward at positions
start .., through the cache: each block's residual steps written out, x + cached attention of ln_1(x), then x + the
MLP of ln_2(x), since a block's own forward knows no cache); `generate` is given.
Check: python -m course check 17
"""
import numpy as np

import tinygrad_proust as tp
from tinygrad_proust import functional as F  # noqa: F401  (F.causal_mask, F.linear, ...)

from .ex15_gpt import GPT  # noqa: F401  (your GPT from exercise 15)


class KVCache:
    """Each layer's keys and values (B, nh, length, hs) of the tokens seen so far."""

    def __init__(self, n_layer):
        self.keys = [None] * n_layer
        self.values = [None] * n_layer
        self.length = 0


def cached_attention(attn, x, cache, layer, start):
    """Your MultiHeadAttention `attn` on x (B, T, C), the tokens at positions start .. start+T-1, with the keys and
    values of the positions before them from cache (and theirs appended to it)."""
    B, T, C = x.shape
    nh = attn.n_head
    q, k, v = attn.c_attn(x).split(C, dim=2)
    q, k, v = (t.view(B, T, nh, C // nh).transpose(1, 2) for t in (q, k, v))      # (B, nh, T, hs) each
    raise NotImplementedError("exercise 17: append k and v to the layer's cache, attend over all of them")


def forward_cached(model, idx, cache):
    """Your GPT's logits (B, T, V) for idx (B, T), the tokens after the cache.length already seen."""
    raise NotImplementedError('exercise 17: forward_cached')


def generate(model, idx, new_tokens):
    """Greedy continuation of idx (B, T) by new_tokens tokens: the prompt once, then one token per step."""
    cache = KVCache(len(model.blocks))
    with tp.no_grad():
        logits = forward_cached(model, tp.tensor(idx), cache)
        out = [np.asarray(idx)]
        for _ in range(new_tokens):
            token = logits.numpy()[:, -1].argmax(axis=-1)[:, None]
            out.append(token)
            logits = forward_cached(model, tp.tensor(token), cache)
    return np.concatenate(out, axis=1)
