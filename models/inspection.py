"""Look inside a trained GPT: its attention maps, the logit lens, and the loss curve of its training run.

    python inspection.py attention  --checkpoint out/best.npz --prompt "To be, or not" --out attention.png
    python inspection.py logit-lens --checkpoint out/best.npz --prompt "To be, or not" --top 3 --save lens.txt
    python inspection.py loss-curve --metrics out/metrics.jsonl --out loss.png
    python inspection.py tokens     --checkpoint out/best.npz --text "¿Qué canción?"
    python inspection.py compare    out/pre out/post --out compare.png

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
from tinygrad_proust.checkpoint import write_atomically


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


SHOWN = {" ": "␣", "\n": "⏎", "\t": "⇥", "\r": "␍"}  # whitespace as visible symbols


def visible(text):
    return "".join(SHOWN.get(c, c) for c in text)


def token_labels(tokenizer, ids):
    """A short printable label per token: whitespace as symbols ('␣the'), and a token that holds part of a
    multi-byte character as that character with the bytes it holds ('¿[1/2]', '¿[2/2]': ¿ is 2 bytes in UTF-8).
    Tokens are read in the context of their neighbours; a lone partial token shows its bytes in hex ('<c2>')."""
    ids = [int(i) for i in ids]
    if not hasattr(tokenizer, "decode_bytes"):  # one character per token
        return [visible(tokenizer.token_text(i)) for i in ids]
    pieces = [tokenizer.decode_bytes([i]) for i in ids]
    data = b"".join(pieces)
    owner = []  # for each byte of data: (the character it belongs to, its byte number in it, the character's length)
    at = 0
    while at < len(data):
        for length in (1, 2, 3, 4):
            try:
                char = data[at:at + length].decode("utf-8")
                break
            except UnicodeDecodeError:
                continue
        else:  # not UTF-8 here (a stray byte): the byte alone, in hex
            char, length = f"<{data[at]:02x}>", 1
        owner += [(char, k, length) for k in range(1, length + 1)]
        at += length
    labels, at = [], 0
    for piece in pieces:
        label, k = "", at
        while k < at + len(piece):
            char, byte, length = owner[k]
            held = min(length - byte + 1, at + len(piece) - k)  # bytes of this character inside the token
            if byte == 1 and held == length:
                label += visible(char)
            else:
                numbers = f"{byte}" if held == 1 else f"{byte}-{byte + held - 1}"
                label += f"{visible(char)}[{numbers}/{length}]"
            k += held
        labels.append(label)
        at += len(piece)
    return labels


def token_pieces(tokenizer, ids):
    """How the tokenizer cut a text into ids: [(id, label)] in order."""
    ids = [int(i) for i in ids]
    return list(zip(ids, token_labels(tokenizer, ids)))


COLOURS = ["\x1b[30;48;5;153m", "\x1b[30;48;5;223m", "\x1b[30;48;5;194m", "\x1b[30;48;5;225m"]


def format_tokens(pieces, colour=False):
    """The text as its tokens, then the ids: '[To][␣be][,]' (or coloured spans on a terminal), one line each."""
    if colour:
        spans = "".join(f"{COLOURS[i % len(COLOURS)]}{label}\x1b[0m" for i, (_, label) in enumerate(pieces))
    else:
        spans = "".join(f"[{label}]" for _, label in pieces)
    return f"{spans}\n{len(pieces)} tokens: {' '.join(str(i) for i, _ in pieces)}"


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
            image = ax.imshow(weights, cmap="viridis", vmin=0, vmax=1)
            ax.set_title(f"layer {layer} head {head}", fontsize=9)
            ax.set_xticks(range(T), labels, fontsize=7, rotation=90)
            ax.set_yticks(range(T), labels, fontsize=7)
            ax.set_xlabel("key (what is read)", fontsize=8)
            ax.set_ylabel("query (who reads)", fontsize=8)
    fig.tight_layout()
    fig.colorbar(image, ax=axes, shrink=0.8, label="attention weight")
    return save_figure(fig, path)


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


def plot_logit_lens(rows, path):
    """logit_lens()'s rows as a grid: one row per stage (embeddings at the bottom, the last block at the top), one
    column per position; each cell names the top next-token guess, coloured by its probability."""
    plt = pyplot()
    stages = list(dict.fromkeys(name for name, *_ in rows))
    T = len(rows) // len(stages)
    probs = np.array([guesses[0][1] for *_, guesses in rows]).reshape(len(stages), T)
    fig, ax = plt.subplots(figsize=(1.6 + 0.45 * T, 1.2 + 0.45 * len(stages)))
    image = ax.imshow(probs, cmap="Blues", vmin=0, vmax=1, origin="lower", aspect="auto")
    for cell, (_, pos, _, guesses) in enumerate(rows):
        stage = cell // T
        colour = "white" if probs[stage, pos] > 0.6 else "black"
        ax.text(pos, stage, guesses[0][0], ha="center", va="center", fontsize=8, color=colour)
    ax.set_xticks(range(T), [label for _, pos, label, _ in rows[:T]], fontsize=8)
    ax.set_yticks(range(len(stages)), stages, fontsize=8)
    ax.set_xlabel("position: the token read there (the cell: the guess for the next one)")
    fig.colorbar(image, ax=ax, label="probability of the top guess", fraction=0.03, pad=0.02)
    fig.tight_layout()
    return save_figure(fig, path)


FEW_POINTS = 30  # curves with at most this many points show a marker at each


def validation_curve(run):
    """(its folder, steps, validation bits per byte) of a run: a folder holding metrics.jsonl, or the file itself.
    Bits per byte = nats per token × tokens per byte of the validation text ÷ ln 2, recorded by train.py as val_bpb:
    unlike the loss per token, it compares runs with different tokenizers."""
    run = Path(run)
    metrics = run / "metrics.jsonl" if run.is_dir() else run
    if not metrics.is_file():
        raise DataError(f"{run}: no metrics.jsonl there (train.py writes it into its --out-dir)")
    rows = [r for r in read_metrics(metrics, check=True) if _is_number(r.get("val_loss"))]
    if not rows:
        raise DataError(f"{metrics}: no evaluations recorded (train.py writes one row per --eval-interval)")
    if not all(_is_number(r.get("val_bpb")) for r in rows):
        raise DataError(f"{metrics}: its rows record no bits per byte (val_bpb), only nats per token, which do not "
                        "compare across tokenizers")
    return (run if run.is_dir() else run.parent).resolve(), [r["step"] for r in rows], [r["val_bpb"] for r in rows]


def distinct_names(folders):
    """Each folder's last parts, as few as tell them apart (a/run and b/run: "a/run", "b/run")."""
    parts = [folder.parts for folder in folders]
    for count in range(1, max(map(len, parts)) + 1):
        names = [str(Path(*p[-count:])) for p in parts]
        if len(set(names)) == len(names):
            break
    return names


