"""Generation speed with and without the KV cache (bench.py --generate)."""
import time

import numpy as np

import tinygrad_proust as tp
from models.gpt import GPT, preset_config


def generation_speed(preset, new_tokens, device):
    """tokens/s for new_tokens sampled after a prompt that fills the whole context window, cache on and off."""
    tp.manual_seed(0)
    model = GPT.from_preset(preset).to(device)
    prompt = np.random.default_rng(0).integers(0, model.config.vocab_size, (1, model.config.block_size))
    speeds = {}
    for use_cache in (True, False):
        model.generate(prompt, 5, use_cache=use_cache, rng=np.random.default_rng(0))  # warm-up
        start = time.perf_counter()
        model.generate(prompt, new_tokens, temperature=0.8, top_k=40, use_cache=use_cache,
                       rng=np.random.default_rng(0))
        speeds[use_cache] = new_tokens / (time.perf_counter() - start)
    return speeds


def generation_table(new_tokens, device):
    """bench.py --generate: tokens/s with and without the KV cache, per preset."""
    print("| preset | context | new tokens | with cache (tok/s) | without (tok/s) | speed-up |")
    print("|---|---|---|---|---|---|")
    for preset in ("byte-gpt", "proust"):
        speeds = generation_speed(preset, new_tokens, device)
        block = preset_config(preset).block_size
        print(f"| {preset} | {block} (full) | {new_tokens} | {speeds[True]:,.0f} | {speeds[False]:,.0f} | "
              f"{speeds[True] / speeds[False]:.1f}x |", flush=True)
