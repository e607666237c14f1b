"""Our generation against Hugging Face Transformers' generate on the same exported model (bench.py --hf-generate)."""
import statistics
import time

import numpy as np

import tinygrad_proust as tp
from models.gpt import GPT, preset_config


def hf_generation_race(new_tokens, repeats=3):
    """Our generate (KV cache) against Transformers' generate (its own cache) on the same exported model: CPU,
    batch 1, greedy, new_tokens after a prompt of 512 tokens, with a context of 1,024 so that prompt and
    continuation fit GPT-2's position table. Both alternate; medians. The tokens must agree."""
    import tempfile
    import torch
    import transformers
    from models.export import export_pretrained
    from models.tokenizer import ByteTokenizer
    transformers.logging.set_verbosity_error()
    print("| model | parameters | new tokens | ours (tok/s) | Transformers (tok/s) | ours / Transformers | "
          "same tokens |")
    print("|---|---|---|---|---|---|---|")
    families = {"GPT-2 (char-small, context 1024)": dict(),
                "LLaMA (same size: RMSNorm, SwiGLU, RoPE)": dict(norm="rmsnorm", ffn="swiglu", positions="rope",
                                                                 attn_bias=False, ffn_bias=False)}
    for name, changes in families.items():
        tp.manual_seed(0)
        model = GPT(preset_config("char-small", vocab_size=256, block_size=1024, **changes)).eval()
        with tempfile.TemporaryDirectory() as folder:
            theirs = transformers.AutoModelForCausalLM.from_pretrained(
                export_pretrained(model, ByteTokenizer(), f"{folder}/hf")).eval()
        prompt = np.random.default_rng(0).integers(0, 256, (1, 512))
        times, outputs = {"ours": [], "transformers": []}, {}
        for _ in range(repeats):
            start = time.perf_counter()
            outputs["ours"] = model.generate(prompt, new_tokens, temperature=0)[0, 512:]
            times["ours"].append(time.perf_counter() - start)
            start = time.perf_counter()
            with torch.no_grad():
                out = theirs.generate(torch.from_numpy(prompt), max_new_tokens=new_tokens, min_new_tokens=new_tokens,
                                      do_sample=False)
            times["transformers"].append(time.perf_counter() - start)
            outputs["transformers"] = out[0, 512:].numpy()
        ours, hf = (new_tokens / statistics.median(times[k]) for k in ("ours", "transformers"))
        same = np.array_equal(outputs["ours"], outputs["transformers"])
        print(f"| {name} | {model.num_parameters():,} | {new_tokens} | {ours:,.0f} | {hf:,.0f} | {ours / hf:.2f} | "
              f"{'yes' if same else 'no'} |", flush=True)
