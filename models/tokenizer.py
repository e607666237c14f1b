"""Tokenizers: text to token ids and back, behind one interface that the scripts use without asking which kind.

    encode(text) -> ids            decode(ids) -> text            vocab_size
    encode_corpus(data, source)    the ids of a corpus as read from disk (bytes)
    unknown_chars(text)            characters encode() cannot represent (always none for bytes)
    token_text(id)                 one token's text, for labels (a partial UTF-8 character is shown in hex)
    stream_decoder()               decodes ids one at a time, never printing half a character
    to_dict() / tokenizer_from_dict(d)   the small dict stored in every checkpoint

CharTokenizer: one id per character of a vocabulary built from the corpus (optionally limited to a whitelist).
ByteTokenizer: one id per UTF-8 byte (256 ids): any text, no vocabulary to build.
BPETokenizer: byte-level byte-pair encoding learned from a corpus: ids 0..255 are bytes, each merge adds one id.
"""
import codecs
import heapq
import unicodedata

import numpy as np
from tqdm import tqdm

from models.corpus import DataError, cache_dir, decode_utf8
from tinygrad_proust.checkpoint import write_atomically


class UnknownCharacters(DataError):
    """A prompt holds characters that the model's vocabulary lacks."""


class CharTokenizer:
    """Characters to ids over a fixed vocabulary.

    `unknown` says what encode() does with a character outside the vocabulary:
      "error"   (default) raise a DataError naming every such character;
      "drop"    leave it out;
      "replace" put `replacement` (a character of the vocabulary) in its place.
    `normalize` "NFC" composes text before it is encoded: an accent typed or stored as a separate combining mark
    (NFD, as macOS and many PDF copies write "é") becomes the one character "é" of the vocabulary. None keeps the
    text as it is.
    """

    def __init__(self, chars, unknown="error", replacement=None, normalize=None):
        if unknown not in ("error", "drop", "replace"):
            raise ValueError(f"CharTokenizer: unknown must be 'error', 'drop' or 'replace', not {unknown!r}")
        if normalize not in (None, "NFC"):
            raise ValueError(f"CharTokenizer: normalize must be 'NFC' or None, not {normalize!r}")
        self.normalize = normalize
        self.chars = "".join(chars)
        if len(set(self.chars)) != len(self.chars):
            raise ValueError("CharTokenizer: the vocabulary has repeated characters")
        self.index = {c: i for i, c in enumerate(self.chars)}
        if unknown == "replace" and replacement not in self.index:
            raise ValueError(f"CharTokenizer: replacement {replacement!r} must be in the vocabulary")
        self.unknown, self.replacement = unknown, replacement

    @classmethod
    def from_text(cls, text, allowed=None, unknown="drop", replacement=None, normalize=None):
        """The vocabulary of `text` (sorted), limited to the characters of `allowed` when given.
        Characters of the text outside `allowed` are then dropped or replaced, as `unknown` says."""
        if normalize:
            text, allowed = (None if t is None else unicodedata.normalize(normalize, t) for t in (text, allowed))
        present = set(text)
        if allowed is not None:
            present &= set(allowed)
            if replacement is not None:
                present.add(replacement)
        if not present:
            raise DataError("the corpus has no characters in the allowed set")
        return cls(sorted(present), unknown=unknown, replacement=replacement, normalize=normalize)

    @property
    def vocab_size(self):
        return len(self.chars)

    def __len__(self):
        return self.vocab_size

    def normal(self, text):
        return unicodedata.normalize(self.normalize, text) if self.normalize else text

    def unknown_chars(self, text):
        return sorted(set(self.normal(text)) - self.index.keys())

    def encode(self, text):
        text = self.normal(text)
        missing = sorted(set(text) - self.index.keys())
        if missing and self.unknown == "error":
            shown = ", ".join(repr(c) for c in missing[:20])
            raise DataError(f"characters not in the model's vocabulary: {shown}"
                            + (f" and {len(missing) - 20} more" if len(missing) > 20 else ""))
        if missing and self.unknown == "replace":
            text = text.translate({ord(c): self.replacement for c in missing})
        elif missing:
            text = text.translate({ord(c): None for c in missing})
        lookup = self.index
        return np.fromiter((lookup[c] for c in text), dtype=np.int64, count=len(text))

    def encode_corpus(self, data, source):
        return self.encode(decode_utf8(data, source))

    def decode(self, ids):
        return "".join(self.chars[int(i)] for i in ids)

    def token_text(self, i):
        return self.chars[int(i)]

    def stream_decoder(self):
        return _StreamDecoder(self.decode, None)

    def to_dict(self):
        return {"kind": "char", "chars": self.chars, "unknown": self.unknown, "replacement": self.replacement,
                "normalize": self.normalize}


