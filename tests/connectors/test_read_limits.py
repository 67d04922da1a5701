"""read.max_doc_bytes: a line, WARC body or file over it is read through, never held, and is one
too_large row; decompression bombs leave worker memory flat (measured in a fresh interpreter)."""

from __future__ import annotations

import gzip
import io
import json
from pathlib import Path

import pyarrow as pa
import pytest
from warcio.statusandheaders import StatusAndHeaders
from warcio.warcwriter import WARCWriter

from connectors.registry import expand_inputs, read_unit
from connectors.tally import ReadTally
from curator.config import InputSpec, ReadConfig
from curator.schema import is_read_schema
from tests.connectors.bombs import (
    ARTICLE,
    good_lines,
    jsonl_gz_long_line,
    jsonl_zst_zeros,
    peak_rss_growth,
    warc_gz_big_body,
)

_MB = 1 << 20
# Peak RSS growth allowed while reading a bomb. Before the caps the same bombs grew a reader by
# 1.1 GB (200 MB line), 2.1 GB (1 GB of zstd zeros) and 1.2 GB (200 MB WARC body).
_MAX_GROWTH_MB = 150


def read_all(path: Path, cfg: ReadConfig, **spec) -> tuple[pa.Table, ReadTally]:
    tally = ReadTally()
    unit = expand_inputs([InputSpec(path=str(path), **spec)])[0]
    tables = list(read_unit(unit, cfg, tally))
    assert all(is_read_schema(t.schema) for t in tables)
    out = pa.concat_tables(tables, promote_options="default")
    assert tally.rows == out.num_rows == tally.expected
    return out, tally


@pytest.mark.parametrize("suffix", [".jsonl", ".jsonl.gz", ".jsonl.zst"])
def test_line_over_max_doc_bytes_is_too_large_and_neighbours_kept(
    tmp_path: Path, suffix: str
) -> None:
    at_limit = json.dumps({"text": "b" * 88}).encode()  # exactly 100 bytes: kept
    over = json.dumps({"id": "big", "text": "c" * 500}).encode()
    assert len(at_limit) == 100
    lines = [*good_lines(2), at_limit, over, *good_lines(2, first=2)]
    raw = b"\n".join(lines) + b"\n"
    if suffix == ".jsonl.gz":
        raw = gzip.compress(raw)
    elif suffix == ".jsonl.zst":
        import zstandard

        raw = zstandard.ZstdCompressor().compress(raw)
    path = tmp_path / f"a{suffix}"
    path.write_bytes(raw)
    out, _ = read_all(path, ReadConfig(max_doc_bytes=100, batch_size=2))
    rows = out.to_pylist()
    assert [r["record"] for r in rows] == list(range(6))
    assert [r["reason"] for r in rows] == [None, None, None, "too_large", None, None]
    assert rows[2]["text"] == "b" * 88
    assert (
        "read.max_doc_bytes=100" in rows[3]["error"] and f"({len(over)} bytes)" in rows[3]["error"]
    )
    assert [r["text"] for r in rows[4:]] == ["good 2", "good 3"]


def test_last_line_over_the_cap_without_newline(tmp_path: Path) -> None:
    path = tmp_path / "a.jsonl"
    path.write_bytes(b"\n".join(good_lines(1)) + b"\n" + b"x" * 300)
    out, _ = read_all(path, ReadConfig(max_doc_bytes=100))
    assert out.column("reason").to_pylist() == [None, "too_large"]
    assert "(300 bytes)" in out.column("error")[1].as_py()


def _warc(path: Path, bodies: list[tuple[str, bytes]]) -> None:
    with open(path, "wb") as out:
        w = WARCWriter(out, gzip=path.suffix == ".gz")
        for ctype, body in bodies:
            http = StatusAndHeaders("200 OK", [("Content-Type", ctype)], protocol="HTTP/1.1")
            w.write_record(
                w.create_warc_record(
                    "http://example.com/", "response", payload=io.BytesIO(body), http_headers=http
                )
            )


@pytest.mark.parametrize("name", ["c.warc.gz", "c.warc"])
def test_warc_body_over_max_doc_bytes(tmp_path: Path, name: str) -> None:
    page = ARTICLE.format(i=0).encode()
    _warc(
        tmp_path / name,
        [
            ("text/html", page),
            ("text/html", page + b"<p>" + b"z" * 5000 + b"</p>"),
            ("image/png", b"\x89PNG" + b"\0" * 5000),  # too large too, but not a document
            ("text/html", page),
        ],
    )
    out, tally = read_all(tmp_path / name, ReadConfig(max_doc_bytes=len(page) + 200))
    assert out.column("record").to_pylist() == [0, 1, 3]
    assert out.column("reason").to_pylist() == [None, "too_large", None]
    assert "raise read.max_doc_bytes" in out.column("error")[1].as_py()
    assert (tally.framed, tally.skipped) == (4, 1)


