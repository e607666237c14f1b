"""Experiments on one's own text: every architecture choice as a train.py flag, runs compared in bits per byte,
how the tokenizer cuts a text, the logit lens as a picture, and graph pictures that number and show values."""
import json
import math
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import tinygrad_proust as tp
import train
from inspection import main as inspection_main
from models import inspection
from models.loading import load_model
from models.tokenizer import ByteTokenizer, CharTokenizer
from tinygrad_proust import graph, nn
from tinygrad_proust.checkpoint import load_checkpoint
from test_reliability import run_train as reliability_run_train

ROOT = Path(__file__).resolve().parent.parent

TINY = ["--n-layer", "1", "--n-embd", "16", "--n-head", "2", "--ffn-hidden", "32", "--block-size", "16",
        "--batch-size", "4", "--eval-batches", "2", "--sample-tokens", "0", "--warmup", "2", "--lr", "1e-2"]
TEXT = "Longtemps, je me suis couché de bonne heure. Qué canción. À peine ma bougie éteinte.\n" * 30


@pytest.fixture
def corpus(tmp_path):
    path = tmp_path / "corpus.txt"
    path.write_text(TEXT)
    return path


def run_train(argv, capsys):
    """train.main(argv) -> (exit status, stderr)."""
    code, _, err = reliability_run_train(argv, capsys)
    return code, err


# ---- architecture flags ----

def test_architecture_flags_reach_the_model(corpus, tmp_path, capsys):
    flags = ["--norm", "rmsnorm", "--norm-placement", "post", "--positions", "rope", "--rope-base", "500",
             "--ffn", "gelu", "--gelu-approximate", "none", "--no-tie-weights", "--head-bias", "--no-attn-bias",
             "--no-ffn-bias", "--no-final-norm", "--scale-embeddings", "--scaled-residual-init", "--norm-eps", "1e-6",
             "--dropout", "0.1", "--no-ffn-dropout"]
    code, err = run_train(["--data", corpus, "--steps", 2, "--out-dir", tmp_path / "r", *TINY, *flags], capsys)
    assert code == 0, err
    model, _, record = load_model(tmp_path / "r" / "last.npz")
    expected = dict(norm="rmsnorm", norm_placement="post", positions="rope", rope_base=500.0, ffn="gelu",
                    gelu_approximate="none", tie_weights=False, head_bias=True, attn_bias=False, ffn_bias=False,
                    final_norm=False, scale_embeddings=True, scaled_residual_init=True, norm_eps=1e-6,
                    ffn_dropout=False)
    assert {k: record.config[k] for k in expected} == expected
    assert {k: record.args[k] for k in expected} == expected           # the run's settings name them too
    block = model.blocks[0]
    assert isinstance(block.ln_1, nn.RMSNorm) and model.lm_head is not None and model.lm_head.bias is not None
    assert block.attn.c_attn.bias is None and block.mlp.c_fc.bias is None
    assert isinstance(block.mlp.hidden_dropout, nn.Identity) and block.mlp.resid_dropout.p == 0.1


def test_a_new_run_records_its_presets_architecture(corpus, tmp_path, capsys):
    code, err = run_train(["--data", corpus, "--steps", 2, "--out-dir", tmp_path / "r", "--preset", "proust",
                           *TINY], capsys)
    assert code == 0, err
    args = load_checkpoint(tmp_path / "r" / "last.npz").meta["args"]
    assert (args["norm_placement"], args["positions"], args["ffn"], args["tie_weights"]) == \
        ("post", "sinusoidal", "relu", False)                          # the proust preset's, as gpt.py states it


@pytest.mark.parametrize("argv, message", [
    (["--gelu-approximate", "none"], "--gelu-approximate acts only with --ffn gelu; this run has --ffn relu"),
    (["--ffn", "swiglu", "--gelu-approximate", "tanh"], "--gelu-approximate acts only with --ffn gelu"),
    (["--rope-base", "500"], "--rope-base acts only with --positions rope; this run has --positions learned"),
    (["--head-bias"], "--head-bias acts only with --no-tie-weights; this run has --tie-weights"),
    (["--norm", "rmsnorm", "--no-norm-bias"], "--norm-bias acts only with --norm layernorm"),
])
def test_an_architecture_flag_that_would_do_nothing_is_refused(corpus, tmp_path, capsys, argv, message):
    code, err = run_train(["--data", corpus, "--steps", 2, "--out-dir", tmp_path / "r", *TINY, *argv], capsys)
    assert code == 2 and message in err and not (tmp_path / "r").exists(), err