class ByteTokenizer:
    """UTF-8 bytes as ids 0..255: any text round-trips exactly."""

    vocab_size = 256

    def __len__(self):
        return 256

    def unknown_chars(self, text):
        return []

    def encode(self, text):
        data = text.encode("utf-8") if isinstance(text, str) else bytes(text)
        return np.frombuffer(data, dtype=np.uint8).astype(np.int64)

    def encode_corpus(self, data, source):
        return self.encode(data)  # any bytes, valid UTF-8 or not

    def decode(self, ids, errors="replace"):
        return self.decode_bytes(ids).decode("utf-8", errors=errors)

    def decode_bytes(self, ids):
        return bytes(int(i) for i in ids)

    def token_text(self, i):
        text = self.decode([i])
        return f"{int(i):02x}" if text == "\ufffd" else text

    def stream_decoder(self):
        return _StreamDecoder(self.decode_bytes, codecs.getincrementaldecoder("utf-8")(errors="replace"))

    def to_dict(self):
        return {"kind": "byte"}


# ------------------------------------------------------------------------------------------------
# byte-pair encoding
# ------------------------------------------------------------------------------------------------

# How text is cut into chunks before BPE, so merges never cross word, number or punctuation boundaries.
SPLIT_PATTERNS = {
    "gpt2": r"""'(?:[sdmt]|ll|ve|re)| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+""",
    "gpt4": r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]++[\r\n]*|\s*[\r\n]|"""
            r"""\s+(?!\S)|\s+""",
}


class BPETokenizer:
    """Byte-level BPE. `merges` is the ordered list of ((left_id, right_id), new_id), new ids 256, 257, ...

    The merge rule is GPT-2's, as minbpe's BasicTokenizer implements it: count every adjacent pair of the current
    ids (overlapping occurrences too: "aaa" counts (a, a) twice); the most frequent pair becomes the next token;
    a tie goes to the pair whose first occurrence in the current sequence comes first; its occurrences are then
    replaced left to right without overlap. Training stops early when no pair occurs twice.

    pattern: None trains on the whole byte sequence; "gpt2", "gpt4" or a regular expression (the `regex` module's
    syntax) first cuts the text into chunks, and merges never cross a chunk's edge.
    """

    def __init__(self, merges, pattern=None):
        self.merges = [((int(a), int(b)), int(new)) for (a, b), new in merges]
        for i, ((a, b), new) in enumerate(self.merges):
            if new != 256 + i or not (0 <= a < new and 0 <= b < new):
                raise ValueError(f"BPETokenizer: merge {i} ({a}, {b}) -> {new} is not a merge of earlier tokens "
                                 f"into token {256 + i}")
        if pattern is not None and not isinstance(pattern, str):
            raise ValueError(f"BPETokenizer: pattern must be a name, a regular expression or None, not {pattern!r}")
        self.pattern = pattern
        self._split = _compile(pattern)
        self.ranks = {pair: new for pair, new in self.merges}
        self.vocab = [bytes([i]) for i in range(256)]
        for (a, b), _ in self.merges:
            self.vocab.append(self.vocab[a] + self.vocab[b])
        self._cache = {}

    @classmethod
    def train(cls, text, vocab_size, pattern=None):
        """Learn vocab_size - 256 merges from text (a str, or bytes when pattern is None)."""
        if not isinstance(vocab_size, int) or vocab_size < 257:
            raise ValueError(f"BPETokenizer.train: vocab_size must be at least 257 (256 bytes + 1 merge), "
                             f"got {vocab_size}")
        chunks = [text.encode("utf-8") if isinstance(text, str) else bytes(text)] if pattern is None else \
            [c.encode("utf-8") for c in _compile(pattern).findall(text)]
        seq, weights = _weighted_sequence(chunks)
        return cls(_learn_merges(seq, weights, vocab_size - 256), pattern)

    @property
    def vocab_size(self):
        return 256 + len(self.merges)

    def __len__(self):
        return self.vocab_size

    def unknown_chars(self, text):
        return []  # bytes cover every text

    def encode(self, text, progress=False):
        """The ids of text; progress=True shows a bar over the text's chunks (a corpus of many megabytes)."""
        data = text.encode("utf-8") if isinstance(text, str) else bytes(text)
        if self._split is None:
            return _apply_merges(np.frombuffer(data, dtype=np.uint8).astype(np.int32), self.merges).astype(np.int64)
        ids = []
        chunks = self._split.findall(data.decode("utf-8"))
        for chunk in tqdm(chunks, desc="BPE encoding", unit=" chunks", leave=False, disable=not progress):
            ids.extend(self._encode_chunk(chunk))
        return np.array(ids, dtype=np.int64)

    def _encode_chunk(self, chunk):
        """A chunk's ids: repeatedly merge the pair that was learned first, as training did (cached per chunk). A
        long chunk (text without spaces: DNA, code, a language written without them) takes each merge in the order
        learned over the whole chunk at once, which gives the same ids: a merge only ever makes pairs learned later.
        """
        if chunk in self._cache:
            return self._cache[chunk]
        data = chunk.encode("utf-8")
        if len(data) > max(LONG_CHUNK, len(self.merges) // 2):  # the loop: len(chunk) per merge applied, in Python
            return _apply_merges(np.frombuffer(data, dtype=np.uint8).astype(np.int32), self.merges).tolist()
        ids = list(data)
        while len(ids) > 1:
            pair = min(zip(ids, ids[1:]), key=lambda p: self.ranks.get(p, 1 << 62))
            new = self.ranks.get(pair)
            if new is None:
                break
            ids = _merge_list(ids, pair, new)
        if len(self._cache) < 1 << 20:
            self._cache[chunk] = ids
        return ids

    def encode_corpus(self, data, source):
        return self.encode(data if self._split is None else decode_utf8(data, source), progress=len(data) > 1 << 20)

    def decode(self, ids):
        return self.decode_bytes(ids).decode("utf-8", errors="replace")

    def decode_bytes(self, ids):
        return b"".join(self.vocab[int(i)] for i in ids)

    def token_text(self, i):
        piece = self.vocab[int(i)]
        text = piece.decode("utf-8", errors="replace")
        return piece.hex() if "\ufffd" in text else text  # part of a character: its bytes in hex

    def stream_decoder(self):
        return _StreamDecoder(self.decode_bytes, codecs.getincrementaldecoder("utf-8")(errors="replace"))

    def to_dict(self):
        return {"kind": "bpe", "pattern": self.pattern, "merges": [[a, b] for (a, b), _ in self.merges]}


def trained_bpe(data, vocab_size, pattern, log=print):
    """BPETokenizer.train(data, vocab_size, pattern), cached in the corpus cache (bpe/) by a hash of the data, so
    a second run on the same training text does not train again."""
    import hashlib
    import json
    digest = hashlib.sha256(data).hexdigest()[:20]
    path = cache_dir() / "bpe" / f"{digest}-{vocab_size}-{pattern or 'none'}.json"
    if path.exists():
        try:
            return tokenizer_from_dict(json.loads(path.read_text()))
        except (ValueError, KeyError, TypeError):
            path.unlink()                                    # a damaged cache entry: train again
    log(f"training a BPE tokenizer of {vocab_size} tokens on {len(data):,} bytes ({pattern or 'no'} pre-split) ...")
    tokenizer = BPETokenizer.train(data if pattern is None else decode_utf8(data, "the training text"),
                                   vocab_size, pattern)
    write_atomically(path, lambda f: f.write(json.dumps(tokenizer.to_dict()).encode("utf-8")))
    return tokenizer


def _compile(pattern):
    if pattern is None:
        return None
    import regex  # GPT-2's and GPT-4's patterns need Unicode classes (\p{L}, \p{N}) that `re` lacks
    return regex.compile(SPLIT_PATTERNS.get(pattern, pattern))


def _merge_list(ids, pair, new):
    """Replace each occurrence of pair in the list ids by new, left to right without overlap."""
    out, i = [], 0
    while i < len(ids):
        if i + 1 < len(ids) and ids[i] == pair[0] and ids[i + 1] == pair[1]:
            out.append(new)
            i += 2
        else:
            out.append(ids[i])
            i += 1
    return out


def _weighted_sequence(chunks):
    """The distinct chunks, in order of first appearance, joined with -1 between them, and each position's weight:
    how often its chunk occurs. Pairs and their first occurrences are then those of the whole text."""
    counts = {}
    for chunk in chunks:
        counts[chunk] = counts.get(chunk, 0) + 1
    seq = np.frombuffer(b"".join(chunk + b"\xff" for chunk in counts), dtype=np.uint8).astype(np.int32)
    lengths = np.array([len(chunk) + 1 for chunk in counts], dtype=np.int64)
    seq[np.cumsum(lengths) - 1] = -1                        # the separators (0xff never occurs in UTF-8)
    weights = np.repeat(np.array(list(counts.values()), dtype=np.int64), lengths)
    return seq, weights


def _pair_counts(seq, weights, starts, base):
    """{pair code: summed weight} for the pairs that start at `starts` (pairs touching a separator left out)."""
    starts = starts[(starts >= 0) & (starts < len(seq) - 1)]
    left, right = seq[starts], seq[starts + 1]
    keep = (left >= 0) & (right >= 0)
    codes = left[keep].astype(np.int64) * base + right[keep]
    unique, inverse = np.unique(codes, return_inverse=True)
    sums = np.bincount(inverse, weights=weights[starts[keep]], minlength=len(unique))
    return dict(zip(unique.tolist(), sums.astype(np.int64).tolist()))


def _occurrences(seq, a, b):
    """Start positions of the pair (a, b), left to right without overlap (in a run "a a a a" of (a, a): 0 and 2)."""
    at_a = np.flatnonzero(seq[:-1] == a)
    pos = at_a[seq[at_a + 1] == b]
    if a == b and len(pos) > 1:
        run_start = np.r_[True, np.diff(pos) != 1]
        first_of_run = pos[run_start][np.cumsum(run_start) - 1]
        pos = pos[(pos - first_of_run) % 2 == 0]
    return pos


def _merge_at(seq, pos, new, *others):
    """seq with token `new` at each position of pos and the token after it removed (and the same removal from
    each array of others). Returns (seq, *others, the new token's positions in the result)."""
    keep = np.ones(len(seq), dtype=bool)
    keep[pos + 1] = False
    seq = seq.copy()
    seq[pos] = new
    return (seq[keep], *(o[keep] for o in others), pos - np.arange(len(pos)))


def _learn_merges(seq, weights, n_merges):
    """The merges of GPT-2's rule on a weighted sequence (see BPETokenizer), vectorised: each merge finds its
    occurrences in one pass and updates the pair counts only where the sequence changed."""
    base = 256 + n_merges
    counts = _pair_counts(seq, weights, np.arange(len(seq) - 1), base)
    heap = [(-c, code) for code, c in counts.items()]
    heapq.heapify(heap)
    merges = []
    while len(merges) < n_merges:
        tied = _most_frequent(heap, counts)
        if not tied or -tied[0][0] < 2:
            break
        code = tied[0][1] if len(tied) == 1 else _first_occurring([code for _, code in tied], seq, base)
        for entry in tied:
            if entry[1] != code:
                heapq.heappush(heap, entry)
        a, b, new = code // base, code % base, 256 + len(merges)
        pos = _occurrences(seq, a, b)
        touched = np.unique(np.concatenate([pos - 1, pos, pos + 1]))
        changes = {c: -n for c, n in _pair_counts(seq, weights, touched, base).items()}
        seq, weights, new_pos = _merge_at(seq, pos, new, weights)
        for c, n in _pair_counts(seq, weights, np.unique(np.concatenate([new_pos - 1, new_pos])), base).items():
            changes[c] = changes.get(c, 0) + n
        for c, delta in changes.items():
            if delta:
                counts[c] = counts.get(c, 0) + delta
                if counts[c] > 0:
                    heapq.heappush(heap, (-counts[c], c))
                else:
                    del counts[c]
        merges.append(((a, b), new))
    return merges


def _most_frequent(heap, counts):
    """Pop every up-to-date heap entry with the highest count (entries whose count has changed are dropped)."""
    tied = []
    while heap:
        negative, code = heap[0]
        if counts.get(code) != -negative:
            heapq.heappop(heap)
        elif tied and negative != tied[0][0]:
            break
        else:
            tied.append(heapq.heappop(heap))
    return tied


def _first_occurring(codes, seq, base):
    """Of several pair codes, the one whose first occurrence in seq comes first."""
    pairs = seq[:-1].astype(np.int64) * base + seq[1:]
    wanted = np.isin(pairs, np.array(codes, dtype=np.int64)) & (seq[:-1] >= 0) & (seq[1:] >= 0)
    return int(pairs[np.argmax(wanted)])


LONG_CHUNK = 512  # bytes, and at least half the merges: from there on one vectorised pass per merge (of every merge
                  # learned) beats merging pair by pair (measured: 600 bytes with 3,840 merges is still faster pair
                  # by pair, 2 kB is not)


def _apply_merges(seq, merges):
    """Apply the merges in the order they were learned to a whole id sequence (a text without pre-splitting)."""
    for (a, b), new in merges:
        pos = _occurrences(seq, a, b)
        if len(pos):
            seq = _merge_at(seq, pos, new)[0]
    return seq


class _StreamDecoder:
    """Text for each new token as it arrives. For byte-level tokens an incremental UTF-8 decoder holds back a
    partial character until its last byte arrives: never half a character."""

    def __init__(self, decode, utf8):
        self.decode, self.utf8 = decode, utf8

    def push(self, token):
        piece = self.decode([token])
        return self.utf8.decode(piece) if self.utf8 else piece

    def finish(self):
        return self.utf8.decode(b"", final=True) if self.utf8 else ""


def encode_prompt(tokenizer, prompt, drop_unknown=False, what="prompt"):
    """The ids of a prompt to continue. Characters outside the vocabulary are an error naming them (a prompt is
    never silently changed), or left out with drop_unknown. An empty prompt starts from a newline: the start of a
    line, where a text naturally begins (or token 0 when the vocabulary has no newline). `what`: the word the
    messages use for the prompt ("text" for a text to cut into tokens)."""
    if not prompt:
        return tokenizer.encode("\n") if not tokenizer.unknown_chars("\n") else np.array([0], dtype=np.int64)
    try:
        prompt.encode("utf-8")
    except UnicodeEncodeError as err:  # a console that is not UTF-8 passes its bytes as surrogates
        raw = prompt[err.start:err.end].encode("utf-8", "surrogateescape")
        raise DataError(f"the {what} holds bytes that are not UTF-8 ({raw.hex(' ')} at character {err.start}): "
                        "set the console to UTF-8 (a Latin-1 console sends é as e9)") from None
    missing = tokenizer.unknown_chars(prompt)
    if missing and not drop_unknown:
        raise UnknownCharacters("characters not in the model's vocabulary: " + ", ".join(repr(c) for c in missing))
    prompt = "".join(c for c in getattr(tokenizer, "normal", str)(prompt) if c not in missing)
    if not prompt:
        raise DataError(f"no character of the {what} is in the model's vocabulary")
    return tokenizer.encode(prompt)


def tokenizer_from_dict(values):
    """A tokenizer from its to_dict(), as a checkpoint stores it. A BPE split pattern must be one of ours (a name,
    or GPT-2's or GPT-4's expression): a stored regular expression of any other kind could take forever to run."""
    if values.get("kind") == "byte":
        return ByteTokenizer()
    if values.get("kind") == "bpe":
        merges, pattern = values["merges"], values.get("pattern")
        if pattern is not None and pattern not in SPLIT_PATTERNS and pattern not in SPLIT_PATTERNS.values():
            raise DataError(f"a BPE split pattern that is not one of ours ({', '.join(SPLIT_PATTERNS)}) is refused: "
                            f"{str(pattern)[:40]!r}")
        return BPETokenizer([((a, b), 256 + i) for i, (a, b) in enumerate(merges)], pattern)
    if values.get("kind") == "char":
        return CharTokenizer(values["chars"], unknown=values.get("unknown", "error"),
                             replacement=values.get("replacement"), normalize=values.get("normalize"))
    raise DataError(f"unknown tokenizer kind {values.get('kind')!r}")


def reference_merges(chunks, n_merges):
    """BPETokenizer.train's reference: (merges, ids) by GPT-2's merge rule written out plainly, slow and obviously
    correct (the tests and bench.py --bpe compare the fast trainer with it): count every adjacent pair of every
    chunk, in order (a dict remembers the order pairs were first seen, so max() breaks a tie by the first
    occurrence); merge the winner left to right."""
    ids = [list(chunk) for chunk in chunks]
    merges = []
    for new in range(256, 256 + n_merges):
        counts = {}
        for seq in ids:
            for pair in zip(seq, seq[1:]):
                counts[pair] = counts.get(pair, 0) + 1
        if not counts or max(counts.values()) < 2:
            break
        best = max(counts, key=counts.get)
        for k, seq in enumerate(ids):
            out, i = [], 0
            while i < len(seq):
                if i + 1 < len(seq) and (seq[i], seq[i + 1]) == best:
                    out.append(new)
                    i += 2
                else:
                    out.append(seq[i])
                    i += 1
            ids[k] = out
        merges.append((best, new))
    return merges, [i for seq in ids for i in seq]
