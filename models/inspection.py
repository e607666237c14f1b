"""Look inside a trained GPT: its attention maps, the logit lens, and the loss curve of its training run.

    python inspection.py attention  --checkpoint out/best.npz --prompt "To be, or not" --out attention.png
    python inspection.py logit-lens --checkpoint out/best.npz --prompt "To be, or not" --top 3 --save lens.txt
    python inspection.py loss-curve --metrics out/metrics.jsonl --out loss.png

attention:  softmax(q kᵀ / sqrt(d)) of every layer and head, one heatmap each (rows: the query position, columns:
            the key position it reads), labelled with the prompt's characters.
logit-lens: the residual stream after the embeddings and after each block, passed through the final norm and the
            head, as if the model stopped there; the top next tokens per layer and position.
The pictures need matplotlib (pip install matplotlib); the logit lens is text and needs nothing else.
"""
import contextlib
from pathlib import Path

import numpy as np

import tinygrad_proust as tp
from models.metrics import read_metrics
from models.corpus import DataError
from tinygrad_proust import functional as F


class MissingDependency(RuntimeError):
    pass


def pyplot():
    """matplotlib.pyplot on a file-only backend, or a clear one-line error saying what to install."""
    try:
        import matplotlib
    except ImportError:
        raise MissingDependency("drawing needs matplotlib: pip install matplotlib") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def token_labels(tokenizer, ids):
    """A short printable label per token: whitespace shown as symbols, partial UTF-8 bytes in hex."""
    shown = {"\n": "⏎", " ": "␣", "\t": "⇥"}
    return [shown.get(tokenizer.token_text(i), tokenizer.token_text(i)) for i in ids]


@contextlib.contextmanager
def forward_hooks(modules, hook, with_kwargs=False):
    """hook(module, args, output) (or (module, args, kwargs, output)) on each module's forward, inside this block
    only."""
    handles = [module.register_forward_hook(hook, with_kwargs=with_kwargs) for module in modules]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


def attention_maps(model, ids):
    """Each layer's attention weights for one prompt: a list of (n_head, T, T) arrays (rows sum to 1).
    A hook on each block's attention module recomputes softmax(q kᵀ / sqrt(d)) from the q and k it was given."""
    ids = np.asarray(ids[-model.config.block_size:])
    maps = []

    def keep_weights(module, args, kwargs, output):
        q, k = args[:2]
        mask, is_causal = {"attn_mask": None, "is_causal": False, **dict(zip(("attn_mask", "is_causal"), args[3:])),
                           **kwargs}.values()  # by name, or by position after q, k, v
        maps.append(F.attention_weights(q, k, attn_mask=mask, is_causal=is_causal).numpy()[0])

    with forward_hooks([block.attn.attend for block in model.blocks], keep_weights, with_kwargs=True), tp.no_grad():
        model(ids[None, :])
    return maps


def residual_stream(model, idx):
    """The residual stream after the embeddings and after each block: n_layer + 1 tensors of (B, T, C)."""
    states = []
    with forward_hooks([model.drop, *model.blocks], lambda module, args, output: states.append(output)):
        model(idx)
    return states


def logit_lens_stages(model, idx):
    """What the model would predict if it stopped after the embeddings and after each block: each residual
    state through the final norm and the head, (B, T, vocab) logits per stage. The last is forward()'s."""
    return [model.head(h) for h in residual_stream(model, idx)]


def plot_attention(maps, labels, path):
    plt = pyplot()
    n_layer, n_head, T = len(maps), maps[0].shape[0], maps[0].shape[-1]
    size = max(2.5, 0.22 * T)
    fig, axes = plt.subplots(n_layer, n_head, figsize=(size * n_head, size * n_layer), squeeze=False)
    for layer, heads in enumerate(maps):
        for head, weights in enumerate(heads):
            ax = axes[layer][head]
            ax.imshow(weights, cmap="viridis", vmin=0, vmax=1)
            ax.set_title(f"layer {layer} head {head}", fontsize=9)
            ax.set_xticks(range(T), labels, fontsize=7)
            ax.set_yticks(range(T), labels, fontsize=7)
            ax.set_xlabel("key (what is read)", fontsize=8)
            ax.set_ylabel("query (who reads)", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def logit_lens(model, tokenizer, ids, top=3):
    """Rows (stage, position, label of the token there, [(next token label, probability)] * top)."""
    ids = np.asarray(ids[-model.config.block_size:])
    with tp.no_grad():
        stages = logit_lens_stages(model, ids[None, :])
    labels = token_labels(tokenizer, ids)
    rows = []
    for stage, logits in enumerate(stages):
        probs = logits.softmax(dim=-1).numpy()[0]                  # (T, vocab)
        best = np.argsort(-probs, axis=-1)[:, :top]
        name = "embeddings" if stage == 0 else f"block {stage - 1}"
        for pos in range(len(ids)):
            guesses = [(token_labels(tokenizer, [j])[0], float(probs[pos, j])) for j in best[pos]]
            rows.append((name, pos, labels[pos], guesses))
    return rows


def format_logit_lens(rows):
    lines = [f"{'after':<12} {'pos':>3} {'token':<6} next-token guesses (probability)"]
    for name, pos, label, guesses in rows:
        lines.append(f"{name:<12} {pos:>3} {label!s:<6} " + "  ".join(f"{g!s:<3} {p:.2f}" for g, p in guesses))
    return "\n".join(lines)


def plot_loss_curve(metrics_path, path):
    metrics_path = Path(metrics_path)
    if not metrics_path.is_file():
        raise DataError(f"{metrics_path}: " + ("a folder, not a metrics file" if metrics_path.is_dir()
                                               else "no such file"))
    rows = [r for r in read_metrics(metrics_path) if _is_number(r.get("train_loss")) and _is_number(r.get("val_loss"))]
    if not rows:
        raise DataError(f"{metrics_path}: no evaluations recorded (train.py writes one row per --eval-interval)")
    plt = pyplot()
    steps = [r["step"] for r in rows]
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(steps, [r["train_loss"] for r in rows], label="train")
    ax.plot(steps, [r["val_loss"] for r in rows], label="validation")
    ax.set_xlabel("step")
    ax.set_ylabel("loss (nats per token)")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _is_number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool)
