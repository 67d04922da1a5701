"""ReadTally: the framing layer's count, independent of the parser, and the lost_in_parse net.

For every format the count is checked against one made here from the input itself, and
read_unit's rows must equal tally.expected; when a parser is made to drop rows, read_unit adds
them back as quarantined lost_in_parse rows.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from connectors import jsonl
from connectors.registry import expand_inputs, read_unit
from connectors.tally import ReadTally
from curator.config import InputSpec, ReadConfig
from tests.connectors.test_warc_reader import html_responses, write_warc


def read(cfg: ReadConfig | None = None, **spec) -> tuple[pa.Table, ReadTally]:
    (unit,) = expand_inputs([InputSpec(**spec)])
    tally = ReadTally()
    out = pa.concat_tables(list(read_unit(unit, cfg or ReadConfig(), tally)))
    assert tally.rows == out.num_rows
    return out, tally


def jsonl_file(path: Path, n: int, extra: list[bytes] = ()) -> Path:  # type: ignore[assignment]
    lines = [json.dumps({"id": f"d{i}", "text": f"doc {i}"}).encode() for i in range(n)]
    path.write_bytes(b"\n".join([*lines, b"", b"  ", *extra]) + b"\n")
    return path


def test_jsonl_counts_non_blank_lines(tmp_path: Path) -> None:
    path = jsonl_file(tmp_path / "a.jsonl", 30, [b"{bad json", b'{"text": 5}'])
    expected = sum(1 for line in path.read_bytes().splitlines() if line.strip())
    out, tally = read(ReadConfig(batch_size=7), path=str(path))
    assert (tally.framed, tally.skipped, tally.lost) == (expected, 0, 0) == (32, 0, 0)
    assert out.num_rows == tally.expected


def test_truncated_jsonl_gz_counts_the_break(tmp_path: Path) -> None:
    full = gzip.compress(jsonl_file(tmp_path / "a.jsonl", 3000).read_bytes())
    path = tmp_path / "cut.jsonl.gz"
    path.write_bytes(full[: len(full) // 2])
    out, tally = read(path=str(path))
    assert out.column("reason")[-1].as_py() == "truncated_file"
    assert tally.framed == out.num_rows and tally.lost == 0


def test_warc_counts_responses_and_skips_non_html(tmp_path: Path) -> None:
    path = tmp_path / "c.warc.gz"
    write_warc(path, n_articles=5)
    out, tally = read(path=str(path))
    # write_warc adds one PNG response: framed as a response, skipped as a document.
    assert (tally.framed, tally.skipped) == (len(html_responses(path)) + 1, 1)
    assert out.num_rows == tally.expected


def test_text_html_parquet_duckdb(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("some text")
    _, tally = read(path=str(tmp_path / "a.txt"))
    assert (tally.framed, tally.rows) == (1, 1)
    (tmp_path / "junk.html.gz").write_bytes(b"not gzip")
    _, tally = read(path=str(tmp_path / "junk.html.gz"))
    assert (tally.framed, tally.rows) == (1, 1)

    table = pa.table({"text": [f"row {i}" for i in range(25)]})
    pq.write_table(table, tmp_path / "p.parquet", row_group_size=10)
    _, tally = read(ReadConfig(batch_size=4), path=str(tmp_path / "p.parquet"))
    assert (tally.framed, tally.rows) == (25, 25)
    pq.write_table(pa.table({"body": ["x"] * 5}), tmp_path / "w.parquet")
    out, tally = read(path=str(tmp_path / "w.parquet"))  # refused whole: one record
    assert (tally.framed, tally.rows, out.column("reason")[0].as_py()) == (1, 1, "wrong_schema")

    db = tmp_path / "d.duckdb"
    with duckdb.connect(str(db)) as con:
        con.execute("CREATE TABLE t AS SELECT 'doc ' || i AS text FROM range(23) r(i)")
    _, tally = read(
        ReadConfig(batch_size=5), format="duckdb", path=str(db), query="SELECT * FROM t"
    )
    assert (tally.framed, tally.rows) == (23, 23)


def test_parquet_corrupt_row_group_is_skipped_with_its_records(tmp_path: Path) -> None:
    path = tmp_path / "rg.parquet"
    texts = [f"doc {i}" for i in range(30)]
    pq.write_table(
        pa.table({"text": texts}), path, row_group_size=10, compression="none", use_dictionary=False
    )
    page = pq.ParquetFile(path).metadata.row_group(1).column(0).data_page_offset
    data = bytearray(path.read_bytes())
    data[page : page + 8] = b"\xff" * 8  # the page header of row group 1
    path.write_bytes(bytes(data))
    out, tally = read(path=str(path))
    assert (tally.framed, tally.rows) == (30, 30)
    assert out.column("record").to_pylist() == list(range(30))
    assert out.column("reason").to_pylist() == [None] * 10 + ["corrupt_record"] * 10 + [None] * 10
    assert out.column("text").to_pylist()[20:] == texts[20:]
    assert "row group 1 of 3" in out.column("error")[10].as_py()


# --- the safety net: a parser that drops rows cannot make them vanish ------------------------


def test_rows_a_parser_drops_come_back_as_lost_in_parse(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    parse = jsonl._BatchParser.parse

    def drops_last_row(self, lines: list[bytes], records: list[int]) -> pa.Table:  # noqa: ANN001
        table = parse(self, lines, records)
        return table.slice(0, table.num_rows - 1)

    monkeypatch.setattr(jsonl._BatchParser, "parse", drops_last_row)
    path = jsonl_file(tmp_path / "a.jsonl", 20)
    out, tally = read(ReadConfig(batch_size=6), path=str(path))
    # 4 batches (6, 6, 6, 2 lines) lose one row each.
    assert (tally.framed, tally.lost, tally.rows, tally.expected) == (20, 4, 20, 20)
    lost = out.filter(pc.equal(out.column("reason"), "lost_in_parse"))
    assert lost.num_rows == 4 and set(lost.column("decision").to_pylist()) == {"quarantined"}
    assert "framed 20 records but its parser returned 16" in lost.column("error")[0].as_py()
    # Placeholder ordinals after every ordinal yielded, so doc_ids cannot collide.
    assert lost.column("record").to_pylist() == [19, 20, 21, 22]
    assert len(set(out.column("doc_id").to_pylist())) == 20


def test_a_parser_that_raises_leaves_a_break_and_the_lost_records(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    parse = jsonl._BatchParser.parse
    calls = []

    def fails_second_batch(self, lines: list[bytes], records: list[int]) -> pa.Table:  # noqa: ANN001
        calls.append(len(lines))
        if len(calls) == 2:
            raise RuntimeError("parser bug")
        return parse(self, lines, records)

    monkeypatch.setattr(jsonl._BatchParser, "parse", fails_second_batch)
    out, tally = read(ReadConfig(batch_size=5), path=str(jsonl_file(tmp_path / "a.jsonl", 20)))
    reasons = out.column("reason").to_pylist()
    assert reasons[:5] == [None] * 5
    assert reasons[5] == "unreadable_file" and "parser bug" in out.column("error")[5].as_py()
    # The 5 lines framed for the failing batch were never parsed: each one is accounted for.
    assert reasons[6:] == ["lost_in_parse"] * 5
    assert tally.rows == tally.expected == 11 and tally.lost == 5
