"""Exact dedup: content hash column and the grouping of one hash partition."""

from __future__ import annotations

import polars as pl
import pyarrow as pa
import xxhash

from curator.config import DedupConfig
from curator.stages.dedup_exact import ExactHash, exact_duplicates


def test_text_hash_is_xxh3_128_hex_of_text_and_null_when_not_alive():
    t = pa.table(
        {
            "text": ["same text", "same text", "other", None, "same text"],
            "decision": ["kept", "kept", "kept", "quarantined", "dropped"],
        }
    )
    got = ExactHash(DedupConfig())(t).column("text_hash").to_pylist()
    assert got[0] == got[1] == xxhash.xxh3_128_hexdigest(b"same text")
    assert len(got[0]) == 32 and got[2] != got[0]
    assert got[3] is None and got[4] is None


def test_text_hash_distinguishes_case_and_whitespace():
    # Exact means exact after normalize: simplification belongs to near dedup only.
    t = pa.table({"text": ["Hello world", "hello world", "Hello  world"], "decision": ["kept"] * 3})
    got = ExactHash(DedupConfig())(t).column("text_hash").to_pylist()
    assert len(set(got)) == 3


def test_text_hash_replaces_existing_column_and_handles_empty_table():
    t = pa.table({"text": pa.array([], pa.string()), "decision": pa.array([], pa.string())})
    out = ExactHash(DedupConfig())(t)
    assert out.num_rows == 0 and out.column("text_hash").type == pa.string()
    again = ExactHash(DedupConfig())(
        ExactHash(DedupConfig())(pa.table({"text": ["a"], "decision": ["kept"]}))
    )
    assert again.column_names.count("text_hash") == 1


def test_exact_duplicates_keep_min_doc_id_per_group():
    rows = pl.DataFrame(
        {
            "doc_id": ["d3", "d1", "d2", "d9", "d5", "d4"],
            "text_hash": ["h1", "h1", "h1", "h2", "h2", "h3"],
            "source_idx": [0, 1, 2, 0, 3, 1],
        }
    )
    got = exact_duplicates(rows)
    assert got.to_dicts() == [
        {"doc_id": "d2", "representative": "d1", "source_idx": 2},
        {"doc_id": "d3", "representative": "d1", "source_idx": 0},
        {"doc_id": "d9", "representative": "d5", "source_idx": 0},
    ]
    # Row order of the partition does not matter.
    assert exact_duplicates(rows.reverse()).equals(got)
