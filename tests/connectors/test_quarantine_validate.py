"""Shared validation: vectorized checks, reason priority, doc ids, UTF-8 checks."""

from __future__ import annotations

import json

import pyarrow as pa

from connectors.jsonl import _BatchParser
from connectors.validate import RowBuffer, finish_batch, valid_utf8
from curator.config import InputSpec, ReadConfig
from curator.doc_ids import doc_id
from curator.schema import DOC_SCHEMA


def test_finish_batch_checks_and_reader_reason_wins() -> None:
    texts = pa.array(["ok", "a\x00b", " \u3000\n", "x" * 11, None, "fine"])
    reasons = pa.array([None, None, None, None, "missing_text_field", "malformed_json"])
    errors = pa.array([None, None, None, None, "no field", "bad json"])
    out = finish_batch(
        "src",
        pa.array(range(6), pa.int64()),
        pa.array(["i0", None, "", "i3", None, None]),
        texts,
        reasons,
        errors,
        max_doc_chars=10,
    )
    assert out.schema == DOC_SCHEMA
    assert out.column("reason").to_pylist() == [
        None,
        "nul_bytes",
        "empty_text",
        "too_large",
        "missing_text_field",
        "malformed_json",
    ]
    assert out.column("decision").to_pylist() == ["kept"] + ["quarantined"] * 5
    assert out.column("text").to_pylist() == ["ok", None, None, None, None, None]
    assert out.column("n_chars").to_pylist() == [2, 3, 3, 11, None, 4]
    assert "11 chars > max_doc_chars=10" in out.column("error")[3].as_py()
    assert out.column("error")[5].as_py() == "bad json"
    ids = out.column("input_id").to_pylist()
    assert ids[0] == "i0" and ids[3] == "i3"
    assert ids[1] is None and ids[2] is None  # "" is no id
    assert out.column("doc_id").to_pylist() == [doc_id("src", r) for r in range(6)]


def test_valid_utf8_marks_only_bad_rows() -> None:
    strings, bad = valid_utf8(pa.array([b"ok", b"\xff\xfe", None, b"\xc3\xa9"], pa.binary()))
    assert strings.to_pylist() == ["ok", None, None, "\u00e9"]
    assert bad.to_pylist() == [False, True, False, False]
    assert valid_utf8(pa.array(["fine"], pa.large_string()))[1] is None


def test_row_buffer_quarantines_lone_surrogates_and_drops_huge_text_early() -> None:
    rows = RowBuffer("s", max_doc_chars=5)
    rows.add(0, "good")
    rows.add(1, "bad \ud800")
    rows.add(2, "toolongtext")
    assert rows.texts[2] is None  # not held in the batch
    out = rows.flush()
    assert out.column("reason").to_pylist() == [None, "invalid_utf8", "too_large"]
    assert out.column("n_chars").to_pylist() == [4, None, 11]
    assert len(rows) == 0


def test_jsonl_fast_path_takes_clean_batches_and_agrees_with_slow_path() -> None:
    parser = _BatchParser("s", InputSpec(path="x.jsonl"), ReadConfig())
    clean = [
        json.dumps({"id": f"k{i}", "text": f"t {i}", "n": i}).encode() + b"\n" for i in range(5)
    ]
    records = list(range(5))
    fast = parser._parse_fast(clean, records)
    assert fast is not None
    assert fast.equals(parser._parse_slow(clean, records))
    dirty = clean[:2] + [b'{"text": 1}\n']
    assert parser._parse_fast(dirty, records[:3]) is None
