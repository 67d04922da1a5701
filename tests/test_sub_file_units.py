"""A run whose large files are cut into ranges (read.unit_bytes) decides exactly as the run that
reads each file whole: same doc_ids, decisions, duplicates and tokens; only the unit files
differ. Ranges of one file are separate resumable units."""

from __future__ import annotations

import gzip
import json

import polars as pl

from curator.executor import run_curate
from tests.corpus import build_corpus
from tests.test_curate_e2e import curate_config


def test_ranges_decide_as_whole_files(ray_cluster, tmp_path):
    corpus = build_corpus(tmp_path / "corpus", n_files=2)
    for gz in corpus.root.glob("part-*.jsonl.gz"):  # plain files: those are cut
        gz.with_suffix("").write_bytes(gzip.decompress(gz.read_bytes()))
        gz.unlink()
    whole = tmp_path / "whole"
    cut = tmp_path / "cut"
    run_curate(curate_config(corpus.root, whole, **{"read.unit_bytes": 0}))
    stats = run_curate(curate_config(corpus.root, cut, **{"read.unit_bytes": 4096}))

    n_units = len(list((cut / "_done" / "pass1").glob("*.json")))
    assert n_units > len(list((whole / "_done" / "pass1").glob("*.json")))
    m_whole = pl.read_parquet(whole / "manifest" / "*.parquet").sort("doc_id")
    m_cut = pl.read_parquet(cut / "manifest" / "*.parquet").sort("doc_id")
    # language ID's float32 block matmul sums in an order that depends on the batch's size:
    # its score may move in the 7th digit; everything else is exact
    assert m_cut.drop("lang_score").equals(m_whole.drop("lang_score"))
    gap = (m_cut["lang_score"] - m_whole["lang_score"]).abs().max()
    assert gap is None or gap < 1e-5
    s_whole = pl.read_parquet(whole / "shards" / "*" / "*.parquet").sort("doc_id")
    s_cut = pl.read_parquet(cut / "shards" / "*" / "*.parquet").sort("doc_id")
    assert s_cut.equals(s_whole)
    assert stats == {**stats, **{k: v for k, v in json.loads(
        (whole / "stats.json").read_text()).items() if k in ("records", "kept", "dropped")}}
