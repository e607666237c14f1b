"""What the scripts (train.py, generate.py, quantize.py, export.py, adapters.py, inspection.py, bench.py,
gpu_smoke.py) share on the
command line, above every library in models/:

- a parser whose every error is one line, `error: argument --flag: ...`, with exit status 2, and which takes no
  abbreviations (`--step` is not silently `--steps`);
- argument types that check a range when the flag is read, so each flag states what it accepts where it is
  declared: integer(1), integer(0, 2**32 - 1), real(0, 1, high_open=True), ...;
- fail(): a bad input found later ends the run the same way, with one line;
- given_flags(): the flags a command line wrote, for refusing one that the chosen mode would not read, and
  chosen_mode(): one mode a run (bench.py's experiments, gpu_smoke.py's modes), with only the options it reads;
- console(): output that survives any console encoding, and a closed pipe (`| head`) that ends the script quietly;
- loading a checkpoint (with a prompt);
- outputs checked before the work: no folder or pipe where a file goes, a checkpoint's suffix naming its format.
"""
import argparse
import contextlib
import errno
import importlib.util
import math
import os
import sys
from pathlib import Path

from models.corpus import DataError
from models.export import ExportError
from models.loading import load_model
from models.tokenizer import CharTokenizer, UnknownCharacters, encode_prompt
from tinygrad_proust import DeviceError, gpu_available, zeros
from tinygrad_proust.checkpoint import CheckpointError, check_writable


class Parser(argparse.ArgumentParser):
    def __init__(self, **kwargs):
        super().__init__(allow_abbrev=False, formatter_class=argparse.RawDescriptionHelpFormatter, **kwargs)

    def error(self, message):
        fail(message.replace("\n", " "))


def fail(message, status=2):
    """End the script with one line on stderr: `error: <message>`."""
    print(f"error: {message}", file=sys.stderr)
    sys.exit(status)


def _bounds(low, high, low_open=False, high_open=False):
    left = "(" if low_open else "["
    right = ")" if high_open else "]"
    return f"{left}{'-inf' if low is None else low}, {'inf' if high is None else high}{right}"


def given_flags(parser, argv):
    """The dests of the flags written on this command line (not the defaults, nor a resumed run's settings)."""
    words = [word.split("=")[0] for word in (sys.argv[1:] if argv is None else argv)]
    return {action.dest for action in parser._actions if any(opt in words for opt in action.option_strings)}


def chosen_mode(parser, argv, modes, default, kind="mode"):
    """The one mode a command line names, of `modes` ({a mode's flag dest: the dests of the options it reads});
    `default` (its description, modes' key "default") when it names none. Two at once, or an option written that
    the mode would not read, even at its default value, is an error. Returns the mode's dest."""
    given, flag = given_flags(parser, argv), lambda name: "--" + name.replace("_", "-")
    chosen = [name for name in modes if name != "default" and name in given] or ["default"]
    if len(chosen) > 1:
        parser.error(f"one {kind} a run: {', '.join(map(flag, chosen))} were given together")
    unused = sorted(given - modes[chosen[0]] - {chosen[0]})
    if unused:
        what = default if chosen[0] == "default" else flag(chosen[0])
        parser.error(f"{', '.join(map(flag, unused))} {'does' if len(unused) == 1 else 'do'} not apply to {what}")
    return chosen[0]


def integer(low=None, high=None):
    """An argparse type: a whole number in [low, high] (None: unbounded)."""
    def parse(text):
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number in {_bounds(low, high)}, got {text!r}") from None
        if (low is not None and value < low) or (high is not None and value > high):
            raise argparse.ArgumentTypeError(f"expected a whole number in {_bounds(low, high)}, got {value}")
        return value
    parse.__name__ = "integer"
    return parse


def real(low=None, high=None, low_open=False, high_open=False):
    """An argparse type: a finite number in the interval (open or closed at each end; None: unbounded)."""
    def parse(text):
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number in {_bounds(low, high, low_open, high_open)}, "
                                             f"got {text!r}") from None
        too_low = low is not None and (value <= low if low_open else value < low)
        too_high = high is not None and (value >= high if high_open else value > high)
        if not math.isfinite(value) or too_low or too_high:
            raise argparse.ArgumentTypeError(f"expected a finite number in {_bounds(low, high, low_open, high_open)}, "
                                             f"got {text}")
        return value
    parse.__name__ = "real"
    return parse


def one_character(text):
    if len(text) != 1:
        raise argparse.ArgumentTypeError(f"expected exactly one character, got {text!r}")
    return text


def non_empty(text):
    if not text:
        raise argparse.ArgumentTypeError("expected a non-empty string")
    return text


class OutputOrNothing:
    """stdout for a long run: once its reader has gone (`train.py | head -4`), the rest of the output is dropped
    and the run goes on to its end and its checkpoints, instead of stopping at the next print as if it had
    finished."""

    def __init__(self, stream):
        self.stream, self.reader_gone = stream, False

    def _try(self, action):
        if not self.reader_gone:
            try:
                return action()
            except BrokenPipeError:
                self.reader_gone = True
                os.dup2(os.open(os.devnull, os.O_WRONLY), self.stream.fileno())  # and Python's exit flush too
        return None

    def write(self, text):
        self._try(lambda: self.stream.write(text))
        return len(text)

    def flush(self):
        self._try(self.stream.flush)

    def __getattr__(self, name):
        return getattr(self.stream, name)


def silence_stdout():
    """Point stdout at /dev/null: Python flushes it again at exit, which must not fail a second time."""
    with contextlib.suppress(OSError, ValueError):  # not a real file (a test's captured output)
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


