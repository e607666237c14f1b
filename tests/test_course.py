"""The course checks itself: the learner's stubs are the solutions with the exercises cut out; every check passes
on the solutions, reports "to do" on the stubs, and fails with its intended message on each listed wrong answer;
the teacher's commands work."""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from course import runner

ROOT = Path(__file__).resolve().parents[1]
EXERCISES = runner.exercises()
MISTAKES = [(ex, m) for ex in EXERCISES for m in runner.mistakes(ex.name)]


@pytest.fixture(autouse=True)
def quick_training(monkeypatch):
    monkeypatch.setenv("TINYGRAD_PROUST_COURSE_QUICK", "1")


def test_there_are_exercises_in_order():
    numbers = [ex.number for ex in EXERCISES]
    assert numbers == list(range(1, len(numbers) + 1))
    for ex in EXERCISES:
        assert all(n < ex.number for n in ex.needs), ex.name
        assert (runner.SOLUTIONS / f"{ex.name}.py").is_file() and (runner.EXERCISES / f"{ex.name}.py").is_file()


def test_the_pages_list_every_exercise():
    from course import cli
    for page in cli.PAGES_WITH_THE_TABLE:
        assert cli.exercise_table() in page.read_text(encoding="utf-8"), \
            f"{page.name}: its table is not the exercises' (python -m course make-stubs rewrites it)"


@pytest.mark.parametrize("ex", EXERCISES, ids=lambda ex: ex.name)
def test_stub_is_the_solution_with_the_exercise_cut_out(ex):
    solution = (runner.SOLUTIONS / f"{ex.name}.py").read_text(encoding="utf-8")
    assert (runner.EXERCISES / f"{ex.name}.py").read_text(encoding="utf-8") == runner.stub_text(solution), \
        "regenerate the stub: python -m course make-stubs"
    assert f"exercise {ex.number}:" in runner.stub_text(solution)


@pytest.mark.parametrize("ex", EXERCISES, ids=lambda ex: ex.name)
def test_solution_passes_every_check(ex):
    report = runner.run(ex, runner.SOLUTIONS)
    assert report.results and report.complete, runner.format_report(report)


@pytest.mark.parametrize("ex", EXERCISES, ids=lambda ex: ex.name)
def test_stub_passes_no_check(ex):
    report = runner.run(ex, runner.EXERCISES)
    assert [r.status for r in report.results if r.status == "pass"] == [], runner.format_report(report)
    assert any(r.status == "todo" and f"exercise {ex.number}:" in r.message for r in report.results)


@pytest.mark.parametrize("ex,mistake", MISTAKES, ids=[f"{ex.name}-{m.what}" for ex, m in MISTAKES])
def test_wrong_answer_fails_with_its_message(ex, mistake, tmp_path):
    folder = tmp_path / "work"
    shutil.copytree(runner.SOLUTIONS, folder, ignore=shutil.ignore_patterns("__pycache__"))
    path = folder / f"{ex.name}.py"
    path.write_text(runner.with_mistake(path.read_text(encoding="utf-8"), mistake), encoding="utf-8")
    report = runner.run(ex, folder)
    failures = [r.message for r in report.results if r.status == "fail"]
    assert failures, f"no check caught: {mistake.what}\n" + runner.format_report(report)
    assert any(mistake.expect in message for message in failures), runner.format_report(report)


def course(*args, cwd=ROOT):
    env = dict(os.environ, TINYGRAD_PROUST_COURSE_QUICK="1")
    return subprocess.run([sys.executable, "-m", "course", *args], cwd=cwd, capture_output=True, text=True,
                          env=env, timeout=600)


def test_check_command_reports_a_stub_and_a_score():
    done = course("check", "1")
    assert done.returncode == 1
    assert "· the gradient of a + b: to do (exercise 1: the gradient of a + b)" in done.stdout
    assert done.stdout.strip().splitlines()[-1] == "score: 0 of 6 checks pass; 0 of 1 exercises complete"
    listing = course()
    assert listing.returncode == 0 and all(ex.title in listing.stdout for ex in EXERCISES)


def test_check_command_says_what_is_wrong_in_a_learners_file(tmp_path):
    folder = tmp_path / "mine"
    shutil.copytree(runner.EXERCISES, folder)
    path = folder / "ex01_value.py"
    text = path.read_text(encoding="utf-8")
    path.write_text(text.replace('raise NotImplementedError(\'exercise 1: the gradient of a + b\')',
                                 "self.grad += out.grad\n            other.grad = out.grad"), encoding="utf-8")
    done = course("check", "1", "--in", str(folder))
    assert "✓ the gradient of a + b" in done.stdout
    assert "✗ gradients are added (+=) to what an input already has: in a + b" in done.stdout
    assert "score: 1 of 6 checks pass" in done.stdout


