"""Look inside a trained GPT: its attention maps, the logit lens, and the loss curve of its training run
(models/inspection.py computes them).

    python inspection.py attention  --checkpoint out/best.npz --prompt "To be, or not" --out attention.png
    python inspection.py logit-lens --checkpoint out/best.npz --prompt "To be, or not" --top 3 --save lens.txt
    python inspection.py loss-curve --metrics out/metrics.jsonl --out loss.png

The pictures need matplotlib (pip install matplotlib); the logit lens is text and needs nothing else.
"""
from pathlib import Path

from models.cli import Parser, console, fail, integer, load_model_and_prompt, non_empty
from models.corpus import DataError
from models.inspection import (MissingDependency, attention_maps, format_logit_lens, logit_lens, plot_attention,
                               plot_loss_curve, token_labels)


def make_parser():
    p = Parser(description=__doc__)
    commands = p.add_subparsers(dest="command", required=True)
    attention = commands.add_parser("attention", help="heatmaps of every layer's and head's attention weights")
    lens = commands.add_parser("logit-lens", help="the top next tokens after each layer")
    for sub in (attention, lens):
        sub.add_argument("--checkpoint", required=True)
        sub.add_argument("--prompt", required=True, type=non_empty)
        sub.add_argument("--drop-unknown", action="store_true", help="drop prompt characters outside the vocabulary")
    attention.add_argument("--out", default="attention.png")
    lens.add_argument("--top", type=integer(1, 10**6), default=3)
    lens.add_argument("--save", help="also write the table to this file")
    curve = commands.add_parser("loss-curve", help="train and validation loss from train.py's metrics.jsonl")
    curve.add_argument("--metrics", default="out/metrics.jsonl")
    curve.add_argument("--out", default="loss.png")
    return p


@console
def main(argv=None):
    args = make_parser().parse_args(argv)
    try:
        if args.command == "loss-curve":
            print(f"wrote {plot_loss_curve(args.metrics, args.out)}")
            return
        model, tokenizer, ids = load_model_and_prompt(args.checkpoint, args.prompt, args.drop_unknown)
        ids = ids[-model.config.block_size:]
        if args.command == "attention":
            print(f"wrote {plot_attention(attention_maps(model, ids), token_labels(tokenizer, ids), args.out)}")
        else:
            table = format_logit_lens(logit_lens(model, tokenizer, ids, args.top))
            print(table)
            if args.save:
                Path(args.save).write_text(table + "\n")
    except (DataError, MissingDependency) as err:
        fail(err)
    except OSError as err:
        fail(f"{err.filename}: {err.strerror}" if err.filename else err)


if __name__ == "__main__":
    main()
