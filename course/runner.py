"""Finding the exercises, loading a learner's files, running their checks and reporting in the learner's terms.

An exercise is three files with one name, `exNN_topic.py`:
    exercises/   the learner's file: stubs that raise NotImplementedError("exercise NN: ...")
    solutions/   the reference answer, and MISTAKES: plausible wrong answers its checks must catch
    checks/      TITLE, MINUTES, NEEDS and the checks: functions `check_...(ex)`, in the order written, each
                 given the learner's module and raising Wrong with what is wrong (its docstring says what it checks)
A folder of exercise files is imported as one package, so a later exercise imports the learner's own earlier work
(`from .ex01_value import Value`) and grading several students' folders in one process keeps them apart.
"""
import contextlib
import hashlib
import importlib
import os
import signal
import sys
import threading
import traceback
import types
from dataclasses import dataclass, field
from pathlib import Path

ROOM = Path(__file__).resolve().parent
EXERCISES = ROOM / "exercises"
SOLUTIONS = ROOM / "solutions"
CHECKS = ROOM / "checks"


class Wrong(AssertionError):
    """What a check found wrong, said in the learner's terms."""


@dataclass
class Mistake:
    """A plausible wrong answer: the solution with `old` (found exactly once) replaced by `new`. The exercise's
    checks must fail on it with a message containing `expect`."""
    what: str
    old: str
    new: str
    expect: str


@dataclass
class Exercise:
    number: int
    name: str
    checks: types.ModuleType

    @property
    def title(self):
        return self.checks.TITLE

    @property
    def minutes(self):
        return self.checks.MINUTES

    @property
    def needs(self):
        return self.checks.NEEDS

    def check_functions(self):
        found = [f for name, f in vars(self.checks).items() if name.startswith("check_") and callable(f)]
        return sorted(found, key=lambda f: f.__code__.co_firstlineno)


def exercises():
    """Every exercise, in order."""
    found = []
    for path in sorted(CHECKS.glob("ex[0-9][0-9]_*.py")):
        found.append(Exercise(int(path.stem[2:4]), path.stem, importlib.import_module(f"course.checks.{path.stem}")))
    return found


def exercise(number):
    for ex in exercises():
        if ex.number == number:
            return ex
    raise KeyError(f"there is no exercise {number}: `python -m course` lists them")


def quick():
    """True when checks should train briefly (the course's own tests set TINYGRAD_PROUST_COURSE_QUICK=1): the
    thresholds are looser, never so loose that a listed mistake passes."""
    return os.environ.get("TINYGRAD_PROUST_COURSE_QUICK") == "1"


def load(folder, name):
    """Import folder/name.py as a module of a package made of `folder` (fresh each call: an edited file counts)."""
    folder = Path(folder).resolve()
    package = "course_work_" + hashlib.sha1(str(folder).encode()).hexdigest()[:12]
    if package not in sys.modules:
        module = types.ModuleType(package)
        module.__path__ = [str(folder)]
        sys.modules[package] = module
    for loaded in [m for m in sys.modules if m.startswith(package + ".")]:
        del sys.modules[loaded]
    return importlib.import_module(f"{package}.{name}")


def sibling(ex, name):
    """The learner's own earlier exercise `name`, from the same folder as `ex` (a check of exercise 8 uses the
    learner's softmax from exercise 5, say)."""
    return importlib.import_module(f"{ex.__package__}.{name}")


@dataclass
class Result:
    check: str          # the check's docstring: what it checks
    status: str         # "pass", "fail" or "todo" (a stub not written yet, or no file)
    message: str = ""


@dataclass
class Report:
    exercise: Exercise
    results: list = field(default_factory=list)
    stopped: bool = False  # Ctrl-C: the checks after it were not run

    @property
    def passed(self):
        return sum(r.status == "pass" for r in self.results)

    @property
    def total(self):
        """The exercise's number of checks, whatever happened to them (a file that does not import still has them
        all to pass: scores compare across learners)."""
        return len(self.exercise.check_functions())

    @property
    def complete(self):
        return self.passed == self.total > 0


class TimeLimit(Exception):
    """A check ran longer than its time limit."""


TIME_LIMIT = 900  # seconds for one check: the longest trains for a few minutes on a slow laptop


