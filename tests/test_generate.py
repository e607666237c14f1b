"""Generation: the KV cache changes nothing but speed; sampling filters keep exactly the right tokens;
generate.py runs end to end and refuses bad input clearly."""
import io

import numpy as np
import pytest

import generate
import tinygrad_proust as tp
from models.gpt import GPT, GPTConfig, KVCache, filter_logits, sample_next
from tinygrad_proust.checkpoint import save_checkpoint
from models.tokenizer import ByteTokenizer, CharTokenizer

SCHEMES = {
    "learned": dict(positions="learned"),
    "sinusoidal_post_norm": dict(positions="sinusoidal", norm_placement="post", tie_weights=False),
    "rope_swiglu_rmsnorm": dict(positions="rope", ffn="swiglu", norm="rmsnorm"),
}


def tiny(scheme, dtype="float64"):
    tp.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=11, block_size=8, n_layer=2, n_head=2, n_embd=16, ffn_hidden=24,
                          **SCHEMES[scheme])).to(dtype=dtype)
    for p in model.parameters():  # larger weights than the init: sharper, more varied predictions
        p.data = p.data + np.random.default_rng(1).normal(0, 0.5, p.shape).astype(p.dtype)
    return model


PROMPT = np.array([[3, 1, 4, 1, 5, 9, 2, 6, 5, 3, 5]])  # longer than the window of 8


@pytest.mark.parametrize("scheme", list(SCHEMES))
def test_cached_logits_equal_a_full_forward_at_every_step(scheme):
    model = tiny(scheme).eval()
    tokens = np.random.default_rng(0).integers(0, 11, (2, 8))
    cache = KVCache(2, 8)
    with tp.no_grad():
        model(tokens[:, :3], kv_cache=cache)                       # prefill three positions
        for t in range(3, 8):
            step_logits = model(tokens[:, t:t + 1], kv_cache=cache)[0].numpy()[:, -1]
            full_logits = model(tokens[:, :t + 1])[0].numpy()[:, -1]
            np.testing.assert_allclose(step_logits, full_logits, rtol=1e-10, atol=1e-12)  # float64
    assert cache.length == 8


@pytest.mark.parametrize("scheme", list(SCHEMES))
def test_cache_gives_the_same_tokens_past_the_context_window(scheme):
    model = tiny(scheme)
    greedy = [model.generate(PROMPT, 25, temperature=0, use_cache=c) for c in (True, False)]
    np.testing.assert_array_equal(greedy[0], greedy[1])
    assert greedy[0].shape == (1, 36)
    sampled = [model.generate(PROMPT, 25, temperature=1.0, top_k=5, rng=np.random.default_rng(7), use_cache=c)
               for c in (True, False)]
    np.testing.assert_array_equal(sampled[0], sampled[1])
    assert not np.array_equal(sampled[0], greedy[0])


def test_cache_matches_in_float32_within_tolerance():
    model = tiny("learned", dtype="float32").eval()
    tokens = np.random.default_rng(0).integers(0, 11, (1, 8))
    cache = KVCache(2, 8)
    with tp.no_grad():
        model(tokens[:, :1], kv_cache=cache)
        for t in range(1, 8):
            step_logits = model(tokens[:, t:t + 1], kv_cache=cache)[0].numpy()[:, -1]
            np.testing.assert_allclose(step_logits, model(tokens[:, :t + 1])[0].numpy()[:, -1], rtol=1e-5, atol=1e-5)


def test_generation_builds_no_graph():
    model = tiny("learned")
    seen = []
    original = model.head
    model.head = lambda x: seen.append(tp.is_grad_enabled()) or original(x)
    model.generate(PROMPT[:, :3], 4)
    assert seen == [False] * 4 and tp.is_grad_enabled()


# ---- the filters, on hand-made distributions ----

PROBS = np.array([[0.5, 0.2, 0.15, 0.1, 0.05]])


def kept(logits):
    return set(np.flatnonzero(np.isfinite(logits[0])).tolist())


@pytest.mark.parametrize("top_k, top_p, expected", [
    (1, None, {0}), (2, None, {0, 1}), (5, None, {0, 1, 2, 3, 4}), (9, None, {0, 1, 2, 3, 4}),
    (None, 0.3, {0}), (None, 0.5, {0}), (None, 0.7, {0, 1}), (None, 0.71, {0, 1, 2}), (None, 1.0, {0, 1, 2, 3, 4}),
    (2, 0.9, {0, 1}), (4, 0.6, {0, 1}),
])
def test_top_k_and_top_p_keep_exactly_the_right_tokens(top_k, top_p, expected):
    assert kept(filter_logits(np.log(PROBS), top_k, top_p)) == expected


