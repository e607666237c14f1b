"""The bridge to Hugging Face Transformers: every exportable preset and family round-trips (ours -> Transformers ->
the same logits and greedy text; Transformers -> ours -> the same logits and greedy tokens), models no class
expresses are one clear line, train.py fine-tunes from a Transformers directory, and checkpoints can be safetensors.
Transformers, safetensors and tokenizers are test extras (installed in CI, so these tests run there)."""
import json
import re
import shlex
from pathlib import Path

import numpy as np
import pytest

import generate
import tinygrad_proust as tp
import train
from export import main as export_main
from models.export import ExportError, export_pretrained, load_pretrained
from models.gpt import GPT, GPTConfig, preset_config
from models.loading import load_model
from models.tokenizer import BPETokenizer, ByteTokenizer, CharTokenizer
from tinygrad_proust.checkpoint import CheckpointError, load_checkpoint, save_checkpoint

ROOT = Path(__file__).resolve().parent.parent
TEXT = "ROMEO. What say you, my lord? Nothing, madam; and yet I say it all.\n" * 8
SMALL = dict(n_layer=2, n_embd=32, n_head=2, ffn_hidden=48, block_size=32)


@pytest.fixture
def hf(transformers):
    return transformers


def tokenizer_for(kind):
    return {"char": CharTokenizer.from_text(TEXT), "byte": ByteTokenizer(),
            "bpe": BPETokenizer.train(TEXT, 300, "gpt4"), "bpe-whole": BPETokenizer.train(TEXT, 300)}[kind]


def exported(tmp_path, config, kind, tied=None):
    tokenizer = tokenizer_for(kind)
    tp.manual_seed(0)
    model = GPT(GPTConfig(**{**config.to_dict(), "vocab_size": tokenizer.vocab_size, "dropout": 0.0})).eval()
    return model, tokenizer, export_pretrained(model, tokenizer, tmp_path / "hf")


def their_logits(torch, hf_model, ids):
    with torch.no_grad():
        return hf_model(torch.tensor(np.asarray(ids)[None])).logits.numpy()[0]


LOGITS_ATOL = 1e-4  # two float32 implementations of the same model; measured, they differ by under 2e-6


def assert_greedy_is_decided(model, tokens, prompt_length):
    """Greedy tokens of two frameworks agree only where the top two logits are further apart than the logits may
    differ: check that every step of this greedy path was decided by more than twice LOGITS_ATOL."""
    logits = model(np.asarray(tokens)[None, :-1])[0].numpy()[0, prompt_length - 1:]
    top_two = np.sort(logits, axis=-1)[:, -2:]
    gap = (top_two[:, 1] - top_two[:, 0]).min()
    assert gap > 2 * LOGITS_ATOL, f"a near tie ({gap:.2g}) on the greedy path: rounding could pick either token"


