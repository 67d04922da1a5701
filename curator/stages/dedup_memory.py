"""Near-duplicate removal for one collection held in memory (a selection pool, a test fixture).

The same MinHash signatures and LSH bands as the distributed dedup (curator/stages/dedup.py),
without its shuffle files: `curator.stages.lsh.bucket_edges` turns bucket collisions into star
edges to the bucket's first document, kept when their signature Jaccard estimate reaches the
threshold, and the connected components are found here by min-label propagation. Of each
component the first document (lowest index) is the one kept; every other member is flagged as
a copy.

`SELECTION_DEDUP` is tuned for copies with a few words changed (1 word in 30 swapped has a
5-word-shingle Jaccard of ~0.7, where the curate default of 14x8 bands catches ~60%): 3-word
shingles put such a copy at ~0.8, and 20 bands of 5 rows catch that with probability > 0.99,
while the 0.6 signature check drops the chance collisions of unrelated text.
"""

from __future__ import annotations

import numpy as np
import polars as pl
import pyarrow as pa

from curator.config import DedupConfig
from curator.stages.lsh import band_rows, bucket_edges
from curator.stages.minhash import MinHashSignature, band_hashes

SELECTION_DEDUP = DedupConfig(shingle_size=3, bands=20, rows=5, threshold=0.6)


def component_labels(n: int, edges: np.ndarray) -> np.ndarray:
    """Smallest document index of each document's connected component."""
    labels = np.arange(n, dtype=np.int64)
    if len(edges) == 0:
        return labels
    u, v = edges[:, 0], edges[:, 1]
    while True:
        low = np.minimum(labels[u], labels[v])
        before = labels.copy()
        np.minimum.at(labels, u, low)
        np.minimum.at(labels, v, low)
        labels = labels[labels]  # pointer jumping: follow labels to their own label
        if np.array_equal(labels, before):
            return labels


def near_duplicate_copies(texts: pa.Array | list[str], cfg: DedupConfig = SELECTION_DEDUP
                          ) -> np.ndarray:
    """Boolean mask: True for every document whose near-duplicate cluster has an earlier one."""
    texts = pa.array(texts, pa.string()) if isinstance(texts, list) else texts
    n = len(texts)
    if n == 0:
        return np.zeros(0, bool)
    sig = MinHashSignature(cfg).signatures(texts)
    docs = pl.DataFrame({
        "doc_id": np.arange(n, dtype=np.int64),
        "minhash_bands": band_hashes(sig, cfg.bands, cfg.rows),
        "minhash_sig": sig,
    }).cast({"minhash_bands": pl.List(pl.UInt64), "minhash_sig": pl.List(pl.UInt32)})
    edges = bucket_edges(band_rows(docs), cfg.threshold)
    pairs = edges.select("src", "dst").to_numpy().astype(np.int64).reshape(-1, 2)
    return component_labels(n, pairs) != np.arange(n)
