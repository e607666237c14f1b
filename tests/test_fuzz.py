"""Fuzzing the command lines and the checkpoint loader.

Every flag of train.py, generate.py and `inspection.py` is listed here with the values it accepts,
written from the documentation, not read from the parsers (a test checks the list covers every flag they have).
For each, invalid values (below and above the range, zero, negative, NaN, infinities, huge, the wrong type,
empty) must end the script with exit status 2 and exactly one line on stderr, `error: argument --flag: ...`.
Paths that do not exist or are the wrong kind get the same treatment. Then damaged checkpoints (random byte
flips, truncations) must be refused with one clear error, or load to exactly the original.
"""
import math
import zipfile

import numpy as np
import pytest

import generate
import train
from inspection import main as inspection_main, make_parser as make_inspection_parser
from models.gpt import GPT, GPTConfig
from models.tokenizer import CharTokenizer
from tinygrad_proust.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from tinygrad_proust import optim

BIG = 10**12
# flag: ("int", low, high) | ("real", low, high, low_open, high_open) | ("choice", choices) | ("char",) |
#       ("text",) non-empty text | ("switch",) | ("path", kind)
TRAIN_FLAGS = {
    "--preset": ("choice", ["baby-gpt", "byte-gpt", "char-small", "proust", "raven"]),
    "--n-layer": ("int", 1, 1024), "--n-head": ("int", 1, 1024), "--n-embd": ("int", 1, 65536),
    "--ffn-hidden": ("int", 1, 1 << 20), "--block-size": ("int", 1, 1 << 20), "--dropout": ("real", 0, 1, False, True),
    "--data": ("path", "corpus"), "--tokenizer": ("choice", ["char", "byte", "bpe"]), "--chars": ("text",),
    "--vocab-size": ("int", 257, 65536), "--bpe-pattern": ("choice", ["gpt4", "gpt2", "none"]),
    "--replace-unknown": ("char",), "--val-fraction": ("real", 0, 1, True, True),
    "--batch-size": ("int", 1, 1 << 20), "--grad-accum": ("int", 1, 1 << 20), "--steps": ("int", 1, BIG),
    "--optimizer": ("choice", ["adamw", "adam", "sgd"]), "--lr": ("real", 0, 100, True, False),
    "--min-lr": ("real", 0, 100, False, False), "--warmup": ("int", 0, BIG),
    "--schedule": ("choice", ["cosine", "constant"]), "--lr-decay-steps": ("int", 1, BIG),
    "--weight-decay": ("real", 0, 100, False, False), "--beta1": ("real", 0, 1, False, True),
    "--beta2": ("real", 0, 1, False, True), "--momentum": ("real", 0, 1, False, True),
    "--grad-clip": ("real", 0, 1e9, False, False), "--eval-interval": ("int", 1, BIG),
    "--eval-batches": ("int", 1, 1 << 20), "--sample-tokens": ("int", 0, 1 << 20), "--log-interval": ("int", 1, BIG),
    "--time-limit": ("real", 0, 10**7, True, False),
    "--out-dir": ("path", "out-dir"), "--overwrite": ("switch",), "--resume": ("path", "checkpoint"),
    "--format": ("choice", ["npz", "safetensors"]), "--init-from": ("path", "checkpoint-or-directory"),
    "--lora-rank": ("int", 1, 65536), "--lora-alpha": ("real", 0, 1e6, True, False), "--lora-targets": ("text",),
    "--lora-dropout": ("real", 0, 1, False, True),
    "--device": ("choice", ["cpu", "gpu", "cuda", "auto"]), "--seed": ("int", 0, 2**32 - 1),
    "--unicode": ("choice", ["nfc", "as-is"]),
    # the architecture
    "--norm": ("choice", ["layernorm", "rmsnorm"]), "--norm-placement": ("choice", ["pre", "post"]),
    "--norm-eps": ("real", 0, 1, True, False), "--ffn": ("choice", ["relu", "gelu", "swiglu"]),
    "--gelu-approximate": ("choice", ["tanh", "none"]), "--positions": ("choice", ["learned", "sinusoidal", "rope"]),
    "--rope-base": ("real", 1, 1e12, True, False),
    **{f"--{prefix}{name}": ("switch",) for name in ("norm-bias", "final-norm", "ffn-bias", "attn-bias",
                                                     "scale-embeddings", "tie-weights", "head-bias",
                                                     "scaled-residual-init", "ffn-dropout") for prefix in ("", "no-")},
}
GENERATE_FLAGS = {
    "--checkpoint": ("path", "checkpoint"), "--out-dir": ("path", "checkpoint-folder"), "--prompt": ("switch",),
    "--max-new-tokens": ("int", 0, 10**7), "--temperature": ("real", 0, 1e6, False, False),
    "--top-k": ("int", 0, 10**9), "--top-p": ("real", 0, 1, True, False), "--greedy": ("switch",),
    "--num-samples": ("int", 1, 10**6), "--seed": ("int", 0, 2**32 - 1),
    "--device": ("choice", ["cpu", "gpu", "cuda", "auto"]), "--drop-unknown": ("switch",), "--no-cache": ("switch",),
}
INSPECTION_FLAGS = {
    "attention": {"--checkpoint": ("path", "checkpoint"), "--prompt": ("text",), "--drop-unknown": ("switch",),
                  "--out": ("path", "picture")},
    "logit-lens": {"--checkpoint": ("path", "checkpoint"), "--prompt": ("text",), "--drop-unknown": ("switch",),
                   "--top": ("int", 1, 10**6), "--save": ("path", "table"), "--out": ("path", "picture")},
    "loss-curve": {"--metrics": ("path", "metrics"), "--out": ("path", "picture")},
    "compare": {"--out": ("path", "picture")},
    "tokens": {"--checkpoint": ("path", "checkpoint"), "--text": ("text",), "--drop-unknown": ("switch",),
               "--no-color": ("switch",)},
}


