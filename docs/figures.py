"""Draw every picture in the docs from the framework and the inspection tools, into docs/figures/ (or another folder).

    python docs/figures.py                 # rewrites docs/figures/
    python docs/figures.py --out /tmp/f    # somewhere else (tests/test_figures.py compares the two)

Needs matplotlib and Graphviz's `dot`. Everything is seeded: the same code draws the same pictures. The model in
the pictures trains for a few seconds on the opening of Proust's "Du côté de chez Swann" (1913, public domain):
two tiny runs, one on characters and one on BPE tokens, so the loss curves, the comparison in bits per byte, the
attention maps and the logit lens all come from a real run of train.py.
"""
import argparse
import contextlib
import io
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import tinygrad_proust as tp  # noqa: E402  (after the path: the script runs from anywhere)
import train  # noqa: E402
from models import inspection  # noqa: E402
from models.gpt import GPT, preset_config  # noqa: E402
from models.loading import load_model  # noqa: E402
from tinygrad_proust import functional as F  # noqa: E402
from tinygrad_proust.tensor import unbroadcast  # noqa: E402

SWANN = ("Longtemps, je me suis couché de bonne heure. Parfois, à peine ma bougie éteinte, mes yeux se fermaient si "
         "vite que je n'avais pas le temps de me dire : « Je m'endors. » Et, une demi-heure après, la pensée qu'il "
         "était temps de chercher le sommeil m'éveillait ; je voulais poser le volume que je croyais avoir encore "
         "dans les mains et souffler ma lumière ; je n'avais pas cessé en dormant de faire des réflexions sur ce que "
         "je venais de lire, mais ces réflexions avaient pris un tour un peu particulier ; il me semblait que "
         "j'étais moi-même ce dont parlait l'ouvrage : une église, un quatuor, la rivalité de François Ier et de "
         "Charles Quint.\n")
PROMPT = "Longtemps, je me suis"
# a tiny model that learns the paragraph in seconds; the flags are train.py's
TINY_RUN = ["--n-layer", "2", "--n-head", "2", "--n-embd", "32", "--ffn-hidden", "64", "--block-size", "32",
            "--batch-size", "16", "--steps", "300", "--eval-interval", "20", "--eval-batches", "4", "--warmup", "10",
            "--lr", "1e-2", "--sample-tokens", "0", "--log-interval", "1000", "--seed", "7"]
FIGURES = ["backward-order.svg", "values.svg", "broadcasting.png", "causal-blocks.png", "gpt-block.svg",
           "loss-curve.png", "compare.png", "attention.png", "attention-bpe.png", "logit-lens.png"]


# ---- graphs of small expressions (render_graph) ----

def backward_order(out):
    """A graph where one tensor feeds two ops (h), each op numbered by when backward() reaches it: h's Matmul runs
    only after both of its users (Tanh and Mul) have sent their gradients."""
    a = tp.tensor([[1.0, 2.0]], requires_grad=True)
    b = tp.tensor([[0.5], [-1.0]], requires_grad=True)
    a.name, b.name = "a", "b"
    h = a @ b
    loss = (h.tanh() * h).sum()
    tp.render_graph(loss, out / "backward-order.svg", order=True)


def values(out):
    """One neuron, o = tanh(x1 w1 + x2 w2 + b), with each node's data and gradient after backward (the
    intermediate nodes keep theirs with retain_grad())."""
    leaves = {"x1": 2.0, "x2": 0.0, "w1": -3.0, "w2": 1.0, "b": 6.8813735870195432}
    x1, x2, w1, w2, b = (tp.tensor(v, requires_grad=True) for v in leaves.values())
    for tensor, name in zip((x1, x2, w1, w2, b), leaves):
        tensor.name = name
    steps = [x1 * w1, x2 * w2]
    steps.append(steps[0] + steps[1])
    steps.append(steps[2] + b)
    o = steps[3].tanh()
    for step in (*steps, o):
        step.retain_grad()
    o.backward(retain_graph=True)
    tp.render_graph(o, out / "values.svg", values=True)


def clean_dot_output(out):
    """The .dot text render_graph writes beside each picture is its source; the pictures alone go in the docs."""
    for dot in out.glob("*.dot"):
        dot.unlink()


# ---- diagrams drawn with matplotlib from the framework's own numbers ----

