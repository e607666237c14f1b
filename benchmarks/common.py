"""What the experiments share: the cases, one training step on each side, syncing the GPU, where PyTorch runs, the
PyTorch twin's optimizer groups, and train.py run as a user runs it."""
import tinygrad_proust as tp
from tinygrad_proust import optim

# nanoGPT's README recipe for a CPU (shakespeare-char, --device=cpu --compile=False --block_size=64 --batch_size=12
# --n_layer=4 --n_head=4 --n_embd=128 --dropout=0.0): its baby GPT made small
NAMED_CASES = {"nanogpt-cpu": ("baby-gpt", dict(n_layer=4, n_head=4, n_embd=128, ffn_hidden=512, dropout=0.0), 12, 64)}


def parse_case(text):
    """(preset, config overrides, batch, block) from "preset:BATCHxBLOCK" or a named case."""
    if text in NAMED_CASES:
        return NAMED_CASES[text]
    preset, shape = text.split(":")
    batch, block = shape.lower().split("x")
    return preset, {}, int(batch), int(block)


def sync(device):
    if device == "gpu":
        tp.device.cupy_module().cuda.get_current_stream().synchronize()


def our_step(model, opt, x, y):
    _, loss = model(x, y)
    loss.backward()
    optim.clip_grad_norm_(model.parameters(), 1.0)
    opt.step()
    opt.zero_grad()
    return loss


def torch_step(torch, model, opt, x, y):
    _, loss = model(x, y)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    opt.step()
    opt.zero_grad(set_to_none=True)
    return loss


TWINS = {"sdpa": True, "eager": False}  # PyTorch's attention: fused SDPA (as nanoGPT runs it), or one op per step


def torch_device_for(device):
    """Where PyTorch runs for our `device`, or None when it cannot (no PyTorch, or one without CUDA on a GPU run):
    its columns then read n/a."""
    try:
        import torch
    except ImportError:
        return None
    if device == "gpu":
        return "cuda" if torch.cuda.is_available() else None
    return "cpu"


def twin_groups(model, twin, weight_decay):
    """The PyTorch twin's AdamW groups: the parameters of model.optimizer_groups, matched by name."""
    ids = [{id(p) for p in group["params"]} for group in model.optimizer_groups(weight_decay)]
    names = [{name for name, p in model.named_parameters() if id(p) in group} for group in ids]
    return [{"params": [p for name, p in twin.named_parameters() if name in group], "weight_decay": wd}
            for group, wd in zip(names, (weight_decay, 0.0))]


def run_train(*flags, env=None, show_progress=False):
    """`python train.py FLAGS --overwrite --sample-tokens 0` in a process of its own, as a user runs it; its
    output stays out of the tables (its progress bar and errors on stderr with show_progress)."""
    import subprocess
    import sys
    subprocess.run([sys.executable, "train.py", *flags, "--overwrite", "--sample-tokens", "0"], check=True, env=env,
                   stdout=subprocess.DEVNULL, stderr=None if show_progress else subprocess.DEVNULL)
