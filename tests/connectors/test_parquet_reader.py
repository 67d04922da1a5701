"""Parquet reader: round trip, batching, wrong schema, per-row quarantine codes."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from connectors.registry import expand_inputs, read_unit
from curator.config import InputSpec, ReadConfig
from curator.doc_ids import doc_id
from curator.schema import is_read_schema


def read_all(path: Path | str, cfg: ReadConfig | None = None, **spec) -> pa.Table:
    units = expand_inputs([InputSpec(path=str(path), **spec)])
    tables = [t for u in units for t in read_unit(u, cfg or ReadConfig())]
    assert all(is_read_schema(t.schema) for t in tables)
    return pa.concat_tables(tables, promote_options="default")


def test_round_trip_with_int_ids_and_batches(tmp_path: Path) -> None:
    path = tmp_path / "data.parquet"
    texts = [f"parquet doc {i}" for i in range(23)]
    pq.write_table(
        pa.table({"id": list(range(23)), "text": texts, "other": [1.0] * 23}),
        path,
        row_group_size=10,
    )
    unit = expand_inputs([InputSpec(path=str(path))])[0]
    tables = list(read_unit(unit, ReadConfig(batch_size=8)))
    assert max(t.num_rows for t in tables) <= 8
    out = pa.concat_tables(tables, promote_options="default")
    assert out.column("text").to_pylist() == texts
    assert out.column("input_id").to_pylist() == [str(i) for i in range(23)]
    assert out.column("doc_id").to_pylist() == [doc_id(str(path), r) for r in range(23)]
    assert out.column("record").to_pylist() == list(range(23))


def test_custom_text_field_and_no_input_ids(tmp_path: Path) -> None:
    path = tmp_path / "d.pq"
    pq.write_table(pa.table({"content": ["a b", "c d"]}), path)
    out = read_all(path, text_field="content")
    assert out.column("text").to_pylist() == ["a b", "c d"]
    assert out.column("doc_id").to_pylist() == [doc_id(str(path), r) for r in (0, 1)]
    assert out.column("input_id").null_count == 2


def test_wrong_schema_is_one_record_naming_columns(tmp_path: Path) -> None:
    path = tmp_path / "w.parquet"
    pq.write_table(pa.table({"body": ["x"] * 5, "url": ["u"] * 5}), path)
    out = read_all(path).to_pylist()
    assert len(out) == 1 and out[0]["reason"] == "wrong_schema"
    assert "'body'" in out[0]["error"] and "'url'" in out[0]["error"]
    assert "input.text_field" in out[0]["error"]


def test_text_not_string_column(tmp_path: Path) -> None:
    path = tmp_path / "n.parquet"
    pq.write_table(pa.table({"text": [1, None, 3]}), path)
    out = read_all(path).to_pylist()
    assert [r["reason"] for r in out] == [
        "text_not_string",
        "missing_text_field",
        "text_not_string",
    ]


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (b"caf\xe9", "invalid_utf8"),
        (b"a\x00b", "nul_bytes"),
        (b"  ", "empty_text"),
        (None, "missing_text_field"),
        (b"x" * 11, "too_large"),
    ],
)
def test_quarantine_codes_in_a_binary_column(
    tmp_path: Path, value: bytes | None, reason: str
) -> None:
    path = tmp_path / "b.parquet"
    pq.write_table(pa.table({"text": pa.array([b"good", value, b"fine"], pa.binary())}), path)
    out = read_all(path, ReadConfig(max_doc_chars=10)).to_pylist()
    assert [r["reason"] for r in out] == [None, reason, None]
    assert [r["text"] for r in out] == ["good", None, "fine"]


def test_unreadable_and_truncated_parquet(tmp_path: Path) -> None:
    good = tmp_path / "good.parquet"
    pq.write_table(pa.table({"text": ["a"] * 100}), good)
    (tmp_path / "cut.parquet").write_bytes(good.read_bytes()[:-30])
    (tmp_path / "junk.parquet").write_bytes(b"PAR1 nonsense")
    out = read_all(tmp_path)
    reasons = {}
    for r in out.to_pylist():
        reasons.setdefault(r["source"].rsplit("/", 1)[-1], []).append(r["reason"])
    assert reasons == {
        "cut.parquet": ["unreadable_file"],
        "good.parquet": [None] * 100,
        "junk.parquet": ["unreadable_file"],
    }


def test_long_documents_get_smaller_batches(tmp_path: Path) -> None:
    path = tmp_path / "long.parquet"
    texts = [f"{i:04d}" + "w" * 1000 for i in range(40)]
    pq.write_table(pa.table({"text": texts}), path, compression="none", use_dictionary=False)
    unit = expand_inputs([InputSpec(path=str(path))])[0]
    tables = list(read_unit(unit, ReadConfig(batch_size=1000, max_batch_bytes=10_000)))
    assert sum(t.num_rows for t in tables) == 40  # conservation
    assert max(t.num_rows for t in tables) <= 10
