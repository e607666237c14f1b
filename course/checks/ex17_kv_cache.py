"""Checks of exercise 17: through the cache, the prompt's logits and then each new token's are the uncached
GPT's (exercise 15) at every step, and the cache grows by one position per step; several new tokens given at once
after a prompt are right too."""
import numpy as np

import tinygrad_proust as tp
from course.diagnose import compare
from course.runner import Wrong

TITLE = "A KV cache (generation one token at a time)"
MINUTES = 30
NEEDS = [15]


def model_of(ex):
    tp.manual_seed(0)
    model = ex.GPT(vocab_size=13, block_size=16, n_layer=2, n_head=2, n_embd=16)
    rng = np.random.default_rng(21)
    for name, p in model.named_parameters():  # larger than the initial weights, so that every position matters
        gain = p.ndim == 1 and "ln" in name and name.endswith("weight")
        p.data = (rng.standard_normal(p.shape) * 0.3 + (1.0 if gain else 0.0)).astype(np.float32)
    return model.eval()


def step(ex, model, idx, cache, expected_length):
    try:
        return ex.forward_cached(model, tp.tensor(idx), cache).numpy()
    except (ValueError, IndexError) as error:
        held = [k.shape[2] for k in cache.keys if k is not None]
        if held and held[0] != expected_length:
            raise Wrong(f"the cache of layer 0 holds {held[0]} positions after {expected_length} tokens: append the "
                        "new keys and values to the cached ones (tp.cat on dim 2) and keep the result") from None
        raise error


def check_prompt(ex):
    """the prompt through an empty cache gives the uncached GPT's logits at every position"""
    model = model_of(ex)
    idx = np.random.default_rng(22).integers(0, 13, (2, 6))
    with tp.no_grad():
        want = model(tp.tensor(idx)).numpy()
        got = step(ex, model, idx, ex.KVCache(2), 6)
    compare("forward_cached(prompt) through an empty cache", got, want, rtol=1e-4, atol=1e-4)


def check_steps(ex):
    """then each new token's logits are the uncached GPT's on the whole text, and the cache grows by one a step"""
    model = model_of(ex)
    idx = np.random.default_rng(23).integers(0, 13, (2, 10))
    cache = ex.KVCache(2)
    with tp.no_grad():
        step(ex, model, idx[:, :4], cache, 4)
        for t in range(4, 10):
            got = step(ex, model, idx[:, t:t + 1], cache, t + 1)
            if cache.length != t + 1:
                raise Wrong(f"after the prompt of 4 and {t - 3} more tokens, cache.length is {cache.length}, it "
                            f"should be {t + 1}: the cache must grow by T each call (cache.length += T)")
            held = [k.shape[2] for k in cache.keys]
            if held != [t + 1] * 2:
                raise Wrong(f"after {t + 1} tokens the layers' caches hold {held} positions: append the new keys "
                            "and values to the cached ones and keep the result")
            want = model(tp.tensor(idx[:, :t + 1])).numpy()[:, -1:]
            if got.shape == want.shape and not np.allclose(got, want, rtol=1e-4, atol=1e-4):
                raise Wrong(f"the cached logits of the token at position {t} differ from the uncached model's: "
                            f"its position embedding is wpe[{t}] (positions continue from cache.length, they do "
                            "not restart at 0), and its query sees every cached key")
            compare(f"the cached logits of the token at position {t}", got, want, rtol=1e-4, atol=1e-4)


def check_chunk(ex):
    """several new tokens at once after a prompt: each sees every cached position and the new ones up to itself"""
    model = model_of(ex)
    idx = np.random.default_rng(25).integers(0, 13, (2, 9))
    cache = ex.KVCache(2)
    with tp.no_grad():
        step(ex, model, idx[:, :5], cache, 5)
        got = step(ex, model, idx[:, 5:], cache, 9)
        want = model(tp.tensor(idx)).numpy()[:, 5:]
    if got.shape == want.shape and not np.allclose(got, want, rtol=1e-4, atol=1e-4):
        raise Wrong("after a prompt of 5 tokens, the cached logits of 4 more given at once (positions 5 to 8) differ "
                    "from the uncached model's: new token i, at position start + i, sees every cached key and the "
                    "new keys up to its own, the mask F.causal_mask(T, start + T, offset=start) for a prompt, one "
                    "token or several alike (is_causal=True lines the mask up with the first key, not with start)")
    compare("the cached logits of 4 tokens given at once after a prompt of 5", got, want, rtol=1e-4, atol=1e-4)


def check_generate(ex):
    """greedy generation through the cache gives the tokens the uncached model picks"""
    model = model_of(ex)
    prompt = np.random.default_rng(24).integers(0, 13, (1, 3))
    got = ex.generate(model, prompt, 8)
    idx = prompt
    with tp.no_grad():
        for _ in range(8):
            idx = np.concatenate([idx, model(tp.tensor(idx)).numpy()[:, -1].argmax(-1)[:, None]], axis=1)
    if np.asarray(got).tolist() != idx.tolist():
        raise Wrong(f"generate gave {np.asarray(got).tolist()}, the uncached model picks {idx.tolist()}")