def grid(ax, array, title, colour, faded=None):
    """A 2-D array as a grid of numbered cells; `faded` marks cells that are broadcast copies."""
    rows, cols = array.shape
    for i in range(rows):
        for j in range(cols):
            copy = faded is not None and faded[i, j]
            ax.add_patch(_rectangle(j, rows - 1 - i, colour, alpha=0.25 if copy else 0.7))
            ax.text(j + 0.5, rows - 0.5 - i, f"{array[i, j]:g}", ha="center", va="center", fontsize=10,
                    color="#555555" if copy else "black")
    ax.set_xlim(0, 4)
    ax.set_ylim(-0.2, 2.2)
    ax.set_aspect("equal")
    ax.axis("off")
    ax.set_title(title, fontsize=9)


def _rectangle(x, y, colour, alpha):
    from matplotlib.patches import Rectangle
    return Rectangle((x + 0.04, y + 0.04), 0.92, 0.92, facecolor=colour, alpha=alpha, edgecolor="black", lw=0.6)


def broadcasting(out):
    """a (2, 3) * b (3,): b is copied along the rows; backward sums the copies' gradients back (unbroadcast)."""
    plt = inspection.pyplot()
    a = tp.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]], requires_grad=True)
    b = tp.tensor([10.0, 20.0, 30.0], requires_grad=True)
    (a * b).sum().backward()
    copies = np.broadcast_to(b.numpy(), (2, 3))
    grad_of_copies = a.numpy()                                   # d(a*b)/d(each copy of b) = a
    summed = unbroadcast(grad_of_copies, (1, 3))
    assert np.array_equal(summed[0], b.grad.numpy())
    fig, axes = plt.subplots(1, 4, figsize=(10, 2.2))
    grid(axes[0], b.numpy()[None, :], "b (3,): one row", "#f5c77e")
    grid(axes[1], copies, "b broadcast to (2, 3):\nthe second row is a copy", "#f5c77e",
         faded=np.array([[False] * 3, [True] * 3]))
    grid(axes[2], grad_of_copies, "gradient of each copy\n(= a, for a * b)", "#9ecae1")
    grid(axes[3], summed, "unbroadcast: summed over\nthe copies = b.grad", "#9ecae1")
    for left, right in zip(axes[:-1], axes[1:]):
        left.annotate("", xy=(1.02, 0.5), xytext=(0.98, 0.5), xycoords="axes fraction",
                      arrowprops=dict(arrowstyle="->"))
    fig.tight_layout()
    inspection.save_figure(fig, out / "broadcasting.png")


def causal_blocks(out, T=128):
    """The blocks of query rows that causal attention computes on a CPU: each block's rows see keys up to its end,
    so the scores right of each block (all masked) are never computed. The blocks are the op's own (ctx.blocks)."""
    plt = inspection.pyplot()
    from matplotlib.patches import Rectangle
    q = tp.randn(1, 1, T, 8, requires_grad=True)
    y = F.scaled_dot_product_attention(q, q, q, is_causal=True)
    blocks = y._ctx.blocks                                       # (first row, end row, end key) of each block
    allowed = np.tril(np.ones((T, T)))
    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    ax.imshow(allowed, cmap="Greys", vmin=0, vmax=2.5, extent=(0, T, T, 0))
    colours = ["#3182bd", "#e6550d", "#31a354", "#756bb1", "#636363", "#e7ba52", "#d6616b", "#6baed6"]
    for n, (r0, r1, kend) in enumerate(blocks):
        ax.add_patch(Rectangle((0, r0), kend, r1 - r0, fill=False, edgecolor=colours[n % len(colours)], lw=2))
        ax.text(kend + 2, (r0 + r1) / 2, f"block {n}: rows {r0}-{r1 - 1}, keys 0-{kend - 1}", va="center",
                fontsize=7, color=colours[n % len(colours)])
    ax.set_xlim(0, T * 1.9)
    ax.set_xlabel("key")
    ax.set_ylabel("query")
    ax.set_title(f"causal attention over T = {T} positions: query i may read the grey keys 0..i;\n"
                 "each block of query rows computes only its box (right of it: never computed)", fontsize=9)
    fig.tight_layout()
    inspection.save_figure(fig, out / "causal-blocks.png")


# ---- the GPT block, with the shapes a forward pass gives ----