def test_warc_content_encoding_bomb_is_too_large(tmp_path: Path) -> None:
    """A small gzip Content-Encoding payload that inflates past the cap once decoded."""
    bomb = gzip.compress(b"<html><body><p>" + b"a" * (4 * _MB))
    path = tmp_path / "enc.warc"
    with open(path, "wb") as out:
        w = WARCWriter(out, gzip=False)
        http = StatusAndHeaders(
            "200 OK",
            [("Content-Type", "text/html"), ("Content-Encoding", "gzip")],
            protocol="HTTP/1.1",
        )
        w.write_record(
            w.create_warc_record(
                "http://example.com/", "response", payload=io.BytesIO(bomb), http_headers=http
            )
        )
    out, _ = read_all(path, ReadConfig(max_doc_bytes=_MB))
    assert out.column("reason").to_pylist() == ["too_large"]
    assert "decoded HTTP payload" in out.column("error")[0].as_py()


def test_text_and_html_files_capped_by_max_doc_bytes(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_bytes(b"w" * 500)
    (tmp_path / "b.html").write_bytes(b"<html><body><p>" + b"w" * 500 + b"</p></body></html>")
    for name in ("a.txt", "b.html"):
        out, tally = read_all(tmp_path / name, ReadConfig(max_doc_bytes=100))
        assert out.column("reason").to_pylist() == ["too_large"]
        assert "read.max_doc_bytes=100" in out.column("error")[0].as_py()
        assert tally.framed == 1
    # The bound that is hit first is the one named: 4 bytes/char of max_doc_chars for text.
    out, _ = read_all(tmp_path / "a.txt", ReadConfig(max_doc_bytes=1000, max_doc_chars=10))
    assert "max_doc_chars=10" in out.column("error")[0].as_py()


# --- bombs, built by streaming and read in a fresh interpreter -------------------------------


def _warm(tmp_path: Path, name: str) -> Path:
    path = tmp_path / name
    data = b"\n".join(good_lines(3)) + b"\n"
    if name.endswith(".gz"):
        data = gzip.compress(data)
    else:
        import zstandard

        data = zstandard.ZstdCompressor().compress(data)
    path.write_bytes(data)
    return path


def _check_bomb(got: dict, bomb_index: int, n_rows: int) -> None:
    assert got["growth_mb"] < _MAX_GROWTH_MB, got["growth_mb"]
    reasons = [r["reason"] for r in got["rows"]]
    assert len(reasons) == n_rows
    assert reasons[bomb_index] == "too_large"
    assert reasons.count(None) == n_rows - 1  # everything before and after the bomb is kept


def test_gzip_line_bomb_memory_is_bounded(tmp_path: Path) -> None:
    bomb = jsonl_gz_long_line(tmp_path / "bomb.jsonl.gz", 200 * _MB)
    _check_bomb(peak_rss_growth(bomb, _warm(tmp_path, "w.jsonl.gz")), bomb_index=2, n_rows=5)


def test_zstd_zeros_bomb_memory_is_bounded(tmp_path: Path) -> None:
    bomb = jsonl_zst_zeros(tmp_path / "bomb.jsonl.zst", 1024 * _MB)
    assert bomb.stat().st_size < 64 * 1024  # 1 GB in one zstd frame of a few dozen KB
    _check_bomb(peak_rss_growth(bomb, _warm(tmp_path, "w.jsonl.zst")), bomb_index=0, n_rows=3)


def test_warc_body_bomb_memory_is_bounded(tmp_path: Path) -> None:
    bomb = warc_gz_big_body(tmp_path / "bomb.warc.gz", 200 * _MB)
    warm = warc_gz_big_body(tmp_path / "warm.warc.gz", 100)
    got = peak_rss_growth(bomb, warm)
    _check_bomb(got, bomb_index=1, n_rows=4)
    assert [r["input_id"] for r in got["rows"]] == [
        "<urn:uuid:a0>",
        "<urn:uuid:bomb>",
        "<urn:uuid:a2>",
        "<urn:uuid:a3>",
    ]
