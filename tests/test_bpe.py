"""The BPE tokenizer against a slow, obviously correct implementation of GPT-2's merge rule (as minbpe's
BasicTokenizer applies it), on varied texts with ties, both with and without pre-splitting; exact round trips of
random Unicode; the checkpoint dict; bad input."""
import numpy as np
import pytest

from models.corpus import DataError
from models.tokenizer import SPLIT_PATTERNS, BPETokenizer, reference_merges, tokenizer_from_dict


def split(text, pattern):
    import regex
    return [c.encode("utf-8") for c in regex.findall(SPLIT_PATTERNS[pattern], text)]


def texts():
    rng = np.random.default_rng(0)
    yield "aaabdaaabac"                                        # Wikipedia's example
    yield "aaaa aaaa aaa"                                     # overlapping runs of one pair
    yield "abababab cdcdcd abcd"                              # ties between pairs of equal count
    yield "to be or not to be, that is the question: whether tis nobler in the mind to suffer " * 3
    yield "Привет, мир! 日本語のテキスト 🙂🙂 café naïve 12345 1,234.5" * 2
    for _ in range(4):                                        # small alphabets: many ties, many runs
        yield "".join(rng.choice(list("ab c"), size=300))
    yield bytes(rng.integers(0, 4, 400).astype(np.uint8)).decode("latin-1")


@pytest.mark.parametrize("text", list(texts()), ids=lambda t: repr(t[:20]))
def test_merges_equal_the_slow_reference_without_a_pattern(text):
    data = text.encode("utf-8")
    expected, expected_ids = reference_merges([data], 60)
    tok = BPETokenizer.train(data, 256 + 60)
    assert tok.merges == expected
    assert tok.encode(text).tolist() == expected_ids        # encoding the training text replays training
    assert tok.decode(tok.encode(text)) == text


@pytest.mark.parametrize("pattern", ["gpt2", "gpt4"])
@pytest.mark.parametrize("text", list(texts())[3:6], ids=lambda t: repr(t[:20]))
def test_merges_equal_the_slow_reference_with_a_pattern(text, pattern):
    chunks = split(text, pattern)
    expected, expected_ids = reference_merges(chunks, 40)
    tok = BPETokenizer.train(text, 256 + 40, pattern=pattern)
    assert tok.merges == expected
    assert tok.encode(text).tolist() == expected_ids


def test_merges_never_cross_a_chunk_edge():
    tok = BPETokenizer.train("ab ab ab ab", 260, pattern="gpt2")
    assert all(b" " not in tok.vocab[new][1:] for _, new in tok.merges)    # " ab" yes, "b a" never


def test_training_stops_when_no_pair_repeats():
    tok = BPETokenizer.train("abcabc", 300)
    assert [tok.vocab[new] for _, new in tok.merges] == [b"ab", b"abc"]   # then every pair occurs once


@pytest.mark.parametrize("pattern", [None, "gpt4"])
def test_any_text_round_trips(pattern):
    rng = np.random.default_rng(1)
    tok = BPETokenizer.train("the quick brown fox jumps over the lazy dog. " * 20 + "ÿþ 日本 🙂", 320, pattern)
    for _ in range(30):
        code_points = rng.integers(1, 0x10FFFF, rng.integers(0, 40))
        text = "".join(chr(c) for c in code_points if not 0xD800 <= c <= 0xDFFF)
        text += "the lazy dog " * int(rng.integers(0, 3))
        assert tok.decode(tok.encode(text)) == text


def test_streaming_never_prints_half_a_character():
    tok = BPETokenizer.train("日本語 日本語 🙂🙂", 270)
    ids = tok.encode("日本語🙂 and more")
    decoder = tok.stream_decoder()
    pieces = [decoder.push(i) for i in ids] + [decoder.finish()]
    assert "".join(pieces) == "日本語🙂 and more" and "\ufffd" not in "".join(pieces)


def test_the_checkpoint_dict_round_trips_and_damage_is_clear():
    tok = BPETokenizer.train("hello hello world world", 262, pattern="gpt2")
    again = tokenizer_from_dict(tok.to_dict())
    assert again.merges == tok.merges and again.pattern == "gpt2" and again.encode("hello").tolist() == \
        tok.encode("hello").tolist()
    damaged = tok.to_dict()
    damaged["merges"][1] = [9999, 3]
    with pytest.raises(ValueError, match="merge 1 .* is not a merge of earlier tokens"):
        tokenizer_from_dict(damaged)
    with pytest.raises(ValueError, match="at least 257"):
        BPETokenizer.train("abc", 256)
    with pytest.raises(DataError, match="unknown tokenizer kind"):
        tokenizer_from_dict({"kind": "wordpiece"})


def test_token_text_labels_whole_and_partial_characters():
    tok = BPETokenizer.train("é é é é", 258)
    labels = {tok.token_text(i) for i in tok.encode("é é")}
    assert "é" in labels or " é" in labels
    assert BPETokenizer([], None).token_text(0xC3) == "c3"   # the first byte of a two-byte character


# ---- through the scripts ----

import json  # noqa: E402