def test_teacher_hands_out_a_student_copy_and_grades_it(tmp_path):
    teacher = tmp_path / "teacher"  # a clone where the teacher has done exercise 1: the copy still gets the stub
    subprocess.run(["git", "clone", "-q", str(ROOT), str(teacher)], check=True)
    solved = (runner.SOLUTIONS / "ex01_value.py").read_text(encoding="utf-8")
    (teacher / "course" / "exercises" / "ex01_value.py").write_text(solved, encoding="utf-8")
    copy = tmp_path / "student"
    done = course("student-copy", str(copy), cwd=teacher)
    assert done.returncode == 0, done.stderr
    assert not (copy / "course" / "solutions").exists() and not (copy / "tests" / "test_course.py").exists()
    assert (copy / "course" / "exercises" / "ex01_value.py").read_text(encoding="utf-8") == runner.stub_text(solved)
    assert (copy / "course" / "runner.py").exists() and (copy / "tinygrad_proust" / "tensor.py").exists()
    refused = course("student-copy", str(copy), cwd=teacher)  # never over an existing folder
    assert refused.returncode == 2 and refused.stderr.strip() == f"course: {copy} exists: give a new folder for " \
        "the student copy"
    in_copy = course("check", "1", cwd=copy)  # the copy runs on its own
    assert in_copy.returncode == 1 and "score: 0 of 6" in in_copy.stdout
    assert course("make-stubs", cwd=copy).stderr.strip() == \
        "course: this copy has no course/solutions: the stubs are made from them"
    # make-stubs leaves a learner's work alone unless forced
    kept = course("make-stubs", cwd=teacher)
    assert kept.returncode == 2 and "ex01_value.py differ from their stubs" in kept.stderr
    assert (teacher / "course" / "exercises" / "ex01_value.py").read_text(encoding="utf-8") == solved

    partial = tmp_path / "partial"  # a student who handed in only exercise 1, solved
    partial.mkdir()
    shutil.copy(runner.SOLUTIONS / "ex01_value.py", partial / "ex01_value.py")
    scores = tmp_path / "scores.json"
    graded = course("grade", str(copy), str(runner.SOLUTIONS), str(tmp_path / "nothing-here"), str(partial),
                    "--json", str(scores))
    assert graded.returncode == 0, graded.stderr
    table = json.loads(scores.read_text(encoding="utf-8"))
    total = sum(len(ex.check_functions()) for ex in EXERCISES)
    assert table[str(copy)]["checks_passed"] == 0 and table[str(copy)]["checks"] == total
    assert table[str(runner.SOLUTIONS)]["checks_passed"] == total
    assert table[str(runner.SOLUTIONS)]["exercises_complete"] == len(EXERCISES)
    assert "no exercise files" in table[str(tmp_path / "nothing-here")]["error"]
    assert table[str(partial)]["checks"] == total and table[str(partial)]["exercises_complete"] == 1
    missing = table[str(partial)]["exercises"]["2"]["not_passed"]
    assert missing and all("to do: there is no ex02_backward.py" in line for line in missing)


@pytest.mark.parametrize("args", [["check", "1", "--time-limit", "-5"], ["check", "1", "--time-limit", "nan"],
                                  ["grade", ".", "--time-limit", "1e300"]])
def test_a_time_limit_out_of_range_is_refused_before_any_check_runs(args):
    """A negative or NaN limit made every check fail as if the learner's file did not import; a huge one was an
    OverflowError in each."""
    done = course(*args)
    assert done.returncode == 2 and "argument --time-limit: expected seconds in [0, 1000000] (0: none)" \
        in done.stderr and "Traceback" not in done.stderr and done.stdout == "", done.stderr


@pytest.mark.parametrize("where", ["missing folder", "a folder"])
def test_grade_refuses_a_json_file_it_cannot_write_before_grading(tmp_path, where):
    target = tmp_path / "missing" / "scores.json" if where == "missing folder" else tmp_path
    done = course("grade", str(tmp_path), "--json", str(target))
    assert done.returncode == 2 and done.stderr.startswith(f"course: --json {target}: ") and done.stdout == "", \
        done.stderr
    assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1


def test_an_endless_loop_is_stopped_and_its_line_named(tmp_path):
    folder = tmp_path / "work"
    shutil.copytree(runner.SOLUTIONS, folder, ignore=shutil.ignore_patterns("__pycache__"))
    path = folder / "ex02_backward.py"
    path.write_text(path.read_text(encoding="utf-8").replace(
        "    order, visited = [], set()\n", "    order, visited = [], set()\n    while True:\n        pass\n", 1),
        encoding="utf-8")
    done = course("check", "2", "--in", str(folder), "--time-limit", "1")
    assert done.returncode == 1
    assert "took longer than 1 s: an endless loop? (ex02_backward.py, line" in done.stdout
    assert "`while True:`" in done.stdout or "`pass`" in done.stdout  # the line the loop was on


def test_the_colab_notebook_installs_as_the_projects_does_and_runs_a_check(monkeypatch):
    from test_colab import install_cell, run_cell
    notebook = json.loads((ROOT / "course" / "colab.ipynb").read_text(encoding="utf-8"))
    cells = ["".join(cell["source"]) for cell in notebook["cells"] if cell["cell_type"] == "code"]
    assert install_cell() in cells  # the same install cell as docs/colab.ipynb's (tested there, outside the repo)
    assert cells[-1] == "!python -m course check --in {FOLDER}\n"  # every exercise: checked by the tests above
    monkeypatch.chdir(ROOT)
    namespace = {}
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    for index, cell in enumerate(cells[:-1]):
        run_cell(cell, namespace, env, index)  # every `!` command must exit 0: a check fails the cell otherwise
        if index == 0:
            assert namespace["FOLDER"] == "course/exercises" and namespace["N"] == 1
            namespace["FOLDER"] = str(runner.SOLUTIONS)


def test_the_learners_page_shows_what_a_check_really_prints(tmp_path):
    page = (ROOT / "course" / "README.md").read_text(encoding="utf-8")
    shown = [line for line in page.splitlines() if line.startswith("  ✗ ")]
    folder = tmp_path / "work"
    shutil.copytree(runner.SOLUTIONS, folder, ignore=shutil.ignore_patterns("__pycache__"))
    path = folder / "ex01_value.py"
    swapped = [m for m in runner.mistakes("ex01_value") if "swapped" in m.what][0]
    path.write_text(runner.with_mistake(path.read_text(encoding="utf-8"), swapped), encoding="utf-8")
    printed = runner.format_report(runner.run(runner.exercise(1), folder)).splitlines()
    assert shown and all(line in printed for line in shown), printed
