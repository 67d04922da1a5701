"""A run whose large files are cut into ranges (read.unit_bytes) decides exactly as the run that
reads each file whole: same doc_ids, decisions, duplicates and tokens; only the unit files
differ. Ranges of one file are separate resumable units."""

from __future__ import annotations

import gzip
import io
import json
import random
from pathlib import Path

import polars as pl

from curator.executor import run_curate
from tests.connectors.test_warc_reader import response_member
from tests.corpus import build_corpus, near_copy, real_paragraphs
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
    assert_same_run(whole, cut)
    assert stats == {**stats, **{k: v for k, v in json.loads(
        (whole / "stats.json").read_text()).items() if k in ("records", "kept", "dropped")}}


def assert_same_run(whole: Path, cut: Path) -> None:
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


def write_pages_warc(path: Path, n_pages: int = 60) -> None:
    """Real prose pages (some exact and near copies of others), each after its request record,
    one gzip member per record as crawlers write them."""
    from warcio.statusandheaders import StatusAndHeaders
    from warcio.warcwriter import WARCWriter

    paras, rng = real_paragraphs(), random.Random(3)

    def prose(i: int) -> str:
        return " ".join(paras[(3 * i + k) % len(paras)] for k in range(3))

    with open(path, "wb") as out:
        w = WARCWriter(out, gzip=True)
        for i in range(n_pages):
            body = prose(i)
            if i % 10 == 9:
                body = prose(i - 5)  # an exact copy of an earlier page
            elif i % 10 == 7:
                body = near_copy(prose(i - 4), rng)
            html = f"<html><body><article><h1>Page {i}</h1><p>{body}</p></article></body></html>"
            uri = f"http://example.com/p{i}"
            w.write_record(w.create_warc_record(uri, "request", payload=io.BytesIO(b"GET /")))
            http = StatusAndHeaders("200 OK", [("Content-Type", "text/html; charset=utf-8")],
                                    protocol="HTTP/1.1")
            w.write_record(w.create_warc_record(
                uri, "response", payload=io.BytesIO(html.encode()), http_headers=http))


def test_warc_gz_ranges_decide_as_the_whole_file(ray_cluster, tmp_path):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    path = corpus / "crawl.warc.gz"
    write_pages_warc(path)
    data = bytearray(path.read_bytes())
    start, _ = response_member(bytes(data), "http://example.com/p31")
    data[start + 30] ^= 0xFF  # a damaged member inside a range: one corrupt_record row
    path.write_bytes(bytes(data))
    whole, cut = tmp_path / "whole", tmp_path / "cut"
    run_curate(curate_config(corpus, whole, **{"read.unit_bytes": 0}))
    run_curate(curate_config(corpus, cut, **{"read.unit_bytes": len(data) // 4}))

    assert len(list((whole / "_done" / "pass1").glob("*.json"))) == 1
    assert len(list((cut / "_done" / "pass1").glob("*.json"))) >= 3
    assert_same_run(whole, cut)
    m = pl.read_parquet(cut / "manifest" / "*.parquet")
    assert m.filter(pl.col("reason") == "corrupt_record").height == 1
    assert m.filter(pl.col("duplicate_of").is_not_null()).height >= 6  # across ranges too


def test_single_stream_gzip_spilled_into_units_decides_as_the_whole_file(ray_cluster, tmp_path):
    corpus = build_corpus(tmp_path / "corpus", n_files=1, bad_inputs=False)
    (path,) = corpus.root.glob("*.jsonl.gz")
    lines = gzip.decompress(path.read_bytes()).split(b"\n")
    lines.insert(len(lines) // 2, b'{"id": "bad-json", "text": "unterminated')
    raw = b"\n".join(lines)
    data = gzip.compress(raw)  # one gzip member: no place to enter it but the start
    path.write_bytes(data[: len(data) - 200])  # cut short: the last unit ends truncated_file
    unit_bytes = len(raw) // 5
    assert len(data) > unit_bytes
    whole, cut = tmp_path / "whole", tmp_path / "cut"
    run_curate(curate_config(corpus.root, whole, **{"read.unit_bytes": 0}))
    run_curate(curate_config(corpus.root, cut, **{"read.unit_bytes": unit_bytes}))

    assert len(list((whole / "_done" / "pass1").glob("*.json"))) == 1
    assert len(list((cut / "_done" / "pass1").glob("*.json"))) >= 3
    assert_same_run(whole, cut)
    m = pl.read_parquet(cut / "manifest" / "*.parquet")
    assert set(m["source"]) == {str(path)}
    assert m.filter(pl.col("reason") == "malformed_json").height == 1
    assert m.filter(pl.col("reason") == "truncated_file").height == 1
    # pass 1 read the chunks: they are deleted, their index (the units of a resume) stays
    assert not list((cut / "_work" / "spill").glob("*/part-*"))
    assert len(list((cut / "_work" / "spill").glob("*/index.json"))) == 1
