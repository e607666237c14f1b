"""The metrics of a training run: metrics.jsonl, one JSON row per evaluation."""
import json
from pathlib import Path

from tinygrad_proust.checkpoint import write_atomically


def read_metrics(path):
    """The rows of a metrics.jsonl that parse (a line cut short by a kill is left out)."""
    rows = []
    if Path(path).is_file():
        for line in Path(path).read_text(errors="replace").splitlines():
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(row, dict) and isinstance(row.get("step"), int):
                rows.append(row)
    return rows


def write_metrics(path, rows):
    write_atomically(path, lambda f: f.write("".join(json.dumps(row) + "\n" for row in rows).encode("utf-8")))
