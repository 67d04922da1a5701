"""WARC reader: HTML responses -> text; other records skipped; ids; truncation."""

from __future__ import annotations

import io
from pathlib import Path

import pyarrow as pa
import pytest
from warcio.archiveiterator import ArchiveIterator
from warcio.statusandheaders import StatusAndHeaders
from warcio.warcwriter import WARCWriter

from connectors.registry import expand_inputs, read_unit
from curator.config import InputSpec, ReadConfig
from curator.schema import DOC_SCHEMA

ARTICLE = (
    "<html><head><title>T{i}</title><script>var x = 1;</script></head><body>"
    "<nav>Home | About</nav><article><h1>Headline {i}</h1>"
    "<p>The quick brown fox number {i} jumps over the lazy dog near the river bank.</p>"
    "<p>A second paragraph keeps the extractor convinced this is the main content.</p>"
    "</article></body></html>"
)


def write_warc(path: Path, n_articles: int = 3, gzip: bool = True) -> list[str]:
    """Articles, a script-only page, a PNG response, a request and a warcinfo record.

    Returns the target URIs of the HTML responses, in file order."""
    uris = []
    with open(path, "wb") as out:
        w = WARCWriter(out, gzip=gzip)
        w.write_record(w.create_warcinfo_record("x.warc", {"software": "test"}))

        def response(uri: str, body: bytes, ctype: str) -> None:
            http = StatusAndHeaders("200 OK", [("Content-Type", ctype)], protocol="HTTP/1.1")
            w.write_record(
                w.create_warc_record(uri, "response", payload=io.BytesIO(body), http_headers=http)
            )

        for i in range(n_articles):
            uri = f"http://example.com/a{i}"
            w.write_record(w.create_warc_record(uri, "request", payload=io.BytesIO(b"GET /")))
            response(uri, ARTICLE.format(i=i).encode(), "text/html; charset=utf-8")
            uris.append(uri)
            if i == 0:
                response("http://example.com/logo.png", b"\x89PNG....", "image/png")
        response("http://example.com/empty", b"<html><script>only()</script></html>", "text/html")
        uris.append("http://example.com/empty")
    return uris


def read_all(path: Path | str, cfg: ReadConfig | None = None, **spec) -> pa.Table:
    units = expand_inputs([InputSpec(path=str(path), **spec)])
    tables = [t for u in units for t in read_unit(u, cfg or ReadConfig())]
    assert all(t.schema == DOC_SCHEMA for t in tables)
    return pa.concat_tables(tables)


def html_responses(path: Path) -> list[tuple[str, str]]:
    """Independent count with warcio alone: (record id, target uri) of HTML responses."""
    with open(path, "rb") as f:
        return [
            (
                r.rec_headers.get_header("WARC-Record-ID"),
                r.rec_headers.get_header("WARC-Target-URI"),
            )
            for r in ArchiveIterator(f)
            if r.rec_type == "response"
            and r.http_headers.get_header("Content-Type", "").startswith("text/html")
        ]


@pytest.mark.parametrize("extractor", ["resiliparse", "trafilatura"])
def test_round_trip_warc_gz(tmp_path: Path, extractor: str) -> None:
    path = tmp_path / "crawl.warc.gz"
    write_warc(path)
    out = read_all(path, ReadConfig(batch_size=2), html_extractor=extractor)
    expected = html_responses(path)
    assert out.num_rows == len(expected) == 4  # conservation: every HTML response, nothing else
    assert out.column("input_id").to_pylist() == [rid for rid, _ in expected]
    # response ordinals: the PNG response (ordinal 1) is counted but is not a document
    assert out.column("record").to_pylist() == [0, 2, 3, 4]
    rows = out.to_pylist()
    for i, row in enumerate(rows[:3]):
        assert row["decision"] == "kept"
        assert f"quick brown fox number {i} jumps" in row["text"]
        assert "var x" not in row["text"]
    assert rows[3]["reason"] == "no_text_extracted" and rows[3]["text"] is None


def test_target_uri_as_id_and_uncompressed_warc(tmp_path: Path) -> None:
    path = tmp_path / "crawl.warc"
    uris = write_warc(path, gzip=False)
    out = read_all(path, id_field="WARC-Target-URI")
    assert out.column("input_id").to_pylist() == uris


def test_too_large_extracted_text(tmp_path: Path) -> None:
    path = tmp_path / "c.warc.gz"
    write_warc(path, n_articles=1)
    out = read_all(path, ReadConfig(max_doc_chars=20))
    assert out.column("reason").to_pylist() == ["too_large", "no_text_extracted"]


def test_truncated_warc_gz(tmp_path: Path) -> None:
    path = tmp_path / "cut.warc.gz"
    write_warc(path, n_articles=40)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    out = read_all(path)
    last = out.to_pylist()[-1]
    assert last["reason"] == "truncated_file"
    kept = out.column("decision").to_pylist().count("kept")
    assert 5 < kept < 40
    assert last["record"] == out.column("record").to_pylist()[-2] + 1


def test_unreadable_warc(tmp_path: Path) -> None:
    path = tmp_path / "junk.warc"
    path.write_bytes(b"GET / HTTP/1.1\r\nnot a warc\r\n\r\n")
    out = read_all(path).to_pylist()
    assert [r["reason"] for r in out] == ["unreadable_file"]
