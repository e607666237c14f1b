"""BPE training and encoding speed on the default corpus (bench.py --bpe)."""
import time

from models.corpus import default_corpus
from models.tokenizer import BPETokenizer, reference_merges


def bpe_speed(vocab_size=4096, slice_bytes=30_000, slice_merges=200):
    """BPE training and encoding on the default corpus, with and without pre-splitting, and our trainer against
    the slow, obviously correct implementation of the same rule (models.tokenizer.reference_merges) on a slice."""
    text = default_corpus().read_text()
    data = text.encode("utf-8")
    print(f"corpus: {len(data):,} bytes\n")
    print("| pre-split | vocabulary | training | encoding | bytes per token |")
    print("|---|---|---|---|---|")
    for pattern in ("gpt4", "gpt2", None):
        start = time.perf_counter()
        tokenizer = BPETokenizer.train(text if pattern else data, vocab_size, pattern)
        trained = time.perf_counter() - start
        start = time.perf_counter()
        ids = tokenizer.encode(text)
        encoded = time.perf_counter() - start
        assert tokenizer.decode(ids) == text
        print(f"| {pattern or 'none'} | {tokenizer.vocab_size:,} | {trained:.1f} s | "
              f"{len(data) / encoded / 1e6:.2f} MB/s | "
              f"{len(data) / len(ids):.2f} |", flush=True)
    start = time.perf_counter()
    BPETokenizer.train(data[:1_000_000], 256 + 1000)
    print(f"\n1,000 merges on 1 MB without pre-splitting: {time.perf_counter() - start:.1f} s")
    piece = data[:slice_bytes]
    start = time.perf_counter()
    ours = BPETokenizer.train(piece, 256 + slice_merges).merges
    fast = time.perf_counter() - start
    start = time.perf_counter()
    reference = reference_merges([piece], slice_merges)[0]
    slow = time.perf_counter() - start
    print(f"{slice_merges} merges on the first {slice_bytes:,} bytes: ours {fast:.2f} s, "
          f"the slow reference {slow:.1f} s "
          f"({slow / fast:.0f}x); merges identical: {ours == reference}")
