"""A line budget for the core (as teenygrad's sz.py): Tensor + engine + ops must stay readable in one sitting."""
import ast
from pathlib import Path

CORE = ["tensor.py", "ops.py", "fused.py", "functional.py"]
BUDGET = 1040  # code lines: not blank, not comments, not docstrings


def code_lines(path):
    source = path.read_text()
    docstring_lines = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef)) and ast.get_docstring(node) is not None:
            first = node.body[0]
            docstring_lines.update(range(first.lineno, first.end_lineno + 1))
    return sum(1 for i, line in enumerate(source.splitlines(), 1)
               if line.strip() and not line.strip().startswith("#") and i not in docstring_lines)


def test_core_fits_its_line_budget():
    package = Path(__file__).resolve().parent.parent / "tinygrad_proust"
    sizes = {name: code_lines(package / name) for name in CORE}
    assert sum(sizes.values()) <= BUDGET, f"core is {sum(sizes.values())} code lines (budget {BUDGET}): {sizes}"


def test_counter_skips_docstrings_and_comments(tmp_path):
    sample = tmp_path / "sample.py"
    sample.write_text('"""doc\nstring"""\n# comment\n\ndef f():\n    """doc"""\n    return 1\n')
    assert code_lines(sample) == 2
