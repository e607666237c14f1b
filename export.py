"""Export a trained checkpoint as a Hugging Face Transformers directory (config.json, model.safetensors,
tokenizer.json) that AutoModelForCausalLM and AutoTokenizer load (models/export.py says which models go):

    python export.py out/best.npz hf/my-model

Needs the extras: pip install safetensors tokenizers (and transformers to load the result).
"""
import sys

from models.cli import Parser, console, fail, load_model_or_fail
from models.export import ExportError, export_pretrained, transformers_family


@console
def main(argv=None):
    p = Parser(description=__doc__)
    p.add_argument("checkpoint", help="a checkpoint written by train.py")
    p.add_argument("out_dir", help="the Transformers directory to create (must not exist, or be empty)")
    args = p.parse_args(argv)
    model, tokenizer, record = load_model_or_fail(args.checkpoint)
    if record is not None and record.quantization is not None:  # Transformers gets float weights, q · s
        print(f"note: {args.checkpoint} holds int{record.quantization['bits']} weights: the export holds them "
              "dequantised, as float32 (their rounding stays in)", file=sys.stderr)
    try:
        print(f"wrote {export_pretrained(model, tokenizer, args.out_dir)} "
              f"({transformers_family(model.config)}: load it with transformers.AutoModelForCausalLM)")
    except ExportError as err:
        fail(err)
    except ImportError as err:
        fail(f"exporting needs {err.name}: pip install safetensors tokenizers")


if __name__ == "__main__":
    main()
