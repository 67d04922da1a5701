"""Exact deduplication: a content hash per document, and the global grouping by that hash.

`ExactHash` runs in pass 1 next to the other per-document steps. The text it hashes is the
`text` column as it stands at that point of the chain, i.e. after the normalize stage (NFC,
control characters stripped), so documents differing only in what normalize removes are exact
duplicates. The grouping (`exact_duplicates`) runs in the dedup pass over one hash partition:
every copy of a text lands in the same partition, so a partition decides its groups alone.
"""

from __future__ import annotations

import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
import xxhash

from curator.config import DedupConfig
from curator.step import alive_mask, set_column

EXACT_DUPLICATE = "exact_duplicate"


def text_hashes(texts: list[str | None]) -> list[str | None]:
    # xxh3_128 is not a pyarrow/polars column kernel (polars' own hash is 64-bit and not stable
    # across versions), so this is a per-document call; it runs at several GB/s inside xxhash.
    return [None if t is None else xxhash.xxh3_128_hexdigest(t.encode("utf-8")) for t in texts]


class ExactHash:
    """Adds `text_hash`: hex xxh3_128 of the normalized text; null for rows not alive."""

    name = "exact_hash"

    def __init__(self, cfg: DedupConfig) -> None:
        self.cfg = cfg

    def __call__(self, table: pa.Table) -> pa.Table:
        texts = pc.if_else(alive_mask(table), table.column("text"), None)
        hashes = pa.array(text_hashes(texts.to_pylist()), type=pa.string())
        return set_column(table, "text_hash", hashes)


def exact_duplicates(rows: pl.DataFrame) -> pl.DataFrame:
    """Non-representative members of each text_hash group.

    `rows`: doc_id, text_hash, source_idx (one hash partition, all copies of each hash present).
    Returns doc_id, representative (min doc_id of the group), source_idx, sorted by doc_id.
    """
    rep = pl.col("doc_id").min().over("text_hash")
    return (
        rows.with_columns(representative=rep)
        .filter(pl.col("doc_id") != pl.col("representative"))
        .select("doc_id", "representative", "source_idx")
        .sort("doc_id")
    )