def test_ffn_dropout_acts_with_dropout_and_may_change_as_dropout_may(corpus, tmp_path, capsys):
    """--ffn-dropout says where dropout acts, so it is refused where there is none (the preset's 0, or --dropout 0),
    and, as --dropout, it may change on a resume or from --init-from: no weight depends on it."""
    for argv, message in ((["--no-ffn-dropout"], "--no-ffn-dropout acts only with dropout; this run has --dropout 0"),
                          (["--preset", "baby-gpt", "--dropout", "0", "--ffn-dropout"], "--ffn-dropout acts only")):
        code, err = run_train(["--data", corpus, "--steps", 2, "--out-dir", tmp_path / "x", *TINY, *argv], capsys)
        assert code == 2 and message in err and not (tmp_path / "x").exists(), err
    out = tmp_path / "r"
    code, err = run_train(["--data", corpus, "--steps", 2, "--out-dir", out, *TINY, "--dropout", "0.1"], capsys)
    assert code == 0, err
    assert load_model(out / "last.npz")[2].config["ffn_dropout"] is True              # char-small's choice
    code, err = run_train(["--resume", out / "last.npz", "--steps", 4, "--no-ffn-dropout"], capsys)
    assert code == 0, err
    model, _, record = load_model(out / "last.npz")
    assert record.config["ffn_dropout"] is False and isinstance(model.blocks[0].mlp.hidden_dropout, nn.Identity)
    code, err = run_train(["--resume", out / "last.npz", "--steps", 6, "--dropout", "0", "--ffn-dropout"], capsys)
    assert code == 2 and "--ffn-dropout acts only with dropout; this run has --dropout 0" in err, err
    code, out_text, err = reliability_run_train(["--data", corpus, "--steps", 2, "--out-dir", tmp_path / "n", *TINY,
                                                 "--preset", "raven", "--dropout", "0.1"], capsys)
    settings = next(line for line in out_text.splitlines() if line.startswith("training:"))
    assert code == 0 and '"ffn_dropout": true' in settings, err                   # in force: named, the preset's
    code, err = run_train(["--init-from", out / "last.npz", "--data", corpus, "--steps", 2, "--out-dir",
                           tmp_path / "s", "--ffn-dropout"], capsys)
    assert code == 0, err
    assert load_model(tmp_path / "s" / "last.npz")[2].config["ffn_dropout"] is True
    code, out_text, err = reliability_run_train(["--resume", out / "last.npz", "--steps", 6, "--dropout", "0"], capsys)
    settings = next(line for line in out_text.splitlines() if line.startswith("training:"))
    assert code == 0 and '"dropout": 0.0' in settings and '"ffn_dropout"' not in settings, err  # idle: not shown


def test_a_resume_keeps_its_architecture(corpus, tmp_path, capsys):
    out = tmp_path / "r"
    code, err = run_train(["--data", corpus, "--steps", 2, "--out-dir", out, *TINY, "--norm-placement", "post"],
                          capsys)
    assert code == 0, err
    for argv, message in ((["--norm-placement", "pre"], "--norm-placement pre: the checkpoint's model was trained "
                                                         "with --norm-placement post"),
                          (["--no-tie-weights"], "--no-tie-weights: the checkpoint's model was trained with "
                                                 "--tie-weights"),
                          (["--norm", "rmsnorm"], "--norm rmsnorm: the checkpoint's model was trained with --norm "
                                                  "layernorm")):
        code, err = run_train(["--resume", out / "last.npz", "--steps", 4, *argv], capsys)
        assert code == 2 and message in err and "cannot change" in err, err
    code, err = run_train(["--resume", out / "last.npz", "--steps", 4, "--norm-placement", "post"], capsys)
    assert code == 0, err                                              # the same choice again is no change


def test_a_resume_of_a_run_that_saved_no_architecture_checks_its_model(corpus, tmp_path, capsys):
    """A checkpoint written before these flags holds the model's config but no such settings: a flag given on
    resume is checked against the model itself, never silently ignored."""
    from tinygrad_proust.checkpoint import save_checkpoint
    out = tmp_path / "r"
    code, err = run_train(["--data", corpus, "--steps", 2, "--out-dir", out, *TINY], capsys)
    assert code == 0, err
    checkpoint = load_checkpoint(out / "last.npz")
    meta = dict(checkpoint.meta)
    meta["args"] = {k: v for k, v in meta["args"].items() if k not in train.ARCHITECTURE}
    model, _, _ = load_model(out / "last.npz")
    save_checkpoint(out / "last.npz", model, None, **{k: v for k, v in meta.items() if k in train.RunRecord.TYPES})
    code, err = run_train(["--resume", out / "last.npz", "--steps", 4, "--ffn", "gelu"], capsys)
    assert code == 2 and "--ffn gelu: the checkpoint's model was trained with --ffn relu" in err, err


