"""WARC reader: HTML responses -> text; other records skipped; ids; truncation."""

from __future__ import annotations

import io
import random
import zlib
from pathlib import Path

import pyarrow as pa
import pytest
from warcio.archiveiterator import ArchiveIterator
from warcio.statusandheaders import StatusAndHeaders
from warcio.warcwriter import WARCWriter

from connectors.registry import expand_inputs, read_unit
from connectors.tally import ReadTally
from curator.config import InputSpec, ReadConfig
from curator.schema import is_read_schema
from tests.connectors.damage import random_damage

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
    tables = []
    for unit in units:
        tally = ReadTally()
        tables += read_unit(unit, cfg or ReadConfig(), tally)
        # The framing layer's count: every HTML response and damaged stretch has its row.
        assert tally.rows == tally.expected and tally.lost == 0
    assert all(is_read_schema(t.schema) for t in tables)
    return pa.concat_tables(tables, promote_options="default")


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


# --- damage in the middle: resynchronise, quarantine the stretch, keep everything else -------


def members(data: bytes) -> list[tuple[int, int, bytes]]:
    """(start, end, decoded bytes) of each gzip member, found with zlib alone."""
    out, pos = [], 0
    while pos < len(data):
        d = zlib.decompressobj(zlib.MAX_WBITS | 16)
        decoded = d.decompress(data[pos:])
        end = len(data) - len(d.unused_data)
        out.append((pos, end, decoded))
        pos = end
    return out


def response_member(data: bytes, uri: str) -> tuple[int, int]:
    return next(
        (start, end)
        for start, end, decoded in members(data)
        if b"WARC-Type: response" in decoded and f"WARC-Target-URI: {uri}\r\n".encode() in decoded
    )


@pytest.mark.parametrize("damage", ["deflate", "crc"])
def test_corrupt_member_in_the_middle_of_warc_gz(tmp_path: Path, damage: str) -> None:
    path = tmp_path / "c.warc.gz"
    write_warc(path, n_articles=10)
    intact = html_responses(path)
    intact_records = read_all(path).column("record").to_pylist()
    data = bytearray(path.read_bytes())
    start, end = response_member(bytes(data), "http://example.com/a4")
    if damage == "deflate":
        for i in range(start + 20, start + 60):
            data[i] ^= 0x5A
    else:  # the member decodes without error to the right length; only its CRC says no
        data[end - 8] ^= 0xFF
    path.write_bytes(bytes(data))

    out = read_all(path)
    rows = out.to_pylist()
    bad = [r for r in rows if r["decision"] == "quarantined" and r["reason"] != "no_text_extracted"]
    assert [r["reason"] for r in bad] == ["corrupt_record"]
    assert f"compressed byte {start} " in bad[0]["error"]
    assert bad[0]["record"] == intact_records[4]  # where a4 was: ordinals do not shift
    # Every other HTML response, before and after the damage, is read as before.
    lost = [rid for rid, uri in intact if uri == "http://example.com/a4"]
    assert [r["input_id"] for r in rows if r is not bad[0]] == [
        rid for rid, _ in intact if rid not in lost
    ]
    assert out.column("record").to_pylist() == intact_records


def test_garbage_in_the_middle_of_a_plain_warc(tmp_path: Path) -> None:
    path = tmp_path / "g.warc"
    write_warc(path, n_articles=10, gzip=False)
    intact = html_responses(path)
    data = path.read_bytes()
    a4 = data.index(b"WARC/1.", data.index(b"http://example.com/a4") - 400)
    a7 = data.index(b"WARC/1.", data.index(b"http://example.com/a7") - 400)
    # Garbage lines between two records; then binary junk without a newline, glued straight
    # to the next record's WARC/1.0 line.
    junk_lines, junk_glued = b"garbage line\r\n" * 5, b"\x00\xff" * 100
    path.write_bytes(data[:a4] + junk_lines + data[a4:a7] + junk_glued + data[a7:])

    out = read_all(path)
    rows = out.to_pylist()
    damaged = [r for r in rows if r["reason"] == "corrupt_record"]
    assert len(damaged) == 2
    assert f"from byte {a4} to byte {a4 + len(junk_lines)}" in damaged[0]["error"]
    assert [r["input_id"] for r in rows if r["reason"] != "corrupt_record"] == [
        rid for rid, _ in intact
    ]


@pytest.mark.parametrize("change", ["short", "long", "not a number"])
def test_wrong_content_length_loses_that_record_only(tmp_path: Path, change: str) -> None:
    path = tmp_path / "l.warc"
    write_warc(path, n_articles=6, gzip=False)
    intact = html_responses(path)
    data = path.read_bytes()
    # The a3 response's Content-Length: too short, too long (into the next request record,
    # which is not a document), or not a number.
    header = data.rindex(b"\r\nContent-Length: ", 0, data.index(b"Headline 3")) + 2
    value_end = data.index(b"\r\n", header)
    length = int(data[header + len(b"Content-Length: ") : value_end])
    wrong = {"short": b"200", "long": str(length + 100).encode(), "not a number": b"x"}[change]
    path.write_bytes(data[:header] + b"Content-Length: " + wrong + data[value_end:])
    out = read_all(path)
    rows = out.to_pylist()
    assert [r["reason"] for r in rows].count("corrupt_record") == 1
    a3 = next(rid for rid, uri in intact if uri == "http://example.com/a3")
    assert [r["input_id"] for r in rows if r["reason"] != "corrupt_record"] == [
        rid for rid, _ in intact if rid != a3
    ]


def test_warc_gz_that_is_not_gzip_is_one_unreadable_record(tmp_path: Path) -> None:
    path = tmp_path / "junk.warc.gz"
    path.write_bytes(b"this is not gzip data\n" * 50)
    out = read_all(path).to_pylist()
    assert [r["reason"] for r in out] == ["unreadable_file"]
    assert "no WARC record found" in out[0]["error"]


def test_random_damage_to_a_warc_gz_never_keeps_wrong_text(tmp_path: Path) -> None:
    """Seeded random damage (bit flips, bursts, insertions, deletions): the file is read to its
    end, every framed record has its row, and what is kept is byte for byte what the intact file
    holds (each member's CRC is checked before its record is handed on)."""
    rng = random.Random(20)
    path = tmp_path / "f.warc.gz"
    write_warc(path, n_articles=20)
    intact = {r["input_id"]: r["text"] for r in read_all(path).to_pylist()}
    data = path.read_bytes()
    damaged = tmp_path / "d.warc.gz"
    for attempt in range(40):
        damaged.write_bytes(random_damage(data, rng))
        rows = read_all(damaged).to_pylist()  # asserts tally.rows == tally.expected
        kept = [r for r in rows if r["decision"] == "kept"]
        assert all(intact.get(r["input_id"]) == r["text"] for r in kept), attempt
        # One damaged spot costs at most the two records around it.
        assert len(kept) >= sum(t is not None for t in intact.values()) - 2, attempt
