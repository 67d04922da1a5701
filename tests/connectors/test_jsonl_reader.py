"""JSON Lines reader: round trips per compression, one test per quarantine code, truncation."""

from __future__ import annotations

import bz2
import gzip
import json
import zlib
from pathlib import Path

import pyarrow as pa
import pytest
import zstandard

from connectors.registry import expand_inputs, read_unit
from curator.config import InputSpec, ReadConfig
from curator.doc_ids import doc_id
from curator.schema import DOC_SCHEMA, is_read_schema

COMPRESS = {
    ".jsonl": lambda b: b,
    ".jsonl.gz": gzip.compress,
    ".json.gz": gzip.compress,
    ".jsonl.zst": lambda b: zstandard.ZstdCompressor().compress(b),
    ".jsonl.bz2": bz2.compress,
}


def read_all(path: Path | str, cfg: ReadConfig | None = None, **spec) -> pa.Table:
    units = expand_inputs([InputSpec(path=str(path), **spec)])
    tables = [t for u in units for t in read_unit(u, cfg or ReadConfig())]
    for t in tables:
        assert is_read_schema(t.schema)
    if not tables:
        return DOC_SCHEMA.empty_table()
    return pa.concat_tables(tables, promote_options="default")


def write_lines(path: Path, lines: list[bytes]) -> Path:
    suffix = "".join(path.suffixes)
    path.write_bytes(COMPRESS[suffix](b"".join(line + b"\n" for line in lines)))
    return path


def docs(n: int) -> list[bytes]:
    return [
        json.dumps({"id": f"d{i}", "text": f"document number {i} \u00e9", "x": {"y": [i]}}).encode()
        for i in range(n)
    ]


@pytest.mark.parametrize("suffix", list(COMPRESS))
def test_round_trip_each_compression(tmp_path: Path, suffix: str) -> None:
    path = write_lines(tmp_path / f"data{suffix}", docs(25))
    out = read_all(path, ReadConfig(batch_size=10))
    assert out.column("text").to_pylist() == [f"document number {i} \u00e9" for i in range(25)]
    assert out.column("input_id").to_pylist() == [f"d{i}" for i in range(25)]
    assert out.column("doc_id").to_pylist() == [doc_id(str(path), r) for r in range(25)]
    assert out.column("record").to_pylist() == list(range(25))
    assert set(out.column("decision").to_pylist()) == {"kept"}
    assert out.column("source").to_pylist() == [str(path)] * 25
    assert out.column("n_chars").to_pylist() == [
        len(f"document number {i} \u00e9") for i in range(25)
    ]


def test_batches_follow_batch_size_in_record_order(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "a.jsonl", docs(20))
    unit = expand_inputs([InputSpec(path=str(path))])[0]
    tables = list(read_unit(unit, ReadConfig(batch_size=7)))
    assert [t.num_rows for t in tables] == [7, 7, 6]
    records = pa.concat_tables(tables, promote_options="default").column("record")
    assert records.to_pylist() == list(range(20))


def test_max_batch_bytes_cuts_batches_early(tmp_path: Path) -> None:
    lines = [json.dumps({"text": "x" * 1000}).encode() for _ in range(10)]
    unit = expand_inputs([InputSpec(path=str(write_lines(tmp_path / "a.jsonl", lines)))])[0]
    tables = list(read_unit(unit, ReadConfig(batch_size=100, max_batch_bytes=2500)))
    assert len(tables) == 4 and sum(t.num_rows for t in tables) == 10


def test_input_id_absent_or_int_and_doc_id_from_source_and_record(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "a.jsonl", [b'{"text": "a b"}', b'{"id": 7, "text": "c d"}'])
    out = read_all(path)
    assert out.column("input_id").to_pylist() == [None, "7"]
    assert out.column("doc_id").to_pylist() == [doc_id(str(path), r) for r in (0, 1)]
    # id_field=None ignores the input's ids altogether
    out = read_all(path, id_field=None)
    assert out.column("input_id").to_pylist() == [None, None]


def test_int_ids_on_fast_and_slow_paths_agree(tmp_path: Path) -> None:
    lines = [json.dumps({"id": i, "text": f"t{i}"}).encode() for i in range(9)]
    out = read_all(write_lines(tmp_path / "a.jsonl", lines), ReadConfig(batch_size=3))
    assert out.column("input_id").to_pylist() == [str(i) for i in range(9)]


