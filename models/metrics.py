"""The metrics of a training run: metrics.jsonl, one JSON row per evaluation."""
import json
from pathlib import Path

from models.corpus import DataError
from tinygrad_proust.checkpoint import write_atomically


def read_metrics(path, check=False):
    """The rows of a metrics.jsonl that parse (a line cut short by a kill is left out). check: a file with text but
    not one row, a last line cut short aside, is a DataError (not a metrics file) rather than a run that recorded no
    evaluation."""
    rows, lines, text = [], [], ""
    if Path(path).is_file():
        text = Path(path).read_text(errors="replace")
        lines = text.splitlines()
        for line in lines:
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(row, dict) and isinstance(row.get("step"), int):
                rows.append(row)
    cut_short = lines and not text.endswith("\n") and lines[-1].lstrip().startswith("{")
    if check and not rows and any(line.strip() for line in lines[:-1 if cut_short else None]):
        raise DataError(f"{path}: not a metrics file (train.py writes one JSON row per evaluation, with its step and "
                        "losses)")
    return rows


def write_metrics(path, rows):
    write_atomically(path, lambda f: f.write("".join(json.dumps(row) + "\n" for row in rows).encode("utf-8")))