@contextlib.contextmanager
def time_limit(seconds):
    """Raise TimeLimit in the running code after `seconds` (where the system has alarms: not on Windows)."""
    if not seconds or not hasattr(signal, "setitimer") or threading.current_thread() is not threading.main_thread():
        yield
        return

    def expire(signum, frame):
        raise TimeLimit(f"took longer than {seconds:g} s")
    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def run(exercise, folder=EXERCISES, seconds=TIME_LIMIT):
    """Run every check of `exercise` on the learner's file in `folder`; a check's failure never stops the next. A
    check that runs past `seconds` fails naming where the learner's code was (an endless loop?); Ctrl-C stops
    the checks, saying the same."""
    report = Report(exercise)
    learner_file = Path(folder).resolve() / f"{exercise.name}.py"
    checks = [((c.__doc__ or c.__name__).strip().splitlines()[0], c) for c in exercise.check_functions()]
    if not learner_file.is_file():
        report.results = [Result(what, "todo", f"there is no {learner_file.name} in {folder}") for what, _ in checks]
        return report
    try:
        with time_limit(seconds):
            module = load(folder, exercise.name)
    except NotImplementedError as stub:  # a stub raised while the module was being imported
        report.results = [Result(what, "todo", str(stub)) for what, _ in checks]
        return report
    except KeyboardInterrupt as stop:
        report.results, report.stopped = [Result("the file imports", "fail", explain(stop, learner_file))], True
        return report
    except Exception as error:  # noqa: BLE001  (any error in the learner's file is reported, not raised)
        message = explain(error, learner_file)
        report.results = [Result(what, "fail", f"the file does not import: {message}") for what, _ in checks]
        return report
    for what, check in checks:
        try:
            with time_limit(seconds):
                check(module)
            report.results.append(Result(what, "pass"))
        except NotImplementedError as stub:
            report.results.append(Result(what, "todo", str(stub) or "not written yet"))
        except Wrong as wrong:
            report.results.append(Result(what, "fail", str(wrong)))
        except KeyboardInterrupt as stop:
            report.results.append(Result(what, "fail", explain(stop, learner_file)))
            report.stopped = True
            break
        except Exception as error:  # noqa: BLE001
            report.results.append(Result(what, "fail", explain(error, learner_file)))
    return report


def explain(error, learner_file):
    """An exception from the learner's code as one line: what was raised, and the line of their file it came from."""
    where = ""
    for frame in reversed(traceback.extract_tb(error.__traceback__)):
        if Path(frame.filename).resolve().parent == learner_file.parent:
            where = f" ({Path(frame.filename).name}, line {frame.lineno}: `{(frame.line or '').strip()}`)"
            break
    if isinstance(error, KeyboardInterrupt):
        return f"stopped (Ctrl-C){' while running your code' + where if where else ''}"
    if isinstance(error, TimeLimit):
        return f"{error}{': an endless loop?' + where if where else ''}"
    message = str(error).splitlines()[0] if str(error) else ""
    return f"your code raised {type(error).__name__}: {message}{where}"


MARKS = {"pass": "✓", "fail": "✗", "todo": "·"}


def format_report(report, learner_file=None):
    ex = report.exercise
    lines = [f"exercise {ex.number} · {ex.title}" + (f"  ({learner_file})" if learner_file else "")]
    for r in report.results:
        detail = f": to do ({r.message})" if r.status == "todo" else f": {r.message}" if r.message else ""
        lines.append(f"  {MARKS[r.status]} {r.check}{detail}")
    return "\n".join(lines)


# ---- stubs: the learner's files are the solutions with each marked region replaced by a NotImplementedError ----
#   # TODO exercise N: what to write          <- the learner's stub raises NotImplementedError("exercise N: ...")
#   ... the solution's lines ...
#   # END
# and everything from the line `# ---- mistakes` on (the wrong answers the checks must catch) is left out.

def stub_text(solution):
    lines, out, inside = solution.splitlines(), [], False
    for line in lines:
        stripped = line.strip()
        if stripped.startswith("# ---- mistakes"):
            break
        if stripped.startswith("# TODO exercise"):
            indent = line[:len(line) - len(line.lstrip())]
            message = stripped[len("# TODO "):]
            out.append(f"{indent}raise NotImplementedError({message!r})")
            inside = True
        elif stripped == "# END" and inside:
            inside = False
        elif not inside:
            out.append(line)
    if inside:
        raise ValueError("a `# TODO exercise` region has no `# END`")
    while out and not out[-1].strip():
        out.pop()
    return "\n".join(out) + "\n"


def with_mistake(solution, mistake):
    """The solution's text with the mistake made (in the code above the `# ---- mistakes` line, where `old` must
    occur exactly once)."""
    cut = solution.index("# ---- mistakes")
    code = solution[:cut]
    if code.count(mistake.old) != 1:
        raise ValueError(f"{mistake.what}: its `old` text occurs {code.count(mistake.old)} times, not once")
    return code.replace(mistake.old, mistake.new) + solution[cut:]


def mistakes(name):
    """The wrong answers listed at the end of solutions/name.py."""
    return load(SOLUTIONS, name).MISTAKES
