"""LoRA adapters on the command line: merge an adapter checkpoint and its base into one plain checkpoint.

    python adapters.py merge out-lora/best.npz merged.npz

(Training an adapter: python train.py --init-from out/best.npz --data sonnets.txt --lora-rank 8.)
"""
from models.cli import Parser, console, fail, load_model_or_fail, refuse_checkpoint_output
from models.gpt import GPT
from models.record import RunRecord
from tinygrad_proust.checkpoint import save_checkpoint


@console
def main(argv=None):
    p = Parser(description=__doc__)
    commands = p.add_subparsers(dest="command", required=True)
    merge = commands.add_parser("merge", help="write base + adapter as one plain checkpoint")
    merge.add_argument("adapter")
    merge.add_argument("out")
    merge.add_argument("--overwrite", action="store_true", help="replace OUT if it exists")
    args = p.parse_args(argv)
    refuse_checkpoint_output(args.adapter, args.out, args.overwrite)
    model, tokenizer, record = load_model_or_fail(args.adapter)
    if record is None or not record.is_adapter:
        fail(f"{args.adapter} is not an adapter checkpoint (it holds a whole model already)")
    plain = GPT(model.config)
    plain.load_state_dict({name: t for name, t in model.state_dict().items() if ".lora_" not in name})
    merged = RunRecord(config=model.config.to_dict(), tokenizer=tokenizer.to_dict(), step=record.step)
    path = save_checkpoint(args.out, plain, **merged.as_meta())
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