def test_init_from_refuses_architecture_flags(corpus, tmp_path, capsys):
    code, err = run_train(["--data", corpus, "--steps", 2, "--out-dir", tmp_path / "r", *TINY], capsys)
    assert code == 0, err
    code, err = run_train(["--init-from", tmp_path / "r" / "last.npz", "--data", corpus, "--steps", 2,
                           "--out-dir", tmp_path / "s", "--positions", "rope"], capsys)
    assert code == 2 and "--positions: --init-from" in err and "brings its own model" in err, err


# ---- compare: runs in bits per byte ----

def test_compare_draws_each_runs_validation_bits_per_byte(corpus, tmp_path, capsys, monkeypatch, matplotlib):
    runs = {"chars": ["--tokenizer", "char"], "bytes": ["--tokenizer", "byte"]}
    for name, flags in runs.items():
        code, err = run_train(["--data", corpus, "--steps", 6, "--eval-interval", 2, "--out-dir", tmp_path / name,
                               *TINY, *flags], capsys)
        assert code == 0, err
    # by hand: the validation text is the corpus's last 10% of bytes (all ASCII there), encoded alone
    raw = corpus.read_bytes()
    val = raw[len(raw) - int(len(raw) * 0.1):].decode()
    tokens_per_byte = {"chars": len(val) / len(val.encode()), "bytes": 1.0}
    assert tokens_per_byte["chars"] < 1                                  # é, ¿, ó, À: two bytes, one character
    expected = {}
    for name in runs:
        rows = [json.loads(line) for line in (tmp_path / name / "metrics.jsonl").read_text().splitlines()]
        assert [row["step"] for row in rows] == [2, 4, 6]
        expected[name] = [row["val_loss"] * tokens_per_byte[name] / math.log(2) for row in rows]
    drawn = {}

    def keep_lines(fig, path, dpi=110):
        for line in fig.axes[0].lines:
            drawn[line.get_label()] = (list(line.get_xdata()), list(line.get_ydata()), line.get_marker())
        fig.savefig(path)
        return path

    monkeypatch.setattr(inspection, "save_figure", keep_lines)
    inspection_main(["compare", str(tmp_path / "chars"), str(tmp_path / "bytes"), "--out", str(tmp_path / "c.png")])
    assert sorted(drawn) == ["bytes", "chars"]
    for name in runs:
        steps, bpb, marker = drawn[name]
        assert steps == [2, 4, 6] and marker == "o"                      # few points: each marked
        np.testing.assert_allclose(bpb, expected[name], rtol=1e-9)
    assert (tmp_path / "c.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    for name in runs:                                                    # two runs both called "run": labelled apart
        (tmp_path / name / "run").mkdir()
        (tmp_path / name / "metrics.jsonl").rename(tmp_path / name / "run" / "metrics.jsonl")
    drawn.clear()
    inspection_main(["compare", str(tmp_path / "chars" / "run"), str(tmp_path / "bytes" / "run"), "--out",
                     str(tmp_path / "c.png")])
    assert sorted(drawn) == ["bytes/run", "chars/run"]


def test_compare_names_a_folder_without_metrics(tmp_path, capsys, matplotlib):
    (tmp_path / "empty").mkdir()
    with pytest.raises(SystemExit) as exit_info:
        inspection_main(["compare", str(tmp_path / "empty"), "--out", str(tmp_path / "c.png")])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and "no metrics.jsonl there" in err and len(err.strip().splitlines()) == 1


# ---- tokens: how a text is cut ----

def test_labels_show_spaces_and_the_bytes_of_split_characters():
    # é is c3 a9 in UTF-8, ¿ is c2 bf, 日 is e6 97 a5: byte tokens hold one byte each
    assert inspection.token_labels(ByteTokenizer(), ByteTokenizer().encode("é ¿a\n")) == \
        ["é[1/2]", "é[2/2]", "␣", "¿[1/2]", "¿[2/2]", "a", "⏎"]
    assert inspection.token_labels(ByteTokenizer(), ByteTokenizer().encode("日")) == ["日[1/3]", "日[2/3]", "日[3/3]"]
    assert inspection.token_labels(ByteTokenizer(), [0xc2]) == ["<c2>"]          # a byte with nothing to complete it
    chars = CharTokenizer.from_text("a b\n")
    assert inspection.token_labels(chars, chars.encode("a b\n")) == ["a", "␣", "b", "⏎"]


def test_tokens_command_shows_the_tokenizers_own_cut(corpus, tmp_path, capsys, monkeypatch):
    code, err = run_train(["--data", corpus, "--steps", 2, "--out-dir", tmp_path / "r", *TINY, "--tokenizer", "bpe",
                           "--vocab-size", "300"], capsys)
    assert code == 0, err
    text = "¿Qué canción, je me?"
    _, tokenizer, _ = load_model(tmp_path / "r" / "last.npz")
    ids = [int(i) for i in tokenizer.encode(text)]
    inspection_main(["tokens", "--checkpoint", str(tmp_path / "r" / "last.npz"), "--text", text, "--no-color"])
    spans, count = capsys.readouterr().out.strip().splitlines()
    assert count == f"{len(ids)} tokens: " + " ".join(map(str, ids))
    labels = spans[1:-1].split("][")
    assert len(labels) == len(ids) and labels[0] == "¿[1/2]" and labels[1] == "¿[2/2]"   # ¿ is not in the corpus
    # each whole token's label is its text, spaces as ␣; a character split in two reads as itself, byte by byte
    for label, i in zip(labels, ids):
        if "[" not in label:
            assert label.replace("␣", " ") == tokenizer.decode_bytes([i]).decode()
    assert re.sub(r"(.)\[1/2\]\1\[2/2\]", r"\1", "".join(labels)) == text.replace(" ", "␣")
    monkeypatch.setattr("inspection.colour_terminal", lambda: True)
    inspection_main(["tokens", "--checkpoint", str(tmp_path / "r" / "last.npz"), "--text", text])
    coloured = capsys.readouterr().out.splitlines()[0]
    assert coloured.count("\x1b[0m") == len(ids) and "[¿" not in coloured


def test_logit_lens_picture_is_one_row_per_stage(corpus, tmp_path, capsys, monkeypatch, matplotlib):
    code, err = run_train(["--data", corpus, "--steps", 2, "--out-dir", tmp_path / "r", *TINY], capsys)
    assert code == 0, err
    grids = []

    def keep_grid(fig, path, dpi=110):
        grids.append((fig.axes[0].images[0].get_array().copy(), [t.get_text() for t in fig.axes[0].texts]))
        fig.savefig(path)
        return path

    monkeypatch.setattr(inspection, "save_figure", keep_grid)
    inspection_main(["logit-lens", "--checkpoint", str(tmp_path / "r" / "best.npz"), "--prompt", "je me",
                     "--out", str(tmp_path / "lens.png")])
    assert "wrote" in capsys.readouterr().out and (tmp_path / "lens.png").read_bytes()[:4] == b"\x89PNG"
    probs, guesses = grids[0]
    assert probs.shape == (2, 5)                                     # embeddings and one block, x 5 characters
    model, tokenizer, _ = load_model(tmp_path / "r" / "best.npz")
    with tp.no_grad():
        logits = model(tokenizer.encode("je me")[None])[0].numpy()[0]
    p = np.exp(logits - logits.max(-1, keepdims=True))
    p /= p.sum(-1, keepdims=True)
    np.testing.assert_allclose(probs[1], p.max(-1), rtol=1e-5)        # the top row: the model's own predictions
    assert guesses[5:] == [inspection.visible(tokenizer.token_text(j)) for j in p.argmax(-1)]


# ---- graph pictures: values and the backward order ----

def test_graph_labels_each_op_with_its_step_in_the_backward_walk():
    a = tp.tensor([[1.0, 2.0]], requires_grad=True)
    b = tp.tensor([[0.5], [-1.0]], requires_grad=True)
    h = a @ b
    t = h.tanh()
    m = t * h
    loss = m.sum()
    arrived = []  # a tensor's hook runs when its gradient is complete, just before its op's backward
    for tensor, op in ((h, "Matmul"), (t, "Tanh"), (m, "Mul"), (loss, "Sum")):
        tensor.register_hook(lambda g, op=op: arrived.append(op))
    loss.backward(retain_graph=True)
    dot = graph.graph_dot(loss, order=True)
    steps = {line.split("backward step ")[1].split(":")[1].split("\\n")[0].strip():
             int(line.split("backward step ")[1].split(":")[0]) for line in dot.splitlines() if "backward step" in line}
    assert sorted(steps, key=steps.get) == arrived == ["Sum", "Mul", "Tanh", "Matmul"]


def test_graph_values_show_data_and_gradient_per_node():
    x = tp.tensor(2.0, requires_grad=True)
    w = tp.tensor([3.0, -1.0], requires_grad=True)
    x.name, w.name = "x", "w"
    y = (x * w + x).sum()                  # dy/dx = sum(w) + 2 = 4, dy/dw = [x, x] = [2, 2]
    y.backward(retain_graph=True)
    dot = graph.graph_dot(y, values=True)
    assert 'label="x\\n() float32\\ndata 2\\ngrad 4"' in dot
    assert 'label="w\\n(2,) float32\\ndata [3 -1]\\ngrad [2 2]"' in dot
    assert 'label="Sum\\n() float32\\ndata 8"' in dot                # (6 + 2) + (-2 + 2); no gradient kept on ops
    big = tp.tensor(np.full((3, 4), 2.0), requires_grad=True)
    assert "data ‖·‖=6.93" in graph.graph_dot(big.sum(), values=True)     # 12 numbers: their norm, √48


def test_pictures_in_other_formats_and_flags_that_would_be_ignored(corpus, tmp_path, capsys, matplotlib):
    """A .jpg is written (an SVG/PDF/PNG-only stamp used to make it a traceback); a suffix matplotlib cannot
    write, and --save or --top beside logit-lens --out (the picture ignored them), are one line each."""
    code, err = run_train(["--data", corpus, "--steps", 2, "--out-dir", tmp_path / "r", *TINY], capsys)
    assert code == 0, err
    checkpoint = str(tmp_path / "r" / "best.npz")
    inspection_main(["attention", "--checkpoint", checkpoint, "--prompt", "je me", "--out", str(tmp_path / "a.jpg")])
    assert (tmp_path / "a.jpg").read_bytes()[:2] == b"\xff\xd8"  # a JPEG
    capsys.readouterr()
    for argv, message in [(["attention", "--out", str(tmp_path / "a.xyz")], "matplotlib cannot write .xyz"),
                          (["logit-lens", "--out", str(tmp_path / "l.png"), "--save", str(tmp_path / "l.txt")],
                           "--save and --top shape the text table"),
                          (["logit-lens", "--out", str(tmp_path / "l.png"), "--top", "5"], "--top shape"),
                          (["logit-lens", "--out", str(tmp_path / "l.png"), "--top", "3"], "--top shape")]:  # default
        with pytest.raises(SystemExit) as exit_info:
            inspection_main([*argv[:1], "--checkpoint", checkpoint, "--prompt", "je me", *argv[1:]])
        err = capsys.readouterr().err.strip()
        assert exit_info.value.code == 2 and err.startswith("error: ") and "\n" not in err and message in err, err
    assert not (tmp_path / "l.png").exists()
    for argv in (["attention", "--checkpoint", str(tmp_path / "none.npz"), "--prompt", "je"],   # said before the work
                 ["loss-curve", "--metrics", str(tmp_path / "none.jsonl")]):                  # (no such input read)
        with pytest.raises(SystemExit):
            inspection_main([*argv, "--out", str(tmp_path / "a.xyz")])
        assert "matplotlib cannot write .xyz" in capsys.readouterr().err


def test_tokens_into_a_full_output_is_one_line(corpus, tmp_path, capsys):
    if not Path("/dev/full").exists():
        pytest.skip("this system has no /dev/full")  # Linux has it: CI runs this
    code, err = run_train(["--data", corpus, "--steps", 2, "--out-dir", tmp_path / "r", *TINY], capsys)
    assert code == 0, err
    with open("/dev/full", "w") as full:
        done = subprocess.run([sys.executable, str(ROOT / "inspection.py"), "tokens", "--checkpoint",
                               str(tmp_path / "r" / "best.npz"), "--text", "je me"], stdout=full,
                              stderr=subprocess.PIPE, text=True, cwd=ROOT)
    assert done.returncode == 1 and done.stderr.strip() == "error: could not write the output: No space left on device"
