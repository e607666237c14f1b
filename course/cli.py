"""The course's commands:

    python -m course                           the exercises, their time and what each needs first
    python -m course check [N ...] [--in DIR]   run the checks (of exercises N, or all) on your files
    python -m course student-copy DIR          the repository without the solutions, to hand out
    python -m course grade DIR ... [--json F]  a score table for several students' copies (and as JSON)
"""
import argparse
import json
import shutil
import subprocess
import sys
from pathlib import Path

from .runner import EXERCISES, ROOM, SOLUTIONS, exercise, exercises, format_report, run, stub_text


def main(argv=None):
    sys.stdout.reconfigure(errors="replace")  # a console that cannot show ✓ shows ? rather than failing
    parser = argparse.ArgumentParser(prog="python -m course", description="The course's exercises and checks.")
    commands = parser.add_subparsers(dest="command")
    check = commands.add_parser("check", help="run the checks of exercises N (all when none is given)")
    check.add_argument("numbers", nargs="*", type=int, metavar="N")
    check.add_argument("--in", dest="folder", default=str(EXERCISES),
                       help="the folder of exercise files to check (default: course/exercises)")
    copy = commands.add_parser("student-copy", help="write the repository without the solutions to DIR")
    copy.add_argument("target")
    grade = commands.add_parser("grade", help="check several students' folders and print a score table")
    grade.add_argument("folders", nargs="+", help="each a student's copy of the repository, or its exercises folder")
    grade.add_argument("--json", help="also write the scores to this file")
    commands.add_parser("make-stubs", help="rewrite course/exercises from the solutions (for the course's authors)")
    args = parser.parse_args(argv)
    try:
        if args.command == "check":
            return check_command(args.numbers, Path(args.folder))
        if args.command == "student-copy":
            return student_copy(Path(args.target))
        if args.command == "grade":
            return grade_command([Path(f) for f in args.folders], args.json)
        if args.command == "make-stubs":
            return make_stubs()
        return list_command()
    except (KeyError, FileExistsError, FileNotFoundError) as error:
        print(f"course: {error.args[0]}", file=sys.stderr)
        return 2


def list_command():
    print("The course: from a scalar autograd to a GPT you trained yourself. Your files: course/exercises/")
    for ex in exercises():
        needs = ", ".join(str(n) for n in ex.needs) or "-"
        print(f"  {ex.number:2d}  {ex.title:<52} ~{ex.minutes:3d} min   needs: {needs}")
    print("Start with course/README.md, then `python -m course check 1`.")
    return 0


def check_command(numbers, folder):
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: no such folder of exercise files")
    chosen = [exercise(n) for n in numbers] if numbers else exercises()
    reports = [run(ex, folder) for ex in chosen]
    for report in reports:
        print(format_report(report, folder / f"{report.exercise.name}.py"))
    passed = sum(r.passed for r in reports)
    total = sum(len(r.results) for r in reports)
    complete = sum(r.complete for r in reports)
    print(f"score: {passed} of {total} checks pass; {complete} of {len(reports)} exercises complete")
    return 0 if passed == total else 1


def make_stubs():
    """Each exercise file is its solution with the marked regions cut out (runner.stub_text); this rewrites them,
    and the table of exercises in course/README.md and course/TEACHER.md."""
    for ex in exercises():
        solution = (SOLUTIONS / f"{ex.name}.py").read_text(encoding="utf-8")
        (EXERCISES / f"{ex.name}.py").write_text(stub_text(solution), encoding="utf-8")
        print(f"wrote course/exercises/{ex.name}.py")
    for page in PAGES_WITH_THE_TABLE:
        text = page.read_text(encoding="utf-8")
        start, end = text.index(TABLE_START), text.index(TABLE_END) + len(TABLE_END)
        page.write_text(text[:start] + exercise_table() + text[end:], encoding="utf-8")
        print(f"wrote the table of exercises in {page.relative_to(ROOM.parent)}")
    return 0


PAGES_WITH_THE_TABLE = (ROOM / "README.md", ROOM / "TEACHER.md")
TABLE_START, TABLE_END = "<!-- the exercises: python -m course make-stubs writes this table -->", "<!-- end -->"


def exercise_table():
    rows = [f"| {ex.number} | [{ex.title}](exercises/{ex.name}.py) | {ex.minutes} | "
            f"{', '.join(str(n) for n in ex.needs) or '-'} |" for ex in exercises()]
    return "\n".join([TABLE_START, "| # | exercise (your file) | minutes | needs |", "|---|---|---|---|", *rows,
                      TABLE_END])


def exercises_folder(path):
    """A student's copy of the repository or its exercises folder: the folder holding the exercise files."""
    inside = path / "course" / "exercises"
    folder = inside if inside.is_dir() else path
    if not any(folder.glob("ex[0-9][0-9]_*.py")):
        raise FileNotFoundError(f"{path}: no exercise files (exNN_*.py) in it or in its course/exercises")
    return folder


def grade_command(folders, json_path):
    chosen = exercises()
    table = {}
    for path in folders:
        folder = exercises_folder(path)
        table[str(path)] = {ex.number: run(ex, folder) for ex in chosen}
    width = max(len(name) for name in table)
    print(f"{'student':<{width}}  " + " ".join(f"{ex.number:>5d}" for ex in chosen) + "   checks  exercises")
    scores = {}
    for name, reports in table.items():
        cells = " ".join(f"{r.passed:>2d}/{len(r.results):<2d}" for r in reports.values())
        passed = sum(r.passed for r in reports.values())
        total = sum(len(r.results) for r in reports.values())
        complete = sum(r.complete for r in reports.values())
        print(f"{name:<{width}}  {cells}   {passed:>3d}/{total:<3d} {complete:>3d}/{len(chosen)}")
        scores[name] = {"checks_passed": passed, "checks": total, "exercises_complete": complete,
                        "exercises": {str(n): {"passed": r.passed, "checks": len(r.results),
                                               "failures": [f"{x.check}: {x.message}" for x in r.results
                                                            if x.status != "pass"]}
                                      for n, r in reports.items()}}
    if json_path:
        Path(json_path).write_text(json.dumps(scores, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        print(f"scores written to {json_path}")
    return 0


def student_copy(target):
    """Copy the repository (the files git keeps or would keep, else every file) without the solutions."""
    if target.exists():
        raise FileExistsError(f"{target} exists: give a new folder for the student copy")
    repo = ROOM.parent
    try:
        listed = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=repo,
                                capture_output=True, text=True, check=True).stdout
        files = [repo / line for line in listed.splitlines()]
    except (OSError, subprocess.CalledProcessError):  # not a git checkout (a zip of the repository)
        files = [p for p in repo.rglob("*") if p.is_file() and ".git" not in p.parts]
    left_out = (SOLUTIONS, repo / "tests" / "test_course.py")  # the course's own tests need the solutions
    copied = 0
    for path in files:
        if any(path == skip or skip in path.parents for skip in left_out) or "__pycache__" in path.parts:
            continue
        if not path.is_file():
            continue
        destination = target / path.relative_to(repo)
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, destination)
        copied += 1
    print(f"wrote a student copy to {target} ({copied} files, without course/solutions)")
    return 0