def plot_compare(runs, path):
    """Several runs' validation curves in one picture, in bits per byte, named by their folders."""
    curves = [validation_curve(run) for run in runs]
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    for name, (_, steps, bpb) in zip(distinct_names([folder for folder, _, _ in curves]), curves):
        ax.plot(steps, bpb, label=name, marker="o" if len(steps) <= FEW_POINTS else None, markersize=3)
    return save_curves(fig, ax, "validation loss (bits per byte)", path)


def plot_loss_curve(metrics_path, path):
    metrics_path = Path(metrics_path)
    if not metrics_path.is_file():
        raise DataError(f"{metrics_path}: " + ("a folder, not a metrics file" if metrics_path.is_dir()
                                               else "no such file"))
    rows = [r for r in read_metrics(metrics_path, check=True)
            if _is_number(r.get("train_loss")) and _is_number(r.get("val_loss"))]
    if not rows:
        raise DataError(f"{metrics_path}: no evaluations recorded (train.py writes one row per --eval-interval)")
    plt = pyplot()
    steps = [r["step"] for r in rows]
    marker = "o" if len(rows) <= FEW_POINTS else None
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(steps, [r["train_loss"] for r in rows], label="train", marker=marker, markersize=3)
    ax.plot(steps, [r["val_loss"] for r in rows], label="validation", marker=marker, markersize=3)
    return save_curves(fig, ax, "loss (nats per token)", path)


def save_curves(fig, ax, ylabel, path):
    """Loss curves against the step, labelled, with a legend and a light grid, saved to path."""
    ax.set_xlabel("step")
    ax.set_ylabel(ylabel)
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return save_figure(fig, path)


# what each format would stamp with the date or matplotlib's version (None leaves it out)
UNDATED = {".svg": {"Date": None, "Creator": None}, ".pdf": {"CreationDate": None, "Creator": None, "Producer": None},
           ".png": {"Software": None}}


def picture_suffix(path):
    """The picture format a path's suffix names (matplotlib's: .png, .svg, .pdf, .jpg...), or a DataError; the
    scripts ask before their work."""
    pyplot()  # matplotlib, on the backend every figure here is drawn with (or the line saying what to install)
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    suffix = Path(path).suffix.lower()
    if suffix[1:] not in FigureCanvasAgg.get_supported_filetypes():
        raise DataError(f"{path}: matplotlib cannot write {suffix or 'a file without a suffix'}; use .png, .svg or "
                        ".pdf")
    return suffix


def save_figure(fig, path, dpi=110):
    """Write and close a figure, atomically and creating the folders its path names, as every output is written;
    an SVG, PDF or PNG carries no date or version, so the same drawing is the same file. The format is the file's
    suffix (picture_suffix)."""
    suffix = picture_suffix(path)
    write_atomically(path, lambda f: fig.savefig(f, format=suffix[1:], dpi=dpi, metadata=UNDATED.get(suffix)))
    fig.clf()
    pyplot().close(fig)
    return path


def _is_number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool)
