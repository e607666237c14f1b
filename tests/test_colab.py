"""docs/colab.ipynb, executed end to end as a Colab user would run it, on the CPU with tiny settings; and its
install cell where Colab runs it, outside the repository: finding an uploaded folder of any name, or cloning a URL.

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

import pytest

ROOT = Path(__file__).resolve().parent.parent


def code_cells():
    notebook = json.loads((ROOT / "docs" / "colab.ipynb").read_text())
    return ["".join(cell["source"]) for cell in notebook["cells"] if cell["cell_type"] == "code"]


def run_cell(cell, namespace, env, index=0):
    """Run one code cell: its Python in `namespace`, its `!` lines in a shell (`!pip` skipped)."""
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


def install_cell():
    (cell,) = [cell for cell in code_cells() if "REPO_URL" in cell and "os.chdir" in cell]
    return cell


def a_repository(folder):
    """A folder laid out as the repository is, as far as the install cell looks."""
    (folder / "tinygrad_proust").mkdir(parents=True)
    (folder / "tinygrad_proust" / "__init__.py").write_text("")
    (folder / "train.py").write_text("")
    return folder


@pytest.mark.parametrize("name", ["tinygrad_proust-main", "my upload (2)", "downloads/tinygrad_proust-main"])
def test_the_install_cell_finds_an_uploaded_folder_of_any_name(name, tmp_path, monkeypatch, capsys):
    content = tmp_path / "content"
    (content / "sample_data").mkdir(parents=True)                   # what Colab has there already
    (content / "notes" / "tinygrad_proust").mkdir(parents=True)     # no train.py beside it: not the repository
    uploaded = a_repository(content / name)
    monkeypatch.chdir(content)
    run_cell(install_cell(), {"REPO_URL": ""}, dict(os.environ))
    assert Path.cwd() == uploaded.resolve()


def test_the_install_cell_without_a_folder_or_a_url_says_what_to_do(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(FileNotFoundError, match="upload the repository's folder.*or set REPO_URL"):
        run_cell(install_cell(), {"REPO_URL": ""}, dict(os.environ))


def test_the_install_cell_clones_a_url(tmp_path, monkeypatch):
    origin = a_repository(tmp_path / "origin")
    git = ["git", "-c", "user.name=test", "-c", "user.email=test@example.com", "-C", str(origin)]
    for command in (["init", "-q"], ["add", "."], ["commit", "-q", "-m", "the repository"]):
        subprocess.run(git + command, check=True, capture_output=True)
    content = tmp_path / "content"
    content.mkdir()
    monkeypatch.chdir(content)
    run_cell(install_cell(), {"REPO_URL": origin.as_uri()}, dict(os.environ))   # file://: a shallow clone, as a URL
    assert Path.cwd() == (content / "tinygrad_proust_repo").resolve()
    assert (Path.cwd() / "train.py").exists() and (Path.cwd() / "tinygrad_proust" / "__init__.py").exists()


def test_the_colab_notebook_runs_end_to_end(tmp_path, monkeypatch, matplotlib):
    cells = code_cells()
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
        run_cell(cell, namespace, env, index)
        if "STEPS" in namespace and "DATA_FLAG" in namespace and index == 0:
            namespace.update(tiny)
            namespace["DATA_FLAG"] = f"--data {namespace['DATA']}"
    assert shown == [b"\x89PNG\r\n\x1a\n"] * 2                   # the attention maps and the loss curve
    assert (Path(tiny["OUT"]) / "best.npz").exists()
