"""doc_id = (source, record), never the input's id: unique across inputs that reuse ids, and the
same on every run, batch cut and process."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa

from connectors.registry import expand_inputs, read_unit
from curator.config import InputSpec, ReadConfig
from curator.doc_ids import doc_id, doc_ids, source_namespace

PINNED = "45cac06a8e050bf0"  # xxh3_64("s3://bucket/part-0.jsonl.gz"), seed 0


def test_equal_input_ids_in_two_sources_get_distinct_doc_ids(tmp_path: Path) -> None:
    for name in ("a", "b"):
        lines = [json.dumps({"id": str(i), "text": f"same words {i}"}) for i in range(3)]
        (tmp_path / f"{name}.jsonl").write_text("\n".join(lines) + "\n")
    units = expand_inputs([InputSpec(path=str(tmp_path))])
    out = pa.concat_tables(t for u in units for t in read_unit(u, ReadConfig()))
    assert out.column("input_id").to_pylist() == ["0", "1", "2"] * 2
    ids = out.column("doc_id").to_pylist()
    assert len(set(ids)) == 6
    assert ids == [doc_id(u.source, r) for u in units for r in range(3)]


def test_doc_ids_are_a_fixed_function_of_source_and_record() -> None:
    records = pa.array([0, 1, 12, 10**12], pa.int64())
    got = doc_ids("s3://bucket/part-0.jsonl.gz", records).to_pylist()
    # Pinned: a change of hash, seed or format would silently re-key every existing run.
    assert source_namespace("s3://bucket/part-0.jsonl.gz") == PINNED
    assert got == [f"{PINNED}:{r}" for r in (0, 1, 12, 10**12)]
    assert got == [doc_id("s3://bucket/part-0.jsonl.gz", r) for r in records.to_pylist()]
    # However the records are batched or chunked.
    chunked = pa.chunked_array([records.slice(0, 1), records.slice(1)])
    assert doc_ids("s3://bucket/part-0.jsonl.gz", chunked).to_pylist() == got
    assert doc_ids("s3://bucket/part-0.jsonl.gz", records.slice(2)).to_pylist() == got[2:]
    assert doc_ids("s3://bucket/part-0.jsonl.gz", records.slice(0, 0)).to_pylist() == []


def test_sources_differing_anywhere_differ_in_namespace() -> None:
    sources = ["/data/a.jsonl", "/data/b.jsonl", "/data/a.jsonl.gz", "file:///data/a.jsonl", ""]
    assert len({source_namespace(s) for s in sources}) == len(sources)
    assert all(len(source_namespace(s)) == 16 for s in sources)