def test_blank_lines_are_not_records_and_bom_is_ignored(tmp_path: Path) -> None:
    path = tmp_path / "a.jsonl"
    path.write_bytes(b'\xef\xbb\xbf{"text": "first"}\n\n   \n{"text": "second"}')
    out = read_all(path)
    assert out.column("text").to_pylist() == ["first", "second"]
    assert out.column("record").to_pylist() == [0, 3]


BAD_LINES = {
    "malformed_json": [b'{"text": "unterminated', b'{"text": "a"}{"text": "b"}', b"[1, 2]"],
    "invalid_utf8": [b'{"text": "caf\xe9 latin-1"}', b'{"text": "lone \\ud800 surrogate"}'],
    "nul_bytes": [b'{"text": "a\\u0000b"}'],
    "empty_text": [b'{"text": ""}', b'{"text": " \\n\\t "}'],
    "missing_text_field": [b'{"body": "elsewhere"}', b'{"text": null}'],
    "text_not_string": [b'{"text": 5}', b'{"text": ["a", "b"]}', b'{"text": {"k": "v"}}'],
    "too_large": [json.dumps({"text": "y" * 101}).encode()],
}


@pytest.mark.parametrize("reason", list(BAD_LINES))
def test_each_quarantine_code_keeps_good_neighbours(tmp_path: Path, reason: str) -> None:
    good = [json.dumps({"id": f"g{i}", "text": f"good {i}"}).encode() for i in range(3)]
    bad = BAD_LINES[reason]
    lines = [good[0], *bad, good[1], good[2]]
    out = read_all(write_lines(tmp_path / "a.jsonl", lines), ReadConfig(max_doc_chars=100))
    assert out.num_rows == len(lines)
    rows = out.to_pylist()
    assert [r["reason"] for r in rows] == [None, *[reason] * len(bad), None, None]
    assert [r["text"] for r in rows[:: len(lines) - 1]] == ["good 0", "good 2"]
    for r in rows[1 : 1 + len(bad)]:
        assert r["decision"] == "quarantined" and r["text"] is None and r["error"]
    assert out.column("record").to_pylist() == list(range(len(lines)))


def test_huge_document_is_too_large_by_default(tmp_path: Path) -> None:
    big = "z" * 3_000_000  # over the default max_doc_chars (2M)
    lines = [json.dumps({"id": "big", "text": big}).encode(), b'{"text": "small"}']
    out = read_all(write_lines(tmp_path / "a.jsonl.gz", lines)).to_pylist()
    assert out[0]["reason"] == "too_large" and out[0]["n_chars"] == 3_000_000
    assert out[0]["text"] is None and out[0]["input_id"] == "big"
    assert "max_doc_chars=2000000" in out[0]["error"]
    assert out[1]["text"] == "small"


def _zstd_blocks(lines: list[bytes], lines_per_block: int = 100) -> bytes:
    """One zstd frame flushed in blocks, as streaming writers produce (a cut loses one block)."""
    cobj = zstandard.ZstdCompressor().compressobj()
    out = []
    for i in range(0, len(lines), lines_per_block):
        out.append(cobj.compress(b"".join(x + b"\n" for x in lines[i : i + lines_per_block])))
        out.append(cobj.flush(zstandard.COMPRESSOBJ_FLUSH_BLOCK))
    out.append(cobj.flush())
    return b"".join(out)


