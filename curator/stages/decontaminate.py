"""Decontamination: drop documents that share a word n-gram with an evaluation set (GPT-3's
13-gram overlap, as Dolma, DCLM and datatrove's n-gram decontamination do), reason
`contaminated`, the benchmark named in `contaminated_by` (the first in config order when
several match).

Words are the rule stages' shared split (`SharedWords`: no second split of the batch), then
normalized as GPT-3's decontamination does: lower-cased, punctuation and symbols deleted from
each word, words left empty dropped. "The U.S.A., isn't it?" and "the usa isnt it" give the
same words. The evaluation items go through the very same two functions.

The set is exact: a sorted uint64 array of n-gram keys, looked up with np.searchsorted. A
Bloom filter saves memory only at a false-positive rate, and a document has ~one n-gram per
word, so even a 0.1% rate would drop every long document; evaluation sets are small (MMLU:
~1M 13-grams = 8 MB as uint64), so exact keys cost little. Keys are 64-bit: expected false
matches = doc n-grams x eval n-grams / 2^64 (10^10 x 10^7 -> 0.005 over a whole corpus).

A word's key comes from its position in the evaluation vocabulary (sorted distinct words,
stored with the set), not from hashing its characters: a document word outside the vocabulary
can be in no evaluation n-gram, so `index_in` both keys the words and rules out every window
that holds an unknown word, and no string is hashed per batch.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from curator.hashing import splitmix64
from curator.stages.text_columns import SharedWords, alive_text, list_parents, scatter
from curator.step import apply_drops, set_column

CONTAMINATED = "contaminated"
CONTAMINATED_BY = "contaminated_by"
_MIX = np.uint64(0x9E3779B97F4A7C15)  # odd: polynomial combination of word keys
_LENGTH_SALT = np.uint64(0xD6E8FEB86659FD93)  # keeps an 8-gram key apart from a 13-gram's
_PUNCT_OR_SYMBOL = r"[\p{P}\p{S}]+"


def normalized_words(words: pa.ListArray) -> tuple[pa.Array, np.ndarray]:
    """Tokens per document -> (flat normalized words, words per document).

    Lower-case, punctuation/symbols deleted, empty words dropped: both sides of the check."""
    flat = pc.list_flatten(words)
    parents = list_parents(words)
    norm = pc.utf8_lower(pc.replace_substring_regex(flat, _PUNCT_OR_SYMBOL, ""))
    keep = pc.greater(pc.binary_length(norm), 0)
    counts = np.bincount(parents[keep.to_numpy(zero_copy_only=False)], minlength=len(words))
    return norm.filter(keep), counts.astype(np.int64)


def word_keys(n_vocab: int) -> np.ndarray:
    """Key of each vocabulary word (by its index): spread bits for the polynomial below."""
    return splitmix64(np.arange(1, n_vocab + 1, dtype=np.uint64))


def ngram_keys(
    keys: np.ndarray, known: np.ndarray, counts: np.ndarray, lengths: list[int]
) -> list[tuple[int, np.ndarray, np.ndarray]]:
    """(length L, start positions, uint64 keys) of every L-gram, for each L in `lengths`, whose
    words lie in one document and are all `known`.

    Vectorized over the flat word array: the polynomial of the L words starting at every
    position is the (L-1)-word one times _MIX plus the next word's key (wrapping uint64), so
    the loop runs over n-gram lengths, never over documents."""
    n = len(keys)
    ends = np.cumsum(counts)
    doc_end = np.repeat(ends, counts)  # end (exclusive) of each word's document
    unknown = np.concatenate([[0], np.cumsum(~known)])
    pos = np.arange(n, dtype=np.int64)
    h = keys.astype(np.uint64, copy=True)
    out = []
    with np.errstate(over="ignore"):
        for length in range(1, max(lengths, default=0) + 1):
            m = max(n - length + 1, 0)  # positions where an n-gram this long can start
            if length > 1:
                h[:m] = h[:m] * _MIX + keys[length - 1 : length - 1 + m]
            if length not in lengths:
                continue
            start = pos[pos + length <= doc_end]
            start = start[unknown[start + length] == unknown[start]]
            key = splitmix64(h[start] ^ (np.uint64(length) * _LENGTH_SALT))
            out.append((length, start, key))
    return out


@dataclass(frozen=True)
class EvalSet:
    """The n-gram keys of a run's evaluation sets: built once by the driver
    (curator/eval_sets.py), stored in the run, memory-mapped by each pass-1 worker."""

    names: list[str]  # benchmarks, config order
    ngram: int
    lengths: list[int]  # n-gram lengths present: `ngram` and short items' whole lengths
    vocab: pa.Array  # sorted distinct normalized words of all items
    hashes: np.ndarray  # sorted distinct uint64 n-gram keys
    benchmark: np.ndarray  # int32, per key: first benchmark (config order) that has it
    counts: dict[str, dict[str, int]] = field(default_factory=dict)  # per benchmark

    def save(self, folder: Path) -> dict:
        """Write the arrays under `folder`; returns the metadata the caller records (marker)."""
        from connectors.fs import atomic_open

        for name, arr in (("hashes", self.hashes), ("benchmark", self.benchmark)):
            with atomic_open(folder / f"{name}.npy") as f:
                np.save(f, np.ascontiguousarray(arr))
        with atomic_open(folder / "vocab.arrow") as f, pa.ipc.new_file(
                f, pa.schema([("word", self.vocab.type)])) as writer:
            writer.write_table(pa.table({"word": self.vocab}))
        return self.meta()

    def meta(self) -> dict:
        import xxhash

        digest = xxhash.xxh3_64()
        for arr in (self.hashes, self.benchmark):
            digest.update(np.ascontiguousarray(arr).tobytes())
        digest.update(json.dumps(self.names).encode())
        return {"names": self.names, "ngram": self.ngram, "lengths": self.lengths,
                "counts": self.counts, "digest": digest.hexdigest()}

    @classmethod
    def open(cls, folder: Path, meta: dict) -> EvalSet:
        """Memory-mapped: workers on one node share the pages instead of each holding a copy."""
        vocab = pa.ipc.open_file(pa.memory_map(str(folder / "vocab.arrow"))).read_all()
        return cls(
            names=list(meta["names"]), ngram=int(meta["ngram"]), lengths=list(meta["lengths"]),
            vocab=vocab.column("word").combine_chunks(),
            hashes=np.load(folder / "hashes.npy", mmap_mode="r"),
            benchmark=np.load(folder / "benchmark.npy", mmap_mode="r"),
            counts=meta["counts"],
        )


class KeyIndex:
    """Exact membership in a sorted uint64 array, behind a bitmap of the keys' top bits.

    A binary search per document n-gram is a chain of cache misses (~0.15 s per million on
    the set of an MMLU-sized benchmark); nearly every n-gram of real text is absent, and one
    bit probe (16 bits per key: ~6% of absent keys pass) rules it out, so only candidates are
    searched (10 MB of text: 1.8 s -> 0.5 s). The bitmap is a prefilter, never the answer: no
    false positives. Built per worker from the mapped keys (2 bytes per key, milliseconds)."""

    def __init__(self, hashes: np.ndarray):
        self.hashes = hashes
        bits = max(16, int(np.ceil(np.log2(max(len(hashes), 1) * 16))))
        self.shift = np.uint64(64 - bits)
        self.bitmap = np.zeros(1 << (bits - 3), np.uint8)  # packed: 2 bytes per key
        slot = hashes >> self.shift
        np.bitwise_or.at(self.bitmap, slot >> np.uint64(3),
                         np.left_shift(1, slot & np.uint64(7)).astype(np.uint8))

    def find(self, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(indices into `keys` that are in the set, their positions in `hashes`)."""
        slot = keys >> self.shift
        bit = (self.bitmap[slot >> np.uint64(3)] >> (slot & np.uint64(7)).astype(np.uint8)) & 1
        cand = np.flatnonzero(bit)
        if len(cand) == 0 or len(self.hashes) == 0:
            return cand[:0], cand[:0]
        at = np.minimum(np.searchsorted(self.hashes, keys[cand]), len(self.hashes) - 1)
        hit = self.hashes[at] == keys[cand]
        return cand[hit], at[hit]