def test_top_p_works_on_unsorted_logits():
    logits = np.log(np.array([[0.1, 0.5, 0.05, 0.2, 0.15]]))
    assert kept(filter_logits(logits, None, 0.7)) == {1, 3}


def test_greedy_and_sampling_frequencies():
    logits = np.log(np.tile(PROBS, (20000, 1)))
    assert (sample_next(logits[:3], temperature=0) == 0).all()
    draws = sample_next(logits, temperature=1.0, rng=np.random.default_rng(0))
    np.testing.assert_allclose(np.bincount(draws, minlength=5) / len(draws), PROBS[0], atol=0.01)
    draws = sample_next(logits, temperature=1.0, top_k=2, rng=np.random.default_rng(0))
    np.testing.assert_allclose(np.bincount(draws, minlength=5) / len(draws), [5 / 7, 2 / 7, 0, 0, 0], atol=0.01)


# ---- the script ----

def test_byte_stream_never_writes_half_a_character():
    text = "héllo 🙂 日本"
    out = io.StringIO()
    writes = []
    out.write = lambda s: writes.append(s)
    generate.write_stream(list(text.encode("utf-8")), ByteTokenizer(), out)
    assert "".join(writes) == text and all("\ufffd" not in w for w in writes)
    assert "🙂" in writes  # the 4-byte emoji arrives whole, in one write


@pytest.fixture
def checkpoint_path(tmp_path):
    text = "to be or not to be\n"
    tokenizer = CharTokenizer.from_text(text)
    tp.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=tokenizer.vocab_size, block_size=8, n_layer=1, n_head=2, n_embd=16,
                          ffn_hidden=16))
    return save_checkpoint(tmp_path / "out" / "run" / "best.npz", model, step=0, config=model.config.to_dict(),
                           tokenizer=tokenizer.to_dict())


def test_script_streams_a_continuation(checkpoint_path, capsys):
    generate.main(["--checkpoint", str(checkpoint_path), "--prompt", "to be", "--max-new-tokens", "30", "--seed", "1"])
    out = capsys.readouterr().out
    assert out.startswith("to be") and len(out.rstrip("\n")) >= len("to be") + 20
    assert set(out) <= set("to be or not to be\n")


def test_empty_prompt_starts_from_a_newline(checkpoint_path, capsys):
    generate.main(["--checkpoint", str(checkpoint_path), "--max-new-tokens", "10", "--seed", "0"])
    out = capsys.readouterr().out
    assert len(out.rstrip("\n")) >= 5 and set(out) <= set("to be or not to be\n")


def test_script_finds_the_newest_best_checkpoint(checkpoint_path, capsys):
    generate.main(["--out-dir", str(checkpoint_path.parent.parent), "--max-new-tokens", "5", "--greedy"])
    captured = capsys.readouterr()
    assert f"using {checkpoint_path}" in captured.err


@pytest.mark.parametrize("argv, message", [
    (["--prompt", "xyz"], "characters not in the model's vocabulary: 'x', 'y', 'z'"),
    (["--top-p", "0"], "argument --top-p: expected a finite number in (0, 1]"),
    (["--top-p", "1.5"], "argument --top-p: expected a finite number in (0, 1]"),
    (["--temperature", "-1"], "argument --temperature: expected a finite number in [0, 1000000.0]"),
    (["--top-k", "-2"], "argument --top-k: expected a whole number in [0, 1000000000]"),
])
def test_script_rejects_bad_input(checkpoint_path, capsys, argv, message):
    with pytest.raises(SystemExit) as info:
        generate.main(["--checkpoint", str(checkpoint_path), *argv])
    assert info.value.code == 2 and message in capsys.readouterr().err


@pytest.mark.parametrize("argv, message", [
    (["--greedy", "--temperature", "0.5"], "--temperature: --greedy is temperature 0; give one of them"),
    (["--greedy", "--top-k", "5"], "--top-k does not apply to greedy decoding (--greedy)"),
    (["--temperature", "0", "--top-p", "0.9", "--seed", "3"],
     "--top-p, --seed do not apply to greedy decoding (--temperature 0)"),
    (["--greedy", "--num-samples", "2"], "--num-samples 2: greedy decoding (--greedy) writes the same text every time"),
    (["--out-dir", "elsewhere"], "--out-dir is where a checkpoint is looked for without --checkpoint"),
])
def test_script_refuses_an_option_it_would_ignore(checkpoint_path, capsys, argv, message):
    """Greedy decoding reads no sampling option, and --checkpoint leaves --out-dir nothing to do: each is one line
    naming the option, never a run that quietly leaves it out."""
    with pytest.raises(SystemExit) as info:
        generate.main(["--checkpoint", str(checkpoint_path), "--max-new-tokens", "3", *argv])
    err = capsys.readouterr().err
    assert info.value.code == 2 and message in err and len(err.strip().splitlines()) == 1, err


