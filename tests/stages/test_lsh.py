"""LSH banding: band rows, bucket partitioning, star edges, verification."""

from __future__ import annotations

import polars as pl

from curator.stages.lsh import band_rows, bucket_edges, bucket_partition


def rows(spec: list[tuple[int, int, str]], **extra) -> pl.DataFrame:
    band, h, doc = zip(*spec, strict=True)
    return pl.DataFrame(
        {"band": list(band), "band_hash": list(h), "doc_id": list(doc), **extra},
        schema_overrides={"band": pl.Int32, "band_hash": pl.UInt64},
    )


def edges_of(df: pl.DataFrame) -> list[tuple[str, str]]:
    return list(zip(df["src"], df["dst"], strict=True))


def test_band_rows_one_row_per_band_with_index():
    docs = pl.DataFrame(
        {"doc_id": ["a", "b"], "source_idx": [0, 1], "minhash_bands": [[10, 11, 12], [20, 21, 22]]},
        schema_overrides={"minhash_bands": pl.List(pl.UInt64)},
    )
    got = band_rows(docs).sort("doc_id", "band")
    assert got["band"].to_list() == [0, 1, 2, 0, 1, 2]
    assert got["band_hash"].to_list() == [10, 11, 12, 20, 21, 22]
    assert got["source_idx"].to_list() == [0, 0, 0, 1, 1, 1]


def test_same_hash_in_different_bands_is_not_a_bucket():
    got = bucket_edges(rows([(0, 7, "a"), (1, 7, "b")]))
    assert got.height == 0


def test_star_edges_to_bucket_minimum_deduplicated_across_bands():
    got = bucket_edges(
        rows([(0, 1, "c"), (0, 1, "a"), (0, 1, "b"), (1, 5, "c"), (1, 5, "a"), (2, 9, "d")])
    )
    assert edges_of(got) == [("b", "a"), ("c", "a")]


def test_exact_copies_only_their_smallest_doc_takes_part():
    df = rows([(0, 1, "b"), (0, 1, "a"), (0, 1, "c")], text_hash=["h1", "h1", "h2"])
    # a and b are the same text: b is an exact duplicate, only a and c form an edge.
    assert edges_of(bucket_edges(df)) == [("c", "a")]


def test_threshold_verifies_signature_agreement():
    sig = {"a": [1, 2, 3, 4], "b": [1, 2, 3, 9], "c": [1, 8, 8, 8]}
    df = rows([(0, 1, "a"), (0, 1, "b"), (0, 1, "c")], minhash_sig=[sig["a"], sig["b"], sig["c"]])
    assert edges_of(bucket_edges(df, threshold=0.7)) == [("b", "a")]
    assert edges_of(bucket_edges(df, threshold=0.25)) == [("b", "a"), ("c", "a")]
    assert edges_of(bucket_edges(df)) == [("b", "a"), ("c", "a")]


def test_bucket_partition_is_a_function_of_band_and_hash():
    df = rows([(0, 1, "a"), (0, 1, "b"), (3, 2, "c"), (3, 2, "d")] * 3)
    parts = (
        df.with_columns(bucket_partition(7))
        .group_by("band", "band_hash")
        .agg(pl.col("_part").n_unique().alias("n"), pl.col("_part").first().alias("p"))
    )
    assert parts["n"].to_list() == [1, 1]
    assert all(0 <= p < 7 for p in parts["p"])
