"""docs/colab.ipynb, executed end to end as a Colab user would run it, on the CPU with tiny settings.

Code cells run in order in one namespace. Lines starting with `!` are shell commands with `{NAME}` replaced from
the namespace, as IPython does; `!pip` lines are skipped (the test environment has what they install). The
settings cell runs as written, then the test's tiny settings replace its values. IPython.display is stood in by a
recorder that checks every displayed picture exists.
"""
import json
import os
import subprocess
import sys
import types
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_the_colab_notebook_runs_end_to_end(tmp_path, monkeypatch, matplotlib):
    notebook = json.loads((ROOT / "docs" / "colab.ipynb").read_text())
    cells = ["".join(cell["source"]) for cell in notebook["cells"] if cell["cell_type"] == "code"]
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("ROMEO. What say you, my lord? Nothing, madam; and yet I say it all.\n" * 60)
    tiny = {"STEPS": 4, "DATA": str(corpus), "OUT": str(tmp_path / "out"),
            "EXTRA": "--n-embd 16 --block-size 16 --batch-size 4 --eval-interval 2 --eval-batches 2 "
                     "--sample-tokens 10 --warmup 2"}
    shown = []
    display = types.ModuleType("IPython.display")
    display.Image = lambda path: Path(path).read_bytes()[:8]
    display.display = shown.append
    monkeypatch.setitem(sys.modules, "IPython", types.ModuleType("IPython"))
    monkeypatch.setitem(sys.modules, "IPython.display", display)
    monkeypatch.chdir(ROOT)
    namespace = {}
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    for index, cell in enumerate(cells):
        python = []
        for line in cell.splitlines() + [""]:
            if line.strip().startswith("!"):
                exec("\n".join(python), namespace)
                python = []
                command = line.strip()[1:].format_map(namespace)
                if command.startswith("pip "):
                    continue
                result = subprocess.run(command, shell=True, capture_output=True, text=True, env=env, timeout=300)
                assert result.returncode == 0, f"cell {index}: {command}\n{result.stderr[-2000:]}"
            else:
                python.append(line)
        exec("\n".join(python), namespace)
        if "STEPS" in namespace and "DATA_FLAG" in namespace and index == 0:
            namespace.update(tiny)
            namespace["DATA_FLAG"] = f"--data {namespace['DATA']}"
    assert shown == [b"\x89PNG\r\n\x1a\n"] * 2                   # the attention maps and the loss curve
    assert (Path(tiny["OUT"]) / "best.npz").exists()
