"""A string hash that is the same on every machine, process and library version.

Python's hash() is salted per process and polars' hash may change between releases; a held-out
split or a sample that must be drawn identically by every worker, every resume and every
install needs neither. One implementation for all of them (the trainer's held-out split, the
RUN/excluded/ sample).
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

_FNV_OFFSET, _FNV_PRIME = np.uint64(0xCBF29CE484222325), np.uint64(0x100000001B3)


def stable_hash(strings: pa.Array | pa.ChunkedArray, seed: int = 0) -> np.ndarray:
    """64-bit FNV-1a of each string, then a splitmix64 finalizer; uint64 per row.

    Vectorized over documents: the loop runs over byte positions (ids are short), never over rows.
    """
    arr = (
        pa.chunked_array([strings]).combine_chunks()
        if not isinstance(strings, pa.Array)
        else strings
    )
    arr = arr.cast(pa.large_string())
    n = len(arr)
    offs = np.frombuffer(arr.buffers()[1], dtype=np.int64)[arr.offset : arr.offset + n + 1]
    data = (
        np.frombuffer(arr.buffers()[2], dtype=np.uint8)
        if n and offs[-1] > offs[0]
        else np.zeros(1, np.uint8)
    )
    lengths = np.diff(offs)
    h = np.full(n, _FNV_OFFSET ^ np.uint64(seed & (2**64 - 1)), dtype=np.uint64)
    with np.errstate(over="ignore"):
        for j in range(int(lengths.max()) if n else 0):
            live = np.nonzero(lengths > j)[0]
            h[live] = (h[live] ^ data[offs[live] + j].astype(np.uint64)) * _FNV_PRIME
    return splitmix64(h, out=h)


def splitmix64(x: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """splitmix64's finalizer on uint64 values: every input bit moves every output bit, so a
    weak combination (FNV, a polynomial of word hashes) becomes a well-spread 64-bit key."""
    h = x.copy() if out is None else out
    with np.errstate(over="ignore"):
        h ^= h >> np.uint64(30)
        h *= np.uint64(0xBF58476D1CE4E5B9)
        h ^= h >> np.uint64(27)
        h *= np.uint64(0x94D049BB133111EB)
        h ^= h >> np.uint64(31)
    return h
