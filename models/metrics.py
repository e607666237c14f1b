"""The metrics of a training run: metrics.jsonl, one JSON row per evaluation."""
import json
import os
from pathlib import Path


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
    tmp = Path(path).with_name(Path(path).name + ".tmp")
    tmp.write_text("".join(json.dumps(row) + "\n" for row in rows))
    os.replace(tmp, path)