import generate  # noqa: E402
import train  # noqa: E402
from inspection import main as inspection_main  # noqa: E402
from models.corpus import split_point  # noqa: E402
from models.gpt import GPT  # noqa: E402
from tinygrad_proust.checkpoint import load_checkpoint, save_checkpoint  # noqa: E402

TINY_RUN = ["--n-layer", "1", "--n-embd", "16", "--n-head", "2", "--ffn-hidden", "32", "--block-size", "16",
            "--batch-size", "4", "--eval-batches", "2", "--sample-tokens", "10", "--warmup", "2"]


@pytest.fixture
def corpus(tmp_path, monkeypatch):
    monkeypatch.setenv("TINYGRAD_PROUST_CACHE", str(tmp_path / "cache"))
    path = tmp_path / "corpus.txt"
    path.write_text("ROMEO. What say you, my lord? Nothing, madam; and yet I say it all. Café!\n" * 60
                    + "VALIDATION ONLY: zebra quixotic jukebox\n" * 8)
    return path


def test_train_generate_and_inspect_with_bpe(corpus, tmp_path, capsys, monkeypatch):
    seen = []
    real_train = BPETokenizer.train
    monkeypatch.setattr(BPETokenizer, "train", classmethod(lambda cls, text, *a: seen.append(text) or
                                                            real_train.__func__(cls, text, *a)))
    out = tmp_path / "out"
    train.main(["--data", str(corpus), "--tokenizer", "bpe", "--vocab-size", "300", "--steps", "4",
                "--eval-interval", "2", "--out-dir", str(out), *TINY_RUN])
    printed = capsys.readouterr().out
    raw = corpus.read_bytes()
    assert seen == [raw[:split_point(raw, 0.1)].decode()]                 # the training part only
    assert "VALIDATION ONLY" not in seen[0] and "training a BPE tokenizer of 300 tokens" in printed
    meta = load_checkpoint(out / "last.npz")[0]
    assert meta["tokenizer"]["kind"] == "bpe" and len(meta["tokenizer"]["merges"]) == 44
    assert "bytes per token" in printed and "bits per byte" in printed
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert all(0 < row["val_bpb"] < 12 for row in rows)
    # a second run on the same text takes the cached tokenizer
    train.main(["--data", str(corpus), "--tokenizer", "bpe", "--vocab-size", "300", "--steps", "2",
                "--eval-interval", "2", "--out-dir", str(tmp_path / "again"), *TINY_RUN])
    assert len(seen) == 1 and "training a BPE tokenizer" not in capsys.readouterr().out
    generate.main(["--checkpoint", str(out / "best.npz"), "--prompt", "ROMEO. Café", "--max-new-tokens", "12"])
    assert capsys.readouterr().out.startswith("ROMEO. Café")
    inspection_main(["logit-lens", "--checkpoint", str(out / "best.npz"), "--prompt", "What say", "--top", "1"])
    assert "after" in capsys.readouterr().out


def test_a_vocabulary_larger_than_the_text_supports_is_one_line(corpus, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        train.main(["--data", str(corpus), "--tokenizer", "bpe", "--vocab-size", "5000", "--out-dir",
                    str(tmp_path / "out"), *TINY_RUN])
    err = capsys.readouterr().err.strip()
    assert exit_info.value.code == 2 and err.startswith("error: --vocab-size 5000: the training text repeats "
                                                        "enough pairs for only") and "\n" not in err


def test_a_checkpoint_with_a_damaged_tokenizer_is_one_line(tmp_path, capsys):
    tok = BPETokenizer.train("hello hello world world", 262)
    model = GPT.from_preset("raven", vocab_size=tok.vocab_size)
    damaged = tok.to_dict()
    damaged["merges"][0] = [1, 5000]
    path = save_checkpoint(tmp_path / "c.npz", model, step=0, config=model.config.to_dict(), tokenizer=damaged)
    with pytest.raises(SystemExit) as exit_info:
        generate.main(["--checkpoint", str(path)])
    err = capsys.readouterr().err.strip()
    assert exit_info.value.code == 2 and "tokenizer description is damaged" in err and "\n" not in err


def test_a_long_chunk_encodes_as_the_pair_by_pair_loop_does(monkeypatch):
    """Text without spaces (DNA, a run of digits or letters) is one long chunk: it takes each merge over the whole
    chunk in learned order, which must give the ids of merging the lowest-ranked pair one at a time."""
    from models import tokenizer as tokenizer_module
    rng = np.random.default_rng(0)
    dna = "".join(rng.choice(list("ACGT"), 4000))
    text = "To be, or not to be: that is the question. " * 20 + dna + " " + "".join(rng.choice(list("abcé "), 3000))
    text += " " + "x" * 700
    tokenizer = BPETokenizer.train(text, 330, "gpt4")
    longest = max(len(c.encode()) for c in tokenizer._split.findall(text))
    assert longest > tokenizer_module.LONG_CHUNK  # the DNA and the x's take the whole-chunk path
    fast = tokenizer.encode(text)
    monkeypatch.setattr(tokenizer_module, "LONG_CHUNK", 1 << 30)  # every chunk pair by pair
    tokenizer._cache.clear()
    slow = tokenizer.encode(text)
    assert fast.tolist() == slow.tolist() and tokenizer.decode(fast) == text
