"""LSH banding: shuffle band hashes into buckets, turn each bucket into candidate edges.

Map (one task per pass-1 file): every kept doc becomes `bands` rows (band, band_hash, doc_id,
...) written to the hash partition of (band, band_hash), so each bucket is whole in exactly one
partition. Reduce (one task per partition): a bucket of k docs yields k-1 *star* edges to its
smallest doc_id instead of k(k-1)/2 pairs; stars connect the same component, and a bucket of a
boilerplate text shared by 10^5 docs stays 10^5 edges, not 5 * 10^9.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from curator.stages.components import partition_of, write_partitions

EDGE_SCHEMA = {"src": pl.String, "dst": pl.String}  # src > dst
BUCKET = ["band", "band_hash"]


def band_rows(docs: pl.DataFrame) -> pl.DataFrame:
    """One row per (doc, band): band, band_hash, plus every other column of `docs`.

    `docs`: doc_id, source_idx, minhash_bands, and optionally text_hash / minhash_sig.
    """
    return (
        docs.with_columns(band=pl.int_ranges(0, pl.col("minhash_bands").list.len(), dtype=pl.Int32))
        .explode(["minhash_bands", "band"])
        .rename({"minhash_bands": "band_hash"})
    )


def bucket_partition(num_partitions: int) -> pl.Expr:
    return partition_of(pl.struct(BUCKET), num_partitions)


def write_band_partitions(
    docs: pl.DataFrame, num_partitions: int, step_dir: str, producer: int
) -> None:
    write_partitions(band_rows(docs), pl.struct(BUCKET), num_partitions, step_dir, producer)


def signature_jaccard(a: pl.Series, b: pl.Series) -> np.ndarray:
    """Fraction of equal signature positions per row pair: the MinHash Jaccard estimate."""
    if a.len() == 0:
        return np.zeros(0)
    x = np.stack(a.to_numpy())  # (n, num_perm) from list<uint32>
    y = np.stack(b.to_numpy())
    return (x == y).mean(axis=1)


def bucket_edges(rows: pl.DataFrame, threshold: float | None = None) -> pl.DataFrame:
    """Candidate edges (src, dst) of every bucket in `rows`, each to the bucket's min doc_id.

    `rows`: band, band_hash, doc_id, optional text_hash (then only the smallest doc_id of each
    exact group takes part: copies of one text share every bucket, so that is the group's global
    representative), optional minhash_sig (needed when `threshold` is set: an edge is kept only
    when the signatures agree on at least that fraction of positions).
    """
    if "text_hash" in rows.columns:
        rows = rows.filter(pl.col("doc_id") == pl.col("doc_id").min().over([*BUCKET, "text_hash"]))
    rows = rows.unique([*BUCKET, "doc_id"])
    rows = rows.with_columns(dst=pl.col("doc_id").min().over(BUCKET))
    edges = rows.filter(pl.col("doc_id") != pl.col("dst"))
    if threshold is not None:
        centres = rows.filter(pl.col("doc_id") == pl.col("dst")).select(
            *BUCKET, dst_sig=pl.col("minhash_sig")
        )
        edges = edges.join(centres, on=BUCKET)
        sim = signature_jaccard(edges.get_column("minhash_sig"), edges.get_column("dst_sig"))
        edges = edges.filter(pl.Series(sim >= threshold))
    return edges.select(src=pl.col("doc_id"), dst=pl.col("dst")).unique().sort("src", "dst")