def option_strings(parser):
    return {s for action in parser._actions for s in action.option_strings if s not in ("-h", "--help")}


def test_the_lists_cover_every_flag_of_every_script():
    assert option_strings(train.make_parser()) == set(TRAIN_FLAGS)
    assert option_strings(generate_parser()) == set(GENERATE_FLAGS)
    subcommands = make_inspection_parser()._subparsers._group_actions[0].choices
    assert {name: option_strings(sub) for name, sub in subcommands.items()} == \
        {name: set(flags) for name, flags in INSPECTION_FLAGS.items()}


def generate_parser():
    captured = {}
    original = generate.Parser.parse_args

    def capture(self, argv=None, namespace=None):
        captured["parser"] = self
        return original(self, ["--max-new-tokens", "0"])
    generate.Parser.parse_args = capture
    try:
        generate.parse_args([])
    finally:
        generate.Parser.parse_args = original
    return captured["parser"]


def invalid_values(spec, rng):
    """Values the spec does not accept: the edges just outside, NaN, infinities, huge, wrong type, empty, and a
    few seeded random ones below or above the range."""
    kind = spec[0]
    if kind == "int":
        low, high = spec[1], spec[2]
        values = [str(low - 1), str(high + 1), "-1" if low >= 0 else None, "0" if low > 0 else None, "1.5", "nan",
                  "inf", "abc", "", "1e3", str(10**40)]
        values += [str(int(low - 1 - rng.integers(0, 10**6))) for _ in range(2)]
        values += [str(int(high + 1 + rng.integers(0, 10**6))) for _ in range(2)]
    elif kind == "real":
        low, high, low_open, high_open = spec[1:]
        values = [str(low) if low_open else repr(low - 1e-6 * max(1, abs(low))),
                  str(high) if high_open else repr(high + 1e-6 * max(1, abs(high))), "-1", "nan", "-nan", "inf",
                  "-inf", "1e400", "abc", "", "0x10"]
        values += [repr(low - float(rng.uniform(1e-3, 1e6))) for _ in range(2)]
        values += [repr(high + float(rng.uniform(1e-3, 1e6))) for _ in range(2)]
    elif kind == "choice":
        values = ["bogus", "", spec[1][0].upper() + "x", spec[1][0] + " "]
    elif kind == "char":
        values = ["", "??", "ab"]
    elif kind == "text":
        values = [""]
    else:
        return []
    return [v for v in values if v is not None and not accepted(spec, v)]


