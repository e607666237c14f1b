"""Tokenizers: text to token ids and back, behind one interface that the scripts use without asking which kind.

    encode(text) -> ids            decode(ids) -> text            vocab_size
    encode_corpus(data, source)    the ids of a corpus as read from disk (bytes)
    unknown_chars(text)            characters encode() cannot represent (always none for bytes)
    token_text(id)                 one token's text, for labels (a partial UTF-8 character is shown in hex)
    stream_decoder()               decodes ids one at a time, never printing half a character
    to_dict() / tokenizer_from_dict(d)   the small dict stored in every checkpoint

CharTokenizer: one id per character of a vocabulary built from the corpus (optionally limited to a whitelist).
ByteTokenizer: one id per UTF-8 byte (256 ids): any text, no vocabulary to build.
"""
import codecs

import numpy as np

from models.corpus import DataError, decode_utf8


class UnknownCharacters(DataError):
    """A prompt holds characters that the model's vocabulary lacks."""


class CharTokenizer:
    """Characters to ids over a fixed vocabulary.

    `unknown` says what encode() does with a character outside the vocabulary:
      "error"   (default) raise a DataError naming every such character;
      "drop"    leave it out;
      "replace" put `replacement` (a character of the vocabulary) in its place.
    """

    def __init__(self, chars, unknown="error", replacement=None):
        if unknown not in ("error", "drop", "replace"):
            raise ValueError(f"CharTokenizer: unknown must be 'error', 'drop' or 'replace', not {unknown!r}")
        self.chars = "".join(chars)
        if len(set(self.chars)) != len(self.chars):
            raise ValueError("CharTokenizer: the vocabulary has repeated characters")
        self.index = {c: i for i, c in enumerate(self.chars)}
        if unknown == "replace" and replacement not in self.index:
            raise ValueError(f"CharTokenizer: replacement {replacement!r} must be in the vocabulary")
        self.unknown, self.replacement = unknown, replacement

    @classmethod
    def from_text(cls, text, allowed=None, unknown="drop", replacement=None):
        """The vocabulary of `text` (sorted), limited to the characters of `allowed` when given.
        Characters of the text outside `allowed` are then dropped or replaced, as `unknown` says."""
        present = set(text)
        if allowed is not None:
            present &= set(allowed)
            if replacement is not None:
                present.add(replacement)
        if not present:
            raise DataError("the corpus has no characters in the allowed set")
        return cls(sorted(present), unknown=unknown, replacement=replacement)

    @property
    def vocab_size(self):
        return len(self.chars)

    def __len__(self):
        return self.vocab_size

    def unknown_chars(self, text):
        return sorted(set(text) - self.index.keys())

    def encode(self, text):
        missing = self.unknown_chars(text)
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
        return {"kind": "char", "chars": self.chars, "unknown": self.unknown, "replacement": self.replacement}


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


def encode_prompt(tokenizer, prompt, drop_unknown=False):
    """The ids of a prompt to continue. Characters outside the vocabulary are an error naming them (a prompt is
    never silently changed), or left out with drop_unknown. An empty prompt starts from a newline: the start of a
    line, where a text naturally begins (or token 0 when the vocabulary has no newline)."""
    if not prompt:
        return tokenizer.encode("\n") if not tokenizer.unknown_chars("\n") else np.array([0], dtype=np.int64)
    missing = tokenizer.unknown_chars(prompt)
    if missing and not drop_unknown:
        raise UnknownCharacters("characters not in the model's vocabulary: " + ", ".join(repr(c) for c in missing))
    prompt = "".join(c for c in prompt if c not in missing)
    if not prompt:
        raise DataError("no prompt character is in the model's vocabulary")
    return tokenizer.encode(prompt)


def tokenizer_from_dict(values):
    if values.get("kind") == "byte":
        return ByteTokenizer()
    if values.get("kind") == "char":
        return CharTokenizer(values["chars"], unknown=values.get("unknown", "error"),
                             replacement=values.get("replacement"))
    raise DataError(f"unknown tokenizer kind {values.get('kind')!r}")
