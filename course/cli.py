"""The course's commands:

    python -m course                           the exercises, their time and what each needs first
    python -m course check [N ...] [--in DIR]   run the checks (of exercises N, or all) on your files
    python -m course student-copy DIR          the repository without the solutions, to hand out
    python -m course grade DIR ... [--json F]  a score table for several students' copies (and as JSON)
    python -m course make-stubs [--force]      for the course's authors: the exercise files from the solutions
"""
import argparse
import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

from .runner import EXERCISES, ROOM, SOLUTIONS, TIME_LIMIT, exercise, exercises, format_report, run, stub_text


class CourseError(Exception):
    """A command given something it cannot use: one line, exit status 2."""


def seconds(text):
    """--time-limit: a number of seconds the system's timer takes (0: no limit)."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not 0 <= value <= 1_000_000:  # NaN too
        raise argparse.ArgumentTypeError(f"expected seconds in [0, 1000000] (0: none), got {text!r}")
    return value


def main(argv=None):
    sys.stdout.reconfigure(errors="replace")  # a console that cannot show ✓ shows ? rather than failing
    parser = argparse.ArgumentParser(prog="python -m course", description="The course's exercises and checks.")
    commands = parser.add_subparsers(dest="command")
    check = commands.add_parser("check", help="run the checks of exercises N (all when none is given)")
    check.add_argument("numbers", nargs="*", type=int, metavar="N")
    check.add_argument("--in", dest="folder", default=str(EXERCISES),
                       help="the folder of exercise files to check (default: course/exercises)")
    check.add_argument("--time-limit", type=seconds, default=TIME_LIMIT, metavar="SECONDS",
                       help="for one check (default %(default)g; 0: none)")
    copy = commands.add_parser("student-copy", help="write the repository without the solutions to DIR")
    copy.add_argument("target")
    grade = commands.add_parser("grade", help="check several students' folders and print a score table")
    grade.add_argument("folders", nargs="+", help="each a student's copy of the repository, or its exercises folder")
    grade.add_argument("--json", help="also write the scores to this file")
    grade.add_argument("--time-limit", type=seconds, default=TIME_LIMIT, metavar="SECONDS",
                       help="for one check (default %(default)g; 0: none)")
    stubs = commands.add_parser("make-stubs", help="for the course's authors: write course/exercises from the "
                                                   "solutions (refuses to replace a file a learner changed)")
    stubs.add_argument("--force", action="store_true", help="replace exercise files that differ from their stubs")
    args = parser.parse_args(argv)
    try:
        if args.command == "check":
            return check_command(args.numbers, Path(args.folder), args.time_limit)
        if args.command == "student-copy":
            return student_copy(Path(args.target))
        if args.command == "grade":
            return grade_command([Path(f) for f in args.folders], args.json, args.time_limit)
        if args.command == "make-stubs":
            return make_stubs(args.force)
        return list_command()
    except (KeyError, CourseError) as error:
        print(f"course: {error.args[0]}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `python -m course | head`
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


def list_command():
    print("The course: from a scalar autograd to a GPT you trained yourself. Your files: course/exercises/")
    chosen = exercises()
    width = max(len(ex.title) for ex in chosen)
    for ex in chosen:
        needs = ", ".join(str(n) for n in ex.needs) or "-"
        print(f"  {ex.number:2d}  {ex.title:<{width}}  ~{ex.minutes:3d} min   needs: {needs}")
    print("Start with course/README.md, then `python -m course check 1`.")
    return 0


def check_command(numbers, folder, seconds=TIME_LIMIT):
    if not folder.is_dir():
        raise CourseError(f"{folder}: no such folder of exercise files")
    chosen = [exercise(n) for n in dict.fromkeys(numbers)] if numbers else exercises()
    passed = total = complete = 0
    for ex in chosen:  # each report as soon as it is ready: a long run shows where it is
        report = run(ex, folder, seconds)
        print(format_report(report, folder / f"{ex.name}.py"), flush=True)
        passed, total, complete = passed + report.passed, total + report.total, complete + report.complete
        if report.stopped:
            print("stopped: the checks after this one were not run")
            return 130
    print(f"score: {passed} of {total} checks pass; {complete} of {len(chosen)} exercises complete")
    return 0 if passed == total else 1


def exercises_folder(path):
    """A student's copy of the repository or its exercises folder: the folder holding the exercise files, or None."""
    inside = path / "course" / "exercises"
    folder = inside if inside.is_dir() else path
    return folder if any(folder.glob("ex[0-9][0-9]_*.py")) else None