class Decontaminate:
    """Drops alive documents sharing an n-gram with an EvalSet; adds `contaminated_by`."""

    name = "decontaminate"

    def __init__(self, eval_set: EvalSet, words: SharedWords | None = None):
        self.set = eval_set
        self.keys = word_keys(len(eval_set.vocab))
        self.index = KeyIndex(eval_set.hashes)
        self.names = pa.array(eval_set.names, pa.string())
        self.words = words or SharedWords()  # shared with the quality rules of one pipeline

    def first_benchmark(self, words: pa.ListArray) -> np.ndarray:
        """Per document: index of the first benchmark (config order) sharing an n-gram with it,
        or len(names) when none does."""
        if len(self.set.hashes) == 0:  # every item too short: nothing can match
            return np.full(len(words), len(self.set.names), np.int64)
        flat, counts = normalized_words(words)
        ids = pc.fill_null(pc.index_in(flat, value_set=self.set.vocab), -1).to_numpy()
        known = ids >= 0
        doc_of = np.repeat(np.arange(len(counts)), counts)
        first = np.full(len(counts), len(self.set.names), np.int64)
        for _, start, key in ngram_keys(self.keys[np.where(known, ids, 0)], known, counts,
                                        self.set.lengths):
            hit, at = self.index.find(key)
            np.minimum.at(first, doc_of[start[hit]], self.set.benchmark[at])
        return first

    def __call__(self, table: pa.Table) -> pa.Table:
        alive, text = alive_text(table)
        first = self.first_benchmark(self.words(table, alive, text))
        matched = first < len(self.set.names)
        by = pc.take(self.names, pa.array(np.where(matched, first, 0), mask=~matched))
        by = scatter(by, alive, pa.string())
        table = set_column(table, CONTAMINATED_BY, by)
        reason = pc.if_else(pc.is_valid(by), pa.scalar(CONTAMINATED), pa.scalar(None, pa.string()))
        return apply_drops(table, reason)
