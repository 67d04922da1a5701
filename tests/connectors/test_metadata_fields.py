"""`read.metadata_fields`: which of an input's own fields each document keeps, the same way for
jsonl (both parse paths), parquet, DuckDB and WARC; extracted pages name their extractor."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from curator.config import ConfigError, CurateConfig, ReadConfig, load_model
from tests.connectors.test_warc_reader import read_all, write_warc

LINES = [
    {"id": "a", "text": "first document", "url": "https://a.example/1", "date": "2024-01-02",
     "metadata": {"source": "cc", "rank": 2}, "crawl_id": "CC-2024-10", "lang_hint": "en"},
    {"id": "b", "text": "second document", "url": "https://b.example/2", "crawl_id": 7},
    {"id": "c", "text": "third document"},
]


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def metadata(table: pa.Table) -> list[dict | None]:
    if "metadata" not in table.column_names:
        return [None] * table.num_rows
    return [None if m is None else json.loads(m) for m in table.column("metadata").to_pylist()]


def column(table: pa.Table, name: str) -> list:
    return table.column(name).to_pylist() if name in table.column_names else [None] * len(table)


def test_default_keeps_url_date_and_the_metadata_object(tmp_path):
    out = read_all(write_jsonl(tmp_path / "d.jsonl", LINES))
    assert column(out, "url") == ["https://a.example/1", "https://b.example/2", None]
    assert column(out, "date") == ["2024-01-02", None, None]
    assert metadata(out) == [{"source": "cc", "rank": 2}, None, None]  # crawl_id not asked for


def test_extra_fields_join_the_metadata_object_on_every_path(tmp_path):
    cfg = ReadConfig(metadata_fields=["url", "metadata", "crawl_id"])
    want = [{"source": "cc", "rank": 2, "crawl_id": "CC-2024-10"}, {"crawl_id": 7}, None]
    jsonl = read_all(write_jsonl(tmp_path / "d.jsonl", LINES), cfg)
    assert metadata(jsonl) == want
    assert column(jsonl, "date") == [None] * 3  # date not asked for
    # lines without any metadata key take the vectorized parse: the extra field still counts
    plain = [{k: v for k, v in r.items() if k != "metadata"} for r in LINES]
    fast = read_all(write_jsonl(tmp_path / "p.jsonl", plain), cfg)
    assert metadata(fast) == [{"crawl_id": "CC-2024-10"}, {"crawl_id": 7}, None]

    table = pa.table({
        "id": ["a", "b", "c"], "text": ["x one", "x two", "x three"],
        "url": ["https://a.example/1", None, None],
        "metadata": pa.array([{"source": "cc"}, None, None],
                             pa.struct([("source", pa.string())])),
        "crawl_id": ["CC-1", "CC-2", None], "other": [1, 2, 3]})
    pq.write_table(table, tmp_path / "t.parquet")
    parquet = read_all(tmp_path / "t.parquet", cfg)
    assert metadata(parquet) == [{"source": "cc", "crawl_id": "CC-1"}, {"crawl_id": "CC-2"}, None]
    assert column(parquet, "url") == ["https://a.example/1", None, None]

    db = tmp_path / "d.duckdb"
    with duckdb.connect(str(db)) as con:
        con.execute("CREATE TABLE t AS SELECT * FROM read_parquet(?)",
                    [str(tmp_path / "t.parquet")])
    duck = read_all(db, cfg, format="duckdb", query="SELECT * FROM t ORDER BY id")
    assert metadata(duck) == metadata(parquet)


def test_an_empty_selection_keeps_nothing(tmp_path):
    out = read_all(write_jsonl(tmp_path / "d.jsonl", LINES), ReadConfig(metadata_fields=[]))
    assert column(out, "url") == column(out, "date") == metadata(out) == [None] * 3


def test_extracted_pages_name_their_extractor(tmp_path):
    uris = write_warc(tmp_path / "p.warc.gz", n_articles=2)
    warc = read_all(tmp_path / "p.warc.gz", html_extractor="resiliparse")
    assert sorted(column(warc, "url")) == sorted(uris)
    for meta in metadata(warc):
        assert meta["extractor"] == "resiliparse" and meta["warc_record_id"].startswith("<urn:")
    only_url = read_all(tmp_path / "p.warc.gz", ReadConfig(metadata_fields=["url"]))
    assert metadata(only_url) == [{"extractor": "resiliparse"}] * len(uris)
    assert column(only_url, "date") == [None] * len(uris)

    page = "<html><body><article><p>" + "A paragraph of real words. " * 20 + "</p></article>"
    rows = [{"id": "h", "html": page + "</body></html>", "url": "https://h.example/"}]
    html = read_all(write_jsonl(tmp_path / "h.jsonl", rows), html_field="html",
                    html_extractor="trafilatura")
    assert metadata(html) == [{"extractor": "trafilatura"}]
    (tmp_path / "page.html").write_text(page + "</body></html>")
    assert metadata(read_all(tmp_path / "page.html")) == [{"extractor": "resiliparse"}]


def test_an_empty_field_name_is_named_before_any_work(tmp_path):
    with pytest.raises(ConfigError, match="read.metadata_fields holds empty names"):
        load_model(CurateConfig, base={"inputs": [{"path": str(tmp_path)}],
                                       "output": str(tmp_path / "r"),
                                       "read": {"metadata_fields": ["url", " "]}})