def gpt_block(out, B=1, T=16):
    """One block of the proust preset (post-norm), each module's output shape taken from a forward pass."""
    tp.manual_seed(0)
    model = GPT(preset_config("proust", n_layer=1, dropout=0.0)).eval()
    block = model.blocks[0]
    shapes = {}
    modules = {"c_attn": block.attn.c_attn, "attn": block.attn, "ln_1": block.ln_1, "c_fc": block.mlp.c_fc,
               "mlp": block.mlp, "ln_2": block.ln_2}
    hooks = [(name, lambda m, args, output, name=name: shapes.update({name: output.shape}))  # None: the output stays
             for name in modules]
    handles = [modules[name].register_forward_hook(hook) for name, hook in hooks]
    with tp.no_grad():
        model(np.zeros((B, T), dtype=np.int64))
    for handle in handles:
        handle.remove()
    C, H = model.config.n_embd, model.config.n_head
    nodes = [("x", f"x (residual stream)\\n{(B, T, C)}", "box"),
             ("c_attn", f"c_attn: q, k, v\\n{shapes['c_attn']}\\nsplit into {H} heads of {C // H}: "
                        f"3 x {(B, H, T, C // H)}", "box"),
             ("sdpa", f"softmax(q kᵀ / √{C // H}, causal) v\\nweights {(B, H, T, T)}, output {(B, H, T, C // H)}",
              "box"),
             ("attn", f"heads joined, c_proj\\n{shapes['attn']}", "box"),
             ("add1", "x + attn(x)", "circle"),
             ("ln_1", f"ln_1 (after the add: post-norm)\\n{shapes['ln_1']}", "box"),
             ("c_fc", f"mlp.c_fc, ReLU\\n{shapes['c_fc']}", "box"),
             ("mlp", f"mlp.c_proj\\n{shapes['mlp']}", "box"),
             ("add2", "x + mlp(x)", "circle"),
             ("ln_2", f"ln_2\\n{shapes['ln_2']} to the next block", "box")]
    lines = ["digraph block {", "  rankdir=TB;", f'  label="one block of the proust preset: B={B}, T={T}, C={C}";',
             '  labelloc=t; fontname="Helvetica"; fontsize=11;',
             '  node [fontname="Helvetica", fontsize=10, style=filled, fillcolor="#eef3fa"];',
             '  edge [fontname="Helvetica", fontsize=9];']
    lines += [f'  {key} [label="{label}", shape={shape}];' for key, label, shape in nodes]
    lines += ["  x -> c_attn -> sdpa -> attn -> add1 -> ln_1 -> c_fc -> mlp -> add2 -> ln_2;",
              '  x -> add1 [style=dashed, label=" residual"];', '  ln_1 -> add2 [style=dashed, label=" residual"];',
              "}"]
    subprocess.run(["dot", "-Tsvg", "-o", str(out / "gpt-block.svg")], input="\n".join(lines), text=True,
                   check=True)


# ---- a short run of train.py, and what the inspection tools show of it ----

def short_runs(work):
    """Two tiny runs of train.py on the paragraph: characters and BPE (same model, same steps). Their folders."""
    corpus = work / "swann.txt"
    corpus.write_text(SWANN * 6)
    runs = {"characters": ["--tokenizer", "char"], "bpe-320": ["--tokenizer", "bpe", "--vocab-size", "320"]}
    for name, flags in runs.items():
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            train.main(["--data", str(corpus), "--out-dir", str(work / name), *TINY_RUN, *flags])
    return [work / name for name in runs]


def run_pictures(out, work):
    char_run, bpe_run = short_runs(work)
    inspection.plot_loss_curve(char_run / "metrics.jsonl", out / "loss-curve.png")
    inspection.plot_compare([char_run, bpe_run], out / "compare.png")
    for run, name in ((char_run, "attention.png"), (bpe_run, "attention-bpe.png")):
        model, tokenizer, _ = load_model(run / "best.npz")
        ids = [int(i) for i in tokenizer.encode(PROMPT if run == char_run else "¿Longtemps, je me")]
        inspection.plot_attention(inspection.attention_maps(model, ids), inspection.token_labels(tokenizer, ids),
                                  out / name)
        if run == char_run:
            inspection.plot_logit_lens(inspection.logit_lens(model, tokenizer, ids, top=1), out / "logit-lens.png")


def draw_all(out):
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    tp.manual_seed(0)
    backward_order(out)
    values(out)
    clean_dot_output(out)
    broadcasting(out)
    causal_blocks(out)
    gpt_block(out)
    with tempfile.TemporaryDirectory() as work:
        run_pictures(out, Path(work))
    return [out / name for name in FIGURES]


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default=str(ROOT / "docs" / "figures"), help="the folder to draw into")
    args = p.parse_args(argv)
    for path in draw_all(args.out):
        print(f"wrote {path} ({path.stat().st_size / 1024:.0f} KB)")


if __name__ == "__main__":
    main()