def grade_command(folders, json_path, seconds=TIME_LIMIT):
    """One row per student. A folder without exercise files is a row saying so, never the end of the grading."""
    if json_path and (Path(json_path).is_dir() or not Path(json_path).parent.is_dir()):
        problem = "is a folder" if Path(json_path).is_dir() else f"{Path(json_path).parent} is not a folder"
        raise CourseError(f"--json {json_path}: {problem}; give a file to write the scores to")
    chosen = exercises()
    names = [str(path) for path in folders]
    width = max(len("student"), *(len(name) for name in names))
    print(f"{'student':<{width}}  " + " ".join(f"{ex.number:>5d}" for ex in chosen) + "   checks  exercises")
    scores = {}
    for name, path in zip(names, folders):
        folder = exercises_folder(path)
        if folder is None:
            print(f"{name:<{width}}  no exercise files (exNN_*.py) in it or in its course/exercises", flush=True)
            scores[name] = {"error": "no exercise files (exNN_*.py) in it or in its course/exercises"}
            continue
        reports = [run(ex, folder, seconds) for ex in chosen]
        passed = sum(r.passed for r in reports)
        total = sum(r.total for r in reports)
        complete = sum(r.complete for r in reports)
        cells = " ".join(f"{r.passed:>2d}/{r.total:<2d}" for r in reports)
        print(f"{name:<{width}}  {cells}   {passed:>3d}/{total:<3d} {complete:>3d}/{len(chosen)}", flush=True)
        scores[name] = {"checks_passed": passed, "checks": total, "exercises_complete": complete,
                        "exercises": {str(r.exercise.number): {
                            "passed": r.passed, "checks": r.total,
                            "not_passed": [f"{x.check}: {'to do: ' if x.status == 'todo' else ''}{x.message}"
                                           for x in r.results if x.status != "pass"]} for r in reports}}
    if json_path:
        try:
            Path(json_path).write_text(json.dumps(scores, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        except OSError as error:  # a read-only folder, a full disk: the table above is whole
            raise CourseError(f"--json {json_path}: {error.strerror or error}") from None
        print(f"scores written to {json_path}")
    return 0


def make_stubs(force=False):
    """Each exercise file is its solution with the marked regions cut out (runner.stub_text); this writes them, and
    the table of exercises in course/README.md and course/TEACHER.md. A file that differs from its new stub (a
    learner's work, or an older stub) is replaced only with force."""
    if not any(SOLUTIONS.glob("ex[0-9][0-9]_*.py")):
        raise CourseError("this copy has no course/solutions: the stubs are made from them")
    changed = []
    for ex in exercises():
        stub = stub_text((SOLUTIONS / f"{ex.name}.py").read_text(encoding="utf-8"))
        path = EXERCISES / f"{ex.name}.py"
        if path.is_file() and path.read_text(encoding="utf-8") != stub and not force:
            changed.append(path.name)
            continue
        path.write_text(stub, encoding="utf-8")
    if changed:
        raise CourseError(f"{', '.join(changed)} differ from their stubs (a learner's work?): left as they are; "
                          "pass --force to replace them")
    for page in PAGES_WITH_THE_TABLE:
        text = page.read_text(encoding="utf-8")
        start, end = text.index(TABLE_START), text.index(TABLE_END) + len(TABLE_END)
        page.write_text(text[:start] + exercise_table() + text[end:], encoding="utf-8")
    print("wrote course/exercises from the solutions, and the table of exercises in course/README.md and TEACHER.md")
    return 0


PAGES_WITH_THE_TABLE = (ROOM / "README.md", ROOM / "TEACHER.md")
TABLE_START, TABLE_END = "<!-- the exercises: python -m course make-stubs writes this table -->", "<!-- end -->"


def exercise_table():
    rows = [f"| {ex.number} | [{ex.title}](exercises/{ex.name}.py) | {ex.minutes} | "
            f"{', '.join(str(n) for n in ex.needs) or '-'} |" for ex in exercises()]
    return "\n".join([TABLE_START, "| # | exercise (your file) | minutes | needs |", "|---|---|---|---|", *rows,
                      TABLE_END])


def student_copy(target):
    """Copy the repository's committed files (`git ls-files`; every file outside .git when it is not a git checkout)
    without the solutions, and with the exercise files as stubs, whatever the copy's owner wrote in them."""
    if target.exists():
        raise CourseError(f"{target} exists: give a new folder for the student copy")
    repo = ROOM.parent
    try:
        listed = subprocess.run(["git", "ls-files"], cwd=repo, capture_output=True, text=True, check=True).stdout
        files = [repo / line for line in listed.splitlines()]
    except (OSError, subprocess.CalledProcessError):  # not a git checkout (a zip of the repository)
        files = [p for p in repo.rglob("*") if p.is_file() and ".git" not in p.parts]
    left_out = (SOLUTIONS, EXERCISES, repo / "tests" / "test_course.py")  # the course's own tests need solutions
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
    for ex in exercises():  # the stubs, made from the solutions here: never this checkout's answers
        destination = target / "course" / "exercises" / f"{ex.name}.py"
        destination.parent.mkdir(parents=True, exist_ok=True)
        destination.write_text(stub_text((SOLUTIONS / f"{ex.name}.py").read_text(encoding="utf-8")),
                               encoding="utf-8")
        copied += 1
    print(f"wrote a student copy to {target} ({copied} files; the exercises as stubs, without course/solutions)")
    return 0
