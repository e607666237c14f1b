"""Quantise a trained checkpoint's weights to int8 or int4, for a smaller file (models/quantize.py says how):

    python quantize.py out/best.npz out/best-int8.npz --bits 8
    python quantize.py out/best.npz out/best-int4.npz --bits 4 --group-size 32

generate.py and inspection.py load the result and dequantise it once, as it loads.
"""
from models.cli import Parser, console, fail, integer, refuse_checkpoint_output
from models.quantize import quantize_checkpoint
from models.record import RunRecord
from tinygrad_proust.checkpoint import CheckpointError, load_checkpoint


@console
def main(argv=None):
    p = Parser(description=__doc__)
    p.add_argument("checkpoint")
    p.add_argument("out")
    p.add_argument("--bits", type=int, choices=[8, 4], required=True)
    p.add_argument("--group-size", type=integer(2, 1 << 16),
                   help="int4: inputs per scale (even, and dividing every layer's input size; default: 32)")
    p.add_argument("--overwrite", action="store_true", help="replace OUT if it exists")
    args = p.parse_args(argv)
    if args.group_size is not None and args.bits != 4:
        p.error(f"--group-size acts only with --bits 4 (int8 has one scale per row); this run has --bits {args.bits}")
    refuse_checkpoint_output(args.checkpoint, args.out, args.overwrite)
    try:
        path = quantize_checkpoint(args.checkpoint, args.out, args.bits, args.group_size or 32)
    except (CheckpointError, ValueError) as err:
        fail(err)
    ratio = RunRecord.from_meta(load_checkpoint(path).meta, path).quantization["weights_ratio"]
    print(f"wrote {path} ({path.stat().st_size:,} bytes): the quantised weights take {ratio:.3f} of their "
          "float32 size (scales included)")


if __name__ == "__main__":
    main()
