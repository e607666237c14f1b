"""The repository's two rooms: the framework (tinygrad_proust/, what `pip install` ships) and the language-model
application (models/ and the scripts, run from a clone). No file shadows a standard-library module, every
module imports, every script runs as a file from any folder, and the framework never imports the application."""
import ast
import importlib
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPTS = ["train.py", "generate.py", "bench.py", "quantize.py", "export.py", "adapters.py", "inspection.py"]


def python_files():
    return sorted(p.relative_to(ROOT) for p in ROOT.rglob("*.py")
                  if not {".git", "build", ".venv"} & set(p.relative_to(ROOT).parts))


def test_no_file_or_folder_shadows_a_standard_library_module():
    names = {p.stem for p in python_files()} | {p.parent.name for p in python_files() if p.parent != Path(".")}
    assert not sorted(names & set(sys.stdlib_module_names)), "rename these: they hide the standard library's"


def framework_modules():
    """The framework's modules by import name: tinygrad_proust.tensor, ..., and a package by its folder's name."""
    for path in sorted((ROOT / "tinygrad_proust").rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        if parts != ("tinygrad_proust", "__init__"):
            yield ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


@pytest.mark.parametrize("module", list(framework_modules())
                         + ["models." + p.stem for p in sorted((ROOT / "models").glob("*.py")) if p.stem != "__init__"]
                         + ["benchmarks." + p.stem for p in sorted((ROOT / "benchmarks").glob("*.py"))
                            if p.stem != "__init__"]
                         + [script.removesuffix(".py") for script in SCRIPTS])
def test_every_module_imports(module, request):
    if module == "models.torch_gpt":                       # the PyTorch twin of the parity tests needs PyTorch
        request.getfixturevalue("torch")
    assert importlib.import_module(module).__name__ == module


@pytest.mark.parametrize("script", SCRIPTS)
def test_every_script_runs_as_a_file_from_any_folder(script, tmp_path):
    result = subprocess.run([sys.executable, str(ROOT / script), "--help"], cwd=tmp_path, capture_output=True,
                            text=True, timeout=60, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage:")


def test_the_framework_never_imports_the_application():
    for path in sorted((ROOT / "tinygrad_proust").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
                application = ("models", "benchmarks", "train", "generate", "bench")
                assert not any(n.split(".")[0] in application for n in names), path


def test_pip_installs_only_the_framework(tmp_path):
    """A wheel built from the project holds tinygrad_proust and nothing else: no generic top-level `models`."""
    source = tmp_path / "src"
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(".git", "out", "build", "*.egg-info", "__pycache__"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w",
                    str(tmp_path / "dist"), str(source)], check=True, capture_output=True, timeout=120)
    wheel, = (tmp_path / "dist").glob("*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert {name.split("/")[0] for name in names if ".dist-info/" not in name} == {"tinygrad_proust"}
    framework = {str(p.relative_to(ROOT)) for p in (ROOT / "tinygrad_proust").rglob("*.py")}
    assert framework <= set(names), f"the wheel lacks {sorted(framework - set(names))}"  # subpackages too


def application_imports(path):
    """(the application's modules imported at the top of `path`, those imported inside a function)."""
    top, inner = set(), set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        else:
            continue
        found = {n for n in names if n.startswith("models.") and (ROOT / (n.replace(".", "/") + ".py")).exists()}
        found |= {n for n in names if (ROOT / f"{n}.py").exists() and n in {s.removesuffix(".py") for s in SCRIPTS}}
        (top if node.col_offset == 0 else inner).update(found)
    return top, inner


def test_every_import_arrow_of_the_application_points_down():
    """No circle among models/ and the scripts, no library in models/ importing another inside a function (the
    way to dodge a circle), and the model file imports only NumPy, the standard library and the framework."""
    modules = {f"models.{p.stem}": p for p in (ROOT / "models").glob("*.py") if p.stem != "__init__"}
    modules.update({s.removesuffix(".py"): ROOT / s for s in SCRIPTS})
    graph = {name: application_imports(path)[0] for name, path in modules.items()}
    hidden = {name: sorted(application_imports(path)[1]) for name, path in modules.items()
              if name.startswith("models.") and application_imports(path)[1]}
    assert not hidden, f"library modules importing each other inside functions: {hidden}"

    def circle_from(name, path):
        for target in sorted(graph.get(name, ())):
            if target in path:
                return path[path.index(target):] + [target]
            found = circle_from(target, path + [target])
            if found:
                return found
        return None
    circles = [c for name in sorted(graph) if (c := circle_from(name, [name]))]
    assert not circles, f"import circles: {circles[0]}"
    gpt = ast.parse((ROOT / "models" / "gpt.py").read_text())
    roots = {(n.module if isinstance(n, ast.ImportFrom) else a.name).split(".")[0]
             for n in ast.walk(gpt) if isinstance(n, (ast.Import, ast.ImportFrom)) for a in n.names}
    assert roots - set(sys.stdlib_module_names) == {"numpy", "tinygrad_proust"}, roots