@pytest.mark.parametrize("suffix", [".jsonl.gz", ".jsonl.zst"])
def test_truncated_file_keeps_records_before_the_break(tmp_path: Path, suffix: str) -> None:
    if suffix == ".jsonl.gz":
        full = gzip.compress(b"".join(line + b"\n" for line in docs(3000)))
    else:
        full = _zstd_blocks(docs(3000))
    path = tmp_path / f"cut{suffix}"
    path.write_bytes(full[: len(full) * 2 // 3])
    # Independent count of the complete lines that survive the cut.
    if suffix == ".jsonl.gz":
        prefix = zlib.decompressobj(wbits=31).decompress(path.read_bytes())
    else:
        prefix = zstandard.ZstdDecompressor().decompressobj().decompress(path.read_bytes())
    complete = prefix.count(b"\n")
    assert 0 < complete < 3000

    out = read_all(path, ReadConfig(batch_size=256))
    assert out.num_rows == complete + 1  # conservation: every complete line + the break
    kept = out.filter(pa.compute.equal(out.column("decision"), "kept"))
    assert kept.column("input_id").to_pylist() == [f"d{i}" for i in range(complete)]
    last = out.slice(out.num_rows - 1).to_pylist()[0]
    assert last["reason"] == "truncated_file" and last["record"] == complete
    assert "EOFError" in last["error"] or "Truncated" in last["error"]


def test_unreadable_file_is_one_quarantined_record(tmp_path: Path) -> None:
    path = tmp_path / "junk.jsonl.gz"
    path.write_bytes(b"this is not gzip data at all\n" * 10)
    out = read_all(path).to_pylist()
    assert len(out) == 1
    assert out[0]["reason"] == "unreadable_file" and out[0]["record"] == 0
    assert "gzip" in out[0]["error"].lower()


def test_file_gone_after_expansion_is_unreadable(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "a.jsonl.zst", docs(3))
    unit = expand_inputs([InputSpec(path=str(path))])[0]
    path.unlink()
    out = pa.concat_tables(list(read_unit(unit, ReadConfig()))).to_pylist()
    assert [r["reason"] for r in out] == ["unreadable_file"]


def test_conservation_over_a_mixed_file(tmp_path: Path) -> None:
    lines = docs(50)
    for i, bad in enumerate(b for group in BAD_LINES.values() for b in group):
        lines.insert(3 * i + 1, bad)
    path = write_lines(tmp_path / "mixed.jsonl.zst", lines + [b"", b"  "])
    expected = sum(1 for line in lines if line.strip())  # counted on the input, not the reader
    out = read_all(path, ReadConfig(batch_size=8, max_doc_chars=100))
    assert out.num_rows == expected
    bad_total = sum(len(g) for g in BAD_LINES.values())
    assert out.column("decision").to_pylist().count("quarantined") == bad_total
    assert len(set(out.column("doc_id").to_pylist())) == expected


@pytest.mark.parametrize("nested_field", ["text", "meta"])
def test_deeply_nested_line_quarantines_that_line_only(tmp_path: Path, nested_field: str) -> None:
    """json.loads raises RecursionError (not ValueError) on deep nesting; it used to break the
    whole file into one unreadable_file row. Nesting in the text field sends the batch to the
    per-line path by itself; nesting elsewhere is read by pyarrow, so a malformed neighbour
    sends it there."""
    depth = 100_000
    deep = b"[" * depth + b"]" * depth
    good = [json.dumps({"id": f"g{i}", "text": f"good {i}"}).encode() for i in range(8)]
    if nested_field == "text":
        bad = [b'{"text": ' + deep + b"}"]
    else:
        bad = [b'{"text": "deep", "meta": ' + deep + b"}", b'{"text": "unterminated']
    lines = [*good[:4], *bad, *good[4:]]
    out = read_all(write_lines(tmp_path / "a.jsonl", lines))
    rows = out.to_pylist()
    assert [r["record"] for r in rows] == list(range(len(lines)))
    assert [r["text"] for r in rows if r["decision"] == "kept"] == [f"good {i}" for i in range(8)]
    assert [r["reason"] for r in rows[4 : 4 + len(bad)]] == ["malformed_json"] * len(bad)
    assert "nested too deeply" in rows[4]["error"]


def test_concatenated_zstd_frames_and_a_cut_last_frame(tmp_path: Path) -> None:
    """pzstd and `cat a.zst b.zst` write several frames; the reader decodes them in small
    slices, so a frame ends mid-slice and the next one starts in the same slice."""
    first, second = docs(300), docs(600)[300:]
    frames = [
        zstandard.ZstdCompressor().compress(b"".join(x + b"\n" for x in part))
        for part in (first, second)
    ]
    path = tmp_path / "two.jsonl.zst"
    path.write_bytes(b"".join(frames))
    out = read_all(path)
    assert out.column("input_id").to_pylist() == [f"d{i}" for i in range(600)]
    path.write_bytes(frames[0] + frames[1][: len(frames[1]) // 2])
    out = read_all(path)
    reasons = out.column("reason").to_pylist()
    assert reasons[-1] == "truncated_file" and reasons[:300] == [None] * 300
