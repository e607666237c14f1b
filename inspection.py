"""Look inside a trained GPT: its attention maps, the logit lens, how its tokenizer cuts a text, and the loss
curves of training runs (models/inspection.py computes them).

    python inspection.py attention  --checkpoint out/best.npz --prompt "To be, or not" --out attention.png
    python inspection.py logit-lens --checkpoint out/best.npz --prompt "To be, or not" --top 3 --save lens.txt
    python inspection.py logit-lens --checkpoint out/best.npz --prompt "To be, or not" --out lens.png
    python inspection.py tokens     --checkpoint out/best.npz --text "¿Qué canción?"
    python inspection.py loss-curve --metrics out/metrics.jsonl --out loss.png
    python inspection.py compare    out/pre out/post --out compare.png

The pictures need matplotlib (pip install matplotlib); the logit lens table and the tokens need nothing else.
"""
import importlib.util
import os
import sys

from models.cli import (Parser, console, fail, integer, load_model_and_prompt, non_empty, refuse_same_file,
                        refuse_unwritable)
from models.corpus import DataError
from tinygrad_proust.checkpoint import write_atomically
from models.inspection import (MissingDependency, attention_maps, format_logit_lens, format_tokens, logit_lens,
                               picture_suffix, plot_attention, plot_compare, plot_logit_lens, plot_loss_curve,
                               token_labels, token_pieces)


TOP_DEFAULT = 3  # logit-lens: the guesses per cell of the text table

def make_parser():
    p = Parser(description=__doc__)
    commands = p.add_subparsers(dest="command", required=True)
    attention = commands.add_parser("attention", help="heatmaps of every layer's and head's attention weights")
    lens = commands.add_parser("logit-lens", help="the top next tokens after each layer")
    for sub in (attention, lens):
        sub.add_argument("--checkpoint", required=True, type=non_empty)
        sub.add_argument("--prompt", required=True, type=non_empty)
        sub.add_argument("--drop-unknown", action="store_true", help="drop prompt characters outside the vocabulary")
    attention.add_argument("--out", default="attention.png", type=non_empty)
    lens.add_argument("--top", type=integer(1, 10**6), help=f"guesses per cell of the table (default: {TOP_DEFAULT})")
    lens.add_argument("--save", type=non_empty, help="also write the table to this file")
    lens.add_argument("--out", type=non_empty,
                      help="draw the top guesses as a layer x position grid to this picture (not the table)")
    tokens = commands.add_parser("tokens", help="how the checkpoint's tokenizer cuts a text into tokens")
    tokens.add_argument("--checkpoint", required=True, type=non_empty)
    tokens.add_argument("--text", required=True, type=non_empty)
    tokens.add_argument("--no-color", action="store_true", help="brackets around each token, never colours")
    tokens.add_argument("--drop-unknown", action="store_true", help="drop characters outside the vocabulary")
    curve = commands.add_parser("loss-curve", help="train and validation loss from train.py's metrics.jsonl")
    curve.add_argument("--metrics", default="out/metrics.jsonl", type=non_empty)
    curve.add_argument("--out", default="loss.png", type=non_empty)
    compare = commands.add_parser("compare", help="several runs' validation curves in one picture, in bits per byte")
    compare.add_argument("runs", nargs="+", metavar="RUN_DIR", help="train.py's --out-dir of each run")
    compare.add_argument("--out", default="compare.png", type=non_empty)
    return p


def colour_terminal():
    """Coloured spans only on a terminal that shows them (not a pipe or a file, not NO_COLOR, not TERM=dumb)."""
    return sys.stdout.isatty() and not os.environ.get("NO_COLOR") and os.environ.get("TERM") != "dumb"


def last_context(model, tokenizer, ids):
    """A prompt's last block_size tokens, as generate.py's window keeps them, and a note of what is left out."""
    block = model.config.block_size
    if len(ids) > block:
        print(f"note: the model's context is {block} tokens: the first {len(ids) - block} of the prompt's {len(ids)} "
              f"({tokenizer.decode(ids[:-block])!r}) are left out", file=sys.stderr)
    return ids[-block:]


@console
def main(argv=None):
    args = make_parser().parse_args(argv)
    source = getattr(args, "checkpoint", None) or getattr(args, "metrics", None)
    for target in (getattr(args, "out", None), getattr(args, "save", None)):  # before the work, not after it
        if target:
            refuse_unwritable(target)
            if source:
                refuse_same_file(source, target)  # the checkpoint read, written over by its own table
    try:
        if getattr(args, "out", None) and importlib.util.find_spec("matplotlib"):  # (without it: said at drawing)
            picture_suffix(args.out)  # a picture matplotlib can write, before the work
        if args.command == "loss-curve":
            print(f"wrote {plot_loss_curve(args.metrics, args.out)}")
            return
        if args.command == "compare":
            print(f"wrote {plot_compare(args.runs, args.out)}")
            return
        if args.command == "tokens":
            _, tokenizer, ids = load_model_and_prompt(args.checkpoint, args.text, args.drop_unknown, what="text")
            print(format_tokens(token_pieces(tokenizer, ids), colour=not args.no_color and colour_terminal()))
            return
        model, tokenizer, ids = load_model_and_prompt(args.checkpoint, args.prompt, args.drop_unknown)
        ids = last_context(model, tokenizer, ids)
        if args.command == "attention":
            print(f"wrote {plot_attention(attention_maps(model, ids), token_labels(tokenizer, ids), args.out)}")
        elif args.out:
            if args.save or args.top is not None:
                fail("--out draws the top guess in each cell; --save and --top shape the text table (give them "
                     "without --out)")
            print(f"wrote {plot_logit_lens(logit_lens(model, tokenizer, ids, top=1), args.out)}")
        else:
            table = format_logit_lens(logit_lens(model, tokenizer, ids, args.top or TOP_DEFAULT))
            print(table)
            if args.save:
                write_atomically(args.save, lambda f: f.write((table + "\n").encode("utf-8")))
    except (DataError, MissingDependency) as err:
        fail(err)


if __name__ == "__main__":
    main()
