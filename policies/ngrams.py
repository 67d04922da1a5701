"""Hashed word n-grams of a batch of texts: the shared base of the sketch features, the
target-aware features and the n-gram baselines (vectorized: one Arrow split, one hash pass)."""

from __future__ import annotations

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc


def _words(texts: pa.Array) -> tuple[pa.Array, np.ndarray]:
    """Lowercased whitespace words (empty strings from blank docs removed) and their doc index."""
    words = pc.utf8_split_whitespace(pc.utf8_lower(texts))
    flat = pc.list_flatten(words)
    parents = pc.list_parent_indices(words).to_numpy().astype(np.int64)
    nonempty = pc.greater(pc.utf8_length(flat), 0)
    return pc.filter(flat, nonempty), parents[nonempty.to_numpy(zero_copy_only=False)]


def word_ngram_keys(texts: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """(doc index, 64-bit hash) of every lowercased word unigram and in-doc bigram."""
    flat, parents = _words(texts)
    if len(flat) == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.uint64)
    h = pl.from_arrow(flat).hash(seed=7).to_numpy()
    with np.errstate(over="ignore"):
        bigram = h[:-1] * np.uint64(0x9E3779B97F4A7C15) + h[1:]
    same_doc = parents[:-1] == parents[1:]
    return (
        np.concatenate([parents, parents[:-1][same_doc]]),
        np.concatenate([h, bigram[same_doc]]),
    )


NgramKeys = tuple[np.ndarray, np.ndarray]


def ngram_counts(
    texts: pa.Array, dim: int, signed: bool = False, keys: NgramKeys | None = None
) -> np.ndarray:
    """(n_docs, dim) hashed uni+bigram counts; `signed` = feature hashing with a sign bit.
    `keys`: `word_ngram_keys(texts)` when the caller already has them (hashing is the cost)."""
    docs, keys = keys if keys is not None else word_ngram_keys(texts)
    n = len(texts)
    bucket = (keys % np.uint64(dim)).astype(np.int64)
    weight = np.where((keys >> np.uint64(63)) == 1, -1.0, 1.0) if signed else None
    flat = np.bincount(docs * dim + bucket, weights=weight, minlength=n * dim)
    return flat.reshape(n, dim)