CASES = {
    "char-small": (preset_config("char-small", **SMALL), "char", "GPT2LMHeadModel"),
    "raven": (preset_config("raven"), "byte", "GPT2LMHeadModel"),
    "baby-gpt": (preset_config("baby-gpt", **SMALL), "bpe", "GPT2LMHeadModel"),       # no biases: zeros
    "gelu-exact-untied-scaled": (GPTConfig(**SMALL, ffn="gelu", gelu_approximate="none", tie_weights=False,
                                           scale_embeddings=True), "char", "GPT2LMHeadModel"),
    "sinusoidal": (GPTConfig(**SMALL, positions="sinusoidal"), "bpe-whole", "GPT2LMHeadModel"),
    "llama": (GPTConfig(**SMALL, norm="rmsnorm", ffn="swiglu", positions="rope", attn_bias=False, ffn_bias=False,
                        tie_weights=False), "bpe", "LlamaForCausalLM"),
    "llama-tied": (GPTConfig(**SMALL, norm="rmsnorm", ffn="swiglu", positions="rope", attn_bias=False,
                             ffn_bias=False), "byte", "LlamaForCausalLM"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_ours_to_transformers_gives_the_same_logits_and_text(case, tmp_path, hf, torch):
    config, kind, expected_class = CASES[case]
    model, tokenizer, directory = exported(tmp_path, config, kind)
    hf_model = hf.AutoModelForCausalLM.from_pretrained(directory).eval()
    hf_tokenizer = hf.AutoTokenizer.from_pretrained(directory)
    assert type(hf_model).__name__ == expected_class
    prompt = "ROMEO. What say"
    ids = tokenizer.encode(prompt)
    assert hf_tokenizer(prompt)["input_ids"] == ids.tolist()
    ids = ids[:model.config.block_size // 2]
    np.testing.assert_allclose(their_logits(torch, hf_model, ids), model(ids[None])[0].numpy()[0], atol=LOGITS_ATOL)
    new = min(12, model.config.block_size - len(ids))
    ours = model.generate(ids[None], new, temperature=0)[0]          # what generate.py --greedy writes
    assert_greedy_is_decided(model, ours, len(ids))
    theirs = hf_model.generate(torch.tensor(ids[None]), max_new_tokens=new, do_sample=False)[0].numpy()
    assert theirs.tolist() == ours.tolist()
    assert hf_tokenizer.decode(theirs) == tokenizer.decode(ours)


@pytest.mark.parametrize("unknown, replacement", [("drop", None), ("replace", "_"), ("error", None)])
def test_a_char_tokenizer_exports_what_it_does_with_unknown_and_decomposed_characters(unknown, replacement, tmp_path,
                                                                                      hf):
    """A char vocabulary's tokenizer.json does what ours does with a character outside it (drops it, puts the
    replacement there, or refuses) and composes "e" + U+0301 into "é" as ours does (NFC). Both were lost: Transformers
    failed on any unknown character ("Missing [UNK] token from the vocabulary"), an --init-from of the directory
    refused what the checkpoint dropped, and a decomposed "é" was refused. Reading the directory back gives ours."""
    tokenizer = CharTokenizer("abcé ]^-\\\n_", unknown=unknown, replacement=replacement, normalize="NFC")
    tp.manual_seed(0)
    model = GPT(GPTConfig(**SMALL, vocab_size=tokenizer.vocab_size, dropout=0.0))
    directory = export_pretrained(model, tokenizer, tmp_path / "hf")
    theirs = hf.AutoTokenizer.from_pretrained(directory)
    text = "ce\u0301 ab]^-\\\n" + ("" if unknown == "error" else "xyz c")
    assert theirs(text)["input_ids"] == tokenizer.encode(text).tolist()
    back = load_pretrained(directory)[1]
    assert (back.chars, back.unknown, back.replacement, back.normalize) == (tokenizer.chars, unknown, replacement,
                                                                             "NFC")
    if unknown == "error":
        with pytest.raises(Exception):
            theirs("xyz")["input_ids"]


def test_the_readmes_snippet_runs_on_the_model_the_readme_trains(tmp_path, hf, torch, capsys):
    """README's Transformers snippet, as a reader runs it, on what `python train.py` makes (char-small, context 64;
    here trained for one step) exported by export.py: it runs, and prints what the generate.py command it names
    writes."""
    section = (ROOT / "README.md").read_text().split("## Take your model to PyTorch / Hugging Face")[1]
    snippet = section.split("```python\n")[1].split("```")[0]
    corpus = tmp_path / "corpus.txt"
    corpus.write_text(TEXT * 4)
    train.main(["--data", str(corpus), "--steps", "1", "--batch-size", "2", "--eval-interval", "1",
                "--eval-batches", "1", "--sample-tokens", "0", "--out-dir", str(tmp_path / "out")])
    checkpoint = tmp_path / "out" / "best.npz"
    export_main([str(checkpoint), str(tmp_path / "hf" / "my-model")])
    model, tokenizer, _ = load_model(checkpoint)
    assert model.config == preset_config("char-small", vocab_size=model.config.vocab_size)   # context 64
    capsys.readouterr()
    exec(snippet.replace('"hf/my-model"', repr(str(tmp_path / "hf" / "my-model"))), {})
    printed = capsys.readouterr().out
    command = shlex.split(re.search(r"`generate\.py ([^`]*)`", snippet).group(1))
    generate.main(command + ["--checkpoint", str(checkpoint)])
    written = capsys.readouterr().out
    tokens = tokenizer.encode(printed.rstrip("\n"))
    assert len(tokens) == 64                                            # the prompt and what fits after it
    assert_greedy_is_decided(model, tokens, len(tokenizer.encode("ROMEO.")))
    assert printed.rstrip("\n") == written.rstrip("\n")


@pytest.mark.parametrize("case", list(CASES))
def test_exported_directories_come_back_identical(case, tmp_path, hf):
    config, kind, _ = CASES[case]
    model, tokenizer, directory = exported(tmp_path, config, kind)
    back, back_tokenizer = load_pretrained(directory)
    ids = tokenizer.encode("ROMEO. What say")[:model.config.block_size]
    if not config.scale_embeddings and config.positions != "sinusoidal":
        np.testing.assert_array_equal(back(ids[None])[0].numpy(), model(ids[None])[0].numpy())
    assert back_tokenizer.encode(TEXT).tolist() == tokenizer.encode(TEXT).tolist()


@pytest.mark.parametrize("family", ["gpt2", "llama"])
def test_a_transformers_model_comes_in_with_the_same_logits_and_greedy_tokens(family, tmp_path, hf, torch):
    torch.manual_seed(0)
    if family == "gpt2":
        config = hf.GPT2Config(vocab_size=256, n_positions=32, n_embd=32, n_layer=2, n_head=4, n_inner=64,
                               activation_function="gelu_new", tie_word_embeddings=True)
        hf_model = hf.GPT2LMHeadModel(config)
    else:
        config = hf.LlamaConfig(vocab_size=256, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                num_attention_heads=4, max_position_embeddings=32, rms_norm_eps=1e-5)
        hf_model = hf.LlamaForCausalLM(config)
    with torch.no_grad():                                  # random biases and gains, so every tensor matters
        for p in hf_model.parameters():
            p.add_(0.02 * torch.randn_like(p))
    hf_model.eval().save_pretrained(tmp_path / "hf")
    ours, tokenizer = load_pretrained(tmp_path / "hf")
    assert tokenizer is None                               # no tokenizer.json was saved
    ids = np.random.default_rng(0).integers(0, 256, 10)
    np.testing.assert_allclose(ours(ids[None])[0].numpy()[0], their_logits(torch, hf_model, ids), atol=LOGITS_ATOL)
    theirs = hf_model.generate(torch.tensor(ids[None]), max_new_tokens=15, do_sample=False)[0].numpy()
    greedy = ours.generate(ids[None], 15, temperature=0)[0]
    assert_greedy_is_decided(ours, greedy, len(ids))
    assert greedy.tolist() == theirs.tolist()


def test_train_fine_tunes_from_a_transformers_directory(tmp_path, hf, capsys):
    model, tokenizer, directory = exported(tmp_path, CASES["char-small"][0], "char")
    corpus = tmp_path / "corpus.txt"
    corpus.write_text(TEXT * 4)
    out = tmp_path / "tuned"
    train.main(["--init-from", str(directory), "--data", str(corpus), "--steps", "3", "--eval-interval", "3",
                "--batch-size", "4", "--eval-batches", "2", "--sample-tokens", "0", "--out-dir", str(out),
                "--format", "safetensors"])
    assert f"model from {directory}" in capsys.readouterr().out
    meta, weights, _ = load_checkpoint(out / "last.safetensors")
    # the model that came back, whose MLP, as a GPT-2's, has no dropout inside
    assert meta["step"] == 3 and meta["config"] == {**model.config.to_dict(), "ffn_dropout": False}
    assert not np.array_equal(weights["wte.weight"], model.wte.weight.numpy())   # it trained
    generate.main(["--out-dir", str(out), "--prompt", "ROMEO.", "--max-new-tokens", "5", "--greedy"])
    assert capsys.readouterr().out.startswith("ROMEO.")
    with pytest.raises(SystemExit):
        train.main(["--init-from", str(directory), "--n-layer", "3", "--data", str(corpus)])
    assert "--n-layer: --init-from" in capsys.readouterr().err


# ---- what cannot cross ----

@pytest.mark.parametrize("preset, reason", [("proust", "norm_placement='post'"),
                                            ("byte-gpt", "positions='learned' (LLaMA uses rotary positions)")])
def test_a_model_no_class_expresses_is_one_line(preset, reason, tmp_path, capsys, safetensors):
    tokenizer = ByteTokenizer()
    model = GPT(preset_config(preset, vocab_size=256))
    path = save_checkpoint(tmp_path / "c.npz", model, step=0, config=model.config.to_dict(),
                           tokenizer=tokenizer.to_dict())
    with pytest.raises(SystemExit) as exit_info:
        export_main([str(path), str(tmp_path / "hf")])
    err = capsys.readouterr().err.strip()
    assert exit_info.value.code == 2 and "no Transformers class expresses this model" in err and reason in err
    assert "\n" not in err and not (tmp_path / "hf").exists()


def test_bad_directories_are_refused_and_nothing_is_half_written(tmp_path, monkeypatch, safetensors):
    model, tokenizer, directory = exported(tmp_path, CASES["raven"][0], "byte")
    with pytest.raises(ExportError, match="already exists and is not empty"):
        export_pretrained(model, tokenizer, directory)
    (tmp_path / "a-file").write_bytes(b"")
    with pytest.raises(ExportError, match="a-file is a file, not a directory: choose a new directory"):
        export_pretrained(model, tokenizer, tmp_path / "a-file")  # an empty one too: it was 'not empty'
    import models.export as export
    monkeypatch.setattr(export, "tokenizer_json", lambda *a: (_ for _ in ()).throw(OSError("disk full")))
    with pytest.raises(OSError):
        export_pretrained(model, tokenizer, tmp_path / "second")
    monkeypatch.undo()
    assert not (tmp_path / "second").exists() and [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
    spec = json.loads((directory / "config.json").read_text())
    (directory / "config.json").write_text(json.dumps({**spec, "model_type": "bert"}))
    with pytest.raises(ExportError, match="a 'bert' model; GPT-2 and LLaMA models come in"):
        load_pretrained(directory)
    (directory / "config.json").write_text(json.dumps({**spec, "n_embd": 64}))
    with pytest.raises(ExportError, match="holds a token table of shape"):
        load_pretrained(directory)
    (directory / "config.json").write_text(json.dumps({**spec, "n_layer": 2}))
    with pytest.raises(ExportError, match="has no tensor 'transformer.h.1.ln_1.weight'"):
        load_pretrained(directory)
    (directory / "config.json").write_text(json.dumps(spec))
    (directory / "tokenizer.json").write_text('{"model": {"type": "Unigram", "vocab": []}}')
    with pytest.raises(ExportError, match="a Unigram tokenizer"):
        load_pretrained(directory)


def test_safetensors_checkpoints_resume_and_refuse_damage(tmp_path, capsys, safetensors):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text(TEXT * 4)
    common = ["--data", str(corpus), "--eval-interval", "2", "--batch-size", "4", "--eval-batches", "2",
              "--sample-tokens", "0", "--n-layer", "1", "--n-embd", "16", "--block-size", "16", "--format",
              "safetensors"]
    train.main([*common, "--steps", "4", "--out-dir", str(tmp_path / "straight")])
    train.main([*common, "--steps", "2", "--out-dir", str(tmp_path / "halves")])
    train.main(["--resume", str(tmp_path / "halves" / "last.safetensors"), "--steps", "4"])
    straight, halves = (load_checkpoint(tmp_path / run / "last.safetensors")[1] for run in ("straight", "halves"))
    assert all(np.array_equal(straight[k], halves[k]) for k in straight)
    data = bytearray((tmp_path / "straight" / "last.safetensors").read_bytes())
    data[-100] ^= 0x10                                       # inside a tensor: safetensors itself cannot tell
    (tmp_path / "bad.safetensors").write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="checksum of .* does not match"):
        load_checkpoint(tmp_path / "bad.safetensors")


def test_a_transformers_directory_is_checked_as_thoroughly_as_a_checkpoint(tmp_path, safetensors):
    """Each was a traceback or a crash later: a config.json that is not an object, a vocabulary too large to
    allocate (refused before anything is allocated), NaN weights, a tokenizer with more tokens than the model."""
    from safetensors.numpy import load_file, save_file
    model, tokenizer, directory = exported(tmp_path, CASES["raven"][0], "byte")
    spec = json.loads((directory / "config.json").read_text())
    for content, message in ((json.dumps([spec]), "holds a list, not a JSON object"),
                             (json.dumps({**spec, "vocab_size": 10**11}), "says vocab_size 100000000000")):
        (directory / "config.json").write_text(content)
        with pytest.raises(ExportError, match=message):
            load_pretrained(directory)
    (directory / "config.json").write_text(json.dumps(spec))
    weights = load_file(str(directory / "model.safetensors"))
    bad = {**weights, "transformer.ln_f.weight": np.full_like(weights["transformer.ln_f.weight"], np.nan)}
    save_file(bad, str(directory / "model.safetensors"), metadata={"format": "pt"})
    with pytest.raises(ExportError, match="NaN or Inf"):
        load_pretrained(directory)
    save_file(weights, str(directory / "model.safetensors"), metadata={"format": "pt"})
    (directory / "config.json").write_text(json.dumps({**spec, "vocab_size": 200}))
    small = {**weights, "transformer.wte.weight": weights["transformer.wte.weight"][:200]}
    save_file(small, str(directory / "model.safetensors"), metadata={"format": "pt"})
    with pytest.raises(ExportError, match="tokenizer.json has 256 tokens, the model only 200"):
        load_pretrained(directory)


@pytest.mark.parametrize("bits", [8, 4])
def test_exporting_a_quantised_checkpoint_says_it_holds_the_dequantised_weights(bits, tmp_path, capsys, safetensors):
    """Transformers has no int8/int4 layout of ours: the export holds float32 weights, q · s, with the rounding
    of the quantisation in them. One line on stderr says so; a float checkpoint's export says nothing of it."""
    from quantize import main as quantize_main
    model = GPT(GPTConfig(vocab_size=256, block_size=8, n_layer=1, n_head=2, n_embd=32, ffn_hidden=64))
    path = save_checkpoint(tmp_path / "f.npz", model, step=0, config=model.config.to_dict(),
                           tokenizer=ByteTokenizer().to_dict())
    export_main([str(path), str(tmp_path / "float")])
    assert capsys.readouterr().err == ""
    quantize_main([str(path), str(tmp_path / "q.npz"), "--bits", str(bits)])
    capsys.readouterr()
    export_main([str(tmp_path / "q.npz"), str(tmp_path / "hf")])
    captured = capsys.readouterr()
    assert captured.out.startswith(f"wrote {tmp_path / 'hf'} (gpt2: ")
    assert captured.err == (f"note: {tmp_path / 'q.npz'} holds int{bits} weights: the export holds them dequantised, "
                            "as float32 (their rounding stays in)\n")


def test_exporting_a_transformers_directory_without_a_tokenizer_writes_the_model_alone(tmp_path, capsys, safetensors):
    """export.py encoded an empty prompt with the tokenizer it loaded, and a directory without tokenizer.json has
    none: a traceback. It has no prompt to encode; the export holds the model, as the directory did."""
    _, _, directory = exported(tmp_path, CASES["raven"][0], "byte")
    (directory / "tokenizer.json").unlink()
    export_main([str(directory), str(tmp_path / "again")])
    assert capsys.readouterr().out.startswith(f"wrote {tmp_path / 'again'} (gpt2: ")
    assert sorted(p.name for p in (tmp_path / "again").iterdir()) == ["config.json", "generation_config.json",
                                                                    "model.safetensors"]


def test_a_transformers_directory_without_a_tokenizer_given_a_prompt_is_one_line(tmp_path, capsys, safetensors):
    """generate.py and inspection.py encode a prompt: a directory without tokenizer.json has nothing to encode it
    with, which was a traceback; it is one line, as train.py --init-from says it."""
    from inspection import main as inspection_main
    _, _, directory = exported(tmp_path, CASES["raven"][0], "byte")
    (directory / "tokenizer.json").unlink()
    for main, argv, what in [(generate.main, ["--checkpoint", str(directory), "--max-new-tokens", "2"], "prompt"),
                             (inspection_main, ["tokens", "--checkpoint", str(directory), "--text", "to be"], "text")]:
        with pytest.raises(SystemExit) as exit_info:
            main(argv)
        err = capsys.readouterr().err
        assert exit_info.value.code == 2
        assert err == f"error: {directory}: the directory has no tokenizer.json to encode the {what} with\n"