def accepted(spec, text):
    """Independent of the parsers: would the documented range accept this text?"""
    kind = spec[0]
    try:
        if kind == "int":
            value = int(text)
            return spec[1] <= value <= spec[2]
        if kind == "real":
            value = float(text)
            low, high, low_open, high_open = spec[1:]
            return (math.isfinite(value) and (value > low if low_open else value >= low)
                    and (value < high if high_open else value <= high))
    except ValueError:
        return False
    return False


def one_line(err, flag):
    lines = [line.split("\r")[-1] for line in err.split("\n") if line.strip()]
    return len(lines) == 1 and lines[0].startswith(f"error: argument {flag}") and "Traceback" not in err


def run_main(main, argv, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    return exit_info.value.code, capsys.readouterr().err


def cases():
    rng = np.random.default_rng(2024)
    found = []
    for flag, spec in TRAIN_FLAGS.items():
        found += [("train", [], flag, value) for value in invalid_values(spec, rng)]
    for flag, spec in GENERATE_FLAGS.items():
        found += [("generate", [], flag, value) for value in invalid_values(spec, rng)]
    for command, flags in INSPECTION_FLAGS.items():
        for flag, spec in flags.items():
            found += [("inspection", [command], flag, value) for value in invalid_values(spec, rng)]
    return found


CASES = cases()
MAINS = {"train": train.main, "generate": generate.main, "inspection": inspection_main}


def test_the_fuzz_tries_hundreds_of_bad_values():
    assert len(CASES) > 400 and len({(script, flag) for script, _, flag, _ in CASES}) == 57


@pytest.mark.parametrize("script, prefix, flag, value", CASES,
                         ids=[f"{s}{'-' + p[0] if p else ''}{f}={v!r}" for s, p, f, v in CASES])
def test_an_invalid_value_is_one_line_and_exit_2(script, prefix, flag, value, capsys):
    code, err = run_main(MAINS[script], [*prefix, f"{flag}={value}"], capsys)
    assert code == 2 and one_line(err, flag), err


# ---- paths that are not what they should be ----

@pytest.fixture
def checkpoint(tmp_path):
    tokenizer = CharTokenizer.from_text("to be or not to be\n")
    model = GPT(GPTConfig(vocab_size=tokenizer.vocab_size, block_size=8, n_layer=1, n_head=2, n_embd=8, ffn_hidden=8))
    model(np.zeros((1, 8), dtype=np.int64), np.zeros((1, 8), dtype=np.int64))[1].backward()
    opt = optim.AdamW(model.parameters())
    opt.step()
    return save_checkpoint(tmp_path / "ckpt.npz", model, opt, step=1, best_val_loss=3.0, config=model.config.to_dict(),
                           tokenizer=tokenizer.to_dict(), args={})


def bad_paths(tmp_path, checkpoint):
    (tmp_path / "folder").mkdir()
    (tmp_path / "garbage.npz").write_bytes(b"PK\x03\x04 not really a zip")
    (tmp_path / "empty.txt").write_bytes(b"")
    (tmp_path / "a-file").write_text("x")
    return {"missing": tmp_path / "missing", "folder": tmp_path / "folder", "garbage": tmp_path / "garbage.npz",
            "empty": tmp_path / "empty.txt", "under-a-file": tmp_path / "a-file" / "x" / "y"}


def one_error_line(err):
    lines = [line.split("\r")[-1] for line in err.split("\n") if line.strip()]
    return len(lines) >= 1 and lines[-1].startswith("error: ") and sum(line.startswith("error: ")
                                                                       for line in lines) == 1 \
        and "Traceback" not in err


@pytest.mark.parametrize("kind", ["missing", "folder", "garbage", "empty", "under-a-file"])
def test_bad_paths_are_one_line(tmp_path, checkpoint, capsys, kind):
    path = str(bad_paths(tmp_path, checkpoint)[kind])
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("to be or not to be\n" * 50)
    attempts = [(train.main, ["--resume", path]), (train.main, ["--init-from", path]),
                (generate.main, ["--checkpoint", path]),
                (inspection_main, ["logit-lens", "--checkpoint", path, "--prompt", "to"]),
                (inspection_main, ["loss-curve", "--metrics", path, "--out", str(tmp_path / "l.png")])]
    if kind in ("missing", "folder", "empty"):
        attempts.append((train.main, ["--data", path]))
    if kind == "under-a-file":
        attempts += [(train.main, ["--data", str(corpus), "--out-dir", path, "--block-size", "8"]),
                     (inspection_main, ["logit-lens", "--checkpoint", str(checkpoint), "--prompt", "to",
                                        "--save", path])]
    for main, argv in attempts:
        code, err = run_main(main, argv, capsys)
        assert code == 2 and one_error_line(err), (argv, err)


# ---- damaged checkpoints ----

def contents(path):
    meta, weights, optimizer_state = load_checkpoint(path)
    return meta, weights, optimizer_state


def same(a, b):
    (meta_a, weights_a, opt_a), (meta_b, weights_b, opt_b) = a, b
    arrays_equal = all(np.array_equal(weights_a[k], weights_b[k])
                       for k in weights_a) and weights_a.keys() == weights_b.keys()
    moments = [(s1.get("exp_avg"), s2.get("exp_avg")) for s1, s2 in zip(opt_a["state"], opt_b["state"])]
    return meta_a == meta_b and arrays_equal and all(np.array_equal(x, y) for x, y in moments)


def test_byte_flips_and_truncations_are_refused_or_harmless(checkpoint, tmp_path, capsys):
    original = checkpoint.read_bytes()
    reference = contents(checkpoint)
    rng = np.random.default_rng(7)
    damaged = tmp_path / "damaged.npz"
    outcomes = {"refused": 0, "identical": 0}
    positions = list(rng.integers(0, len(original), 1000)) + [len(original) - 1, 0, 30]
    for position in positions:
        data = bytearray(original)
        data[position] ^= 1 << int(rng.integers(0, 8))
        damaged.write_bytes(bytes(data))
        try:
            loaded = contents(damaged)
        except CheckpointError:
            outcomes["refused"] += 1
            continue
        assert same(loaded, reference), f"a flip at byte {position} loaded different content"
        outcomes["identical"] += 1                     # the byte was one the reader ignores (e.g. a timestamp)
    for length in list(rng.integers(0, len(original), 30)) + [0, 1, len(original) - 1]:
        damaged.write_bytes(original[:length])
        with pytest.raises(CheckpointError):
            contents(damaged)
    assert outcomes["refused"] > 800
    # through the scripts: one line each
    data = bytearray(original)
    data[len(original) // 2] ^= 0xFF
    damaged.write_bytes(bytes(data))
    for main, argv in [(generate.main, ["--checkpoint", str(damaged)]), (train.main, ["--resume", str(damaged)])]:
        code, err = run_main(main, argv, capsys)
        assert code == 2 and one_error_line(err) and "corrupt" in err


def test_a_renamed_entry_is_caught_by_the_checksums(checkpoint, tmp_path):
    """A flip in an entry's name passes the zip format's own CRC (which covers data only)."""
    renamed = tmp_path / "renamed.npz"
    with zipfile.ZipFile(checkpoint) as source, zipfile.ZipFile(renamed, "w") as target:
        for item in source.infolist():
            name = item.filename.replace("exp_avg_sq", "exp_avg_sQ")
            target.writestr(name, source.read(item.filename))
    with pytest.raises(CheckpointError, match="missing or unknown"):
        load_checkpoint(renamed)