RAN_OUT = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EIO)  # failures while running, not a bad path given


def console(main):
    """Run main() so that text prints on any console (characters it cannot encode become '?'), a reader that
    closes the pipe early (`generate.py | head`) ends the script quietly, Ctrl-C outside a training loop
    exits with status 130 and no traceback, and a file that cannot be written or read is one line."""
    def run(argv=None):
        for stream in (sys.stdout, sys.stderr):
            if hasattr(stream, "reconfigure"):
                stream.reconfigure(errors="replace")
        try:
            return main(argv)
        except BrokenPipeError:
            silence_stdout()
            sys.exit(0)
        except KeyboardInterrupt:
            print("", file=sys.stderr)
            sys.exit(130)
        except OSError as err:  # a full disk, a read-only folder, a folder where a file should be: one line
            if err.filename is None:  # the output stream itself (`> /dev/full`)
                silence_stdout()
                fail(f"could not write the output: {err.strerror or err}", status=1)
            fail(f"{err.filename}: {err.strerror or err}", status=1 if err.errno in RAN_OUT else 2)
    run.__wrapped__ = main
    return run


def load_model_or_fail(checkpoint, device="cpu", context=""):
    """(model, tokenizer, record) as models.loading.load_model gives them; any problem with the checkpoint or the
    device ends the script with one line (after `context`, say "--init-from out/best.npz: ")."""
    try:
        return load_model(checkpoint, device=device)
    except (CheckpointError, DataError, DeviceError, ExportError) as err:
        fail(f"{context}{err}")
    except ImportError as err:  # only a Transformers directory needs more packages to load
        fail(f"{context}loading a Transformers directory needs {err.name}: pip install safetensors tokenizers")


def load_model_and_prompt(checkpoint, prompt, drop_unknown=False, device="cpu", what="prompt"):
    """(model, tokenizer, prompt ids) for a script that continues or looks at a prompt; any problem with the
    checkpoint, the prompt or the device ends the script with one line, and characters drop_unknown leaves out
    are named on stderr. `what`: the word the messages use for the prompt ("text" for inspection.py tokens --text)."""
    model, tokenizer, _ = load_model_or_fail(checkpoint, device)
    if tokenizer is None:  # a Transformers directory without tokenizer.json
        fail(f"{checkpoint}: the directory has no tokenizer.json to encode the {what} with")
    if drop_unknown and not isinstance(tokenizer, CharTokenizer):  # a note, not an error: any model may be given it
        print("note: --drop-unknown does nothing here: this checkpoint's tokenizer works on bytes and encodes every "
              "text", file=sys.stderr)
    try:
        ids = encode_prompt(tokenizer, prompt, drop_unknown, what)
        left_out = tokenizer.unknown_chars(prompt)
        if left_out:  # with drop_unknown: say what the model will not see
            print(f"note: left out of the {what}, not in the model's vocabulary: {', '.join(map(repr, left_out))}",
                  file=sys.stderr)
        return model, tokenizer, ids
    except UnknownCharacters as err:
        fail(f"{err} (pass --drop-unknown to leave them out)")
    except DataError as err:
        fail(err)


def pick_device(name):
    """'cpu' or 'gpu'; 'auto' takes the GPU when CuPy sees one. A GPU that cannot be used is one clear line."""
    if name == "auto":
        name = "gpu" if gpu_available() else "cpu"
    try:
        zeros(1, device=name)
    except DeviceError as err:
        fail(err)
    return "gpu" if name in ("gpu", "cuda") else "cpu"


def refuse_unknown_format(target):
    """A checkpoint to write whose suffix names neither format (save_arrays writes .safetensors as such and any
    other name as .npz), or a .safetensors one without the package, is one line, before any work."""
    if Path(target).suffix not in (".npz", ".safetensors"):
        fail(f"{target}: a checkpoint's suffix names its format: .npz or .safetensors; end the name in one of them")
    if Path(target).suffix == ".safetensors" and not safetensors_installed():
        fail(f"{target}: a .safetensors checkpoint needs the safetensors package: pip install safetensors")


def safetensors_installed():
    """Whether the safetensors package is there, which writing a .safetensors checkpoint needs (an extra)."""
    return importlib.util.find_spec("safetensors") is not None


def refuse_existing(target, overwrite):
    """An output file that exists (a checkpoint, maybe the one a resume needs) is replaced only when asked."""
    if Path(target).is_file() and not overwrite:
        fail(f"{target} already exists: choose another output file, or pass --overwrite to replace it")


def refuse_unwritable(target):
    """An output path that no write could take (a folder, a device or a pipe at it, a file where its folder should
    be) is the one line write_atomically would give, said before any work rather than after it."""
    try:
        check_writable(target)
    except OSError as err:
        fail(f"{err.filename}: {err.strerror}")


def refuse_checkpoint_output(source, target, overwrite):
    """The checks of a checkpoint a script writes from another (quantize.py, adapters.py merge), in the order a user
    meets them, before any work: what the path is (a folder, a pipe), what its suffix says, whether it is the input
    itself, whether it would replace a file without --overwrite."""
    refuse_unwritable(target)
    refuse_unknown_format(target)
    refuse_same_file(source, target)
    refuse_existing(target, overwrite)


def refuse_same_file(source, target):
    """An output that is the input itself (the same path, a hard link or a symbolic link to it) would replace
    the input: one line, and nothing written."""
    if Path(target).exists() and Path(source).exists() and os.path.samefile(source, target):
        fail(f"{target} is {source} itself (the same file): writing it would replace the input; choose another "
             "output file")