def test_greedy_takes_the_default_sampling_settings_without_complaint(checkpoint_path, capsys):
    generate.main(["--checkpoint", str(checkpoint_path), "--max-new-tokens", "3", "--temperature", "0"])
    generate.main(["--checkpoint", str(checkpoint_path), "--max-new-tokens", "3", "--greedy"])
    out = capsys.readouterr().out.splitlines()
    assert out[0] == out[1]


def test_script_drops_unknown_characters_when_asked(checkpoint_path, capsys):
    """The prompt shown is the one the model was given: "tox be" without its 'x' writes what "to be" writes, and
    one line on stderr names what was left out."""
    run = ["--checkpoint", str(checkpoint_path), "--max-new-tokens", "12", "--seed", "4"]
    generate.main([*run, "--prompt", "to be"])
    plain = capsys.readouterr().out
    generate.main([*run, "--prompt", "tox bxe", "--drop-unknown"])
    captured = capsys.readouterr()
    assert captured.out == plain and plain.startswith("to be")
    assert captured.err.splitlines()[0] == "note: left out of the prompt, not in the model's vocabulary: 'x'"


@pytest.mark.parametrize("kind", ["byte", "bpe"])
def test_drop_unknown_with_a_tokenizer_that_encodes_every_text_says_it_does_nothing(kind, tmp_path, capsys):
    """A byte or BPE tokenizer has no character to leave out: --drop-unknown changes nothing, and one note on stderr
    says so (it said nothing); the text is the one the same run without the flag writes."""
    from models.tokenizer import BPETokenizer
    tokenizer = ByteTokenizer() if kind == "byte" else BPETokenizer.train("to be or not to be\n" * 4, 260, "gpt4")
    tp.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=tokenizer.vocab_size, block_size=8, n_layer=1, n_head=2, n_embd=16, ffn_hidden=16))
    path = save_checkpoint(tmp_path / "best.npz", model, step=0, config=model.config.to_dict(),
                           tokenizer=tokenizer.to_dict())
    run = ["--checkpoint", str(path), "--prompt", "to bé", "--max-new-tokens", "6", "--seed", "2"]
    generate.main(run)
    plain = capsys.readouterr()
    generate.main([*run, "--drop-unknown"])
    captured = capsys.readouterr()
    assert captured.out == plain.out and plain.out.startswith("to bé")
    assert captured.err.splitlines()[0] == ("note: --drop-unknown does nothing here: this checkpoint's tokenizer "
                                            "works on bytes and encodes every text")
    assert len(captured.err.splitlines()) == 2 and captured.err.splitlines()[1].startswith("[6 tokens in ")


@pytest.mark.parametrize("text, start", [("to be or not to be\n", "\n"), ("to be or not to be", " ")])
def test_an_empty_prompt_starts_from_a_newline_or_the_first_token_and_the_help_says_which(text, start, tmp_path,
                                                                                          capsys):
    """An empty prompt continues a newline; a vocabulary without one ("to be or not to be": ' ', 'b', 'e', 'n',
    'o', 'r', 't') starts from its first token, ' ' here: what --prompt "<start>" writes after its prompt. The
    help said "start from a newline" of both."""
    tokenizer = CharTokenizer.from_text(text)
    tp.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=tokenizer.vocab_size, block_size=8, n_layer=1, n_head=2, n_embd=16,
                          ffn_hidden=16))
    path = save_checkpoint(tmp_path / "best.npz", model, step=0, config=model.config.to_dict(),
                           tokenizer=tokenizer.to_dict())
    run = ["--checkpoint", str(path), "--greedy", "--max-new-tokens", "12"]
    generate.main(run)
    empty = capsys.readouterr().out
    generate.main([*run, "--prompt", start])
    assert empty == capsys.readouterr().out[1:] and len(empty) > 1
    with pytest.raises(SystemExit) as exit_info:
        generate.main(["--help"])
    shown = " ".join(capsys.readouterr().out.split())
    assert exit_info.value.code == 0
    assert ("--prompt PROMPT text to continue (empty: start from a newline, or from the vocabulary's first token "
            "when it has no newline)") in shown


def test_script_without_any_checkpoint_says_how_to_train(tmp_path, capsys):
    with pytest.raises(SystemExit):
        generate.main(["--out-dir", str(tmp_path)])
    assert "python train.py" in capsys.readouterr().err


def test_script_refuses_a_corrupt_checkpoint(tmp_path, capsys):
    (tmp_path / "bad.npz").write_bytes(b"nope")
    with pytest.raises(SystemExit):
        generate.main(["--checkpoint", str(tmp_path / "bad.npz")])
    assert "corrupt or not a checkpoint" in capsys.readouterr().err
