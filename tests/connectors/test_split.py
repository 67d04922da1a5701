"""Units below the file: a plain jsonl cut into line-aligned byte ranges and a parquet file cut
into runs of row groups read back to exactly the rows (records, ids, texts, quarantines) of the
whole file, with the same framing counts; what cannot be entered mid-stream stays whole."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from connectors.registry import expand_inputs, read_unit
from connectors.split import split_unit
from connectors.tally import ReadTally
from curator.config import InputSpec, ReadConfig
from tests.corpus import real_paragraphs


def jsonl_with_every_kind_of_line(path: Path) -> Path:
    paras = real_paragraphs()
    lines = ["\ufeff" + json.dumps({"id": "first", "text": paras[0]})]  # a BOM, line 0 only
    for i, p in enumerate(paras[1:]):
        lines.append(json.dumps({"id": f"d{i}", "text": p}))
        if i % 7 == 0:
            lines.append("")  # a blank line: not a record, but it has a line number
        if i % 11 == 0:
            lines.append('{"id": "bad", "text": ')  # malformed: a quarantined record
        if i == 20:
            lines.append(json.dumps({"id": "huge", "text": "x " * 3000}))  # longer than a range
    path.write_bytes(("\n".join(lines)).encode())  # the last line has no newline
    return path


def read_rows(units, cfg: ReadConfig) -> tuple[list[tuple], int]:
    rows, framed = [], 0
    for unit in units:
        tally = ReadTally()
        for table in read_unit(unit, cfg, tally):
            rows += zip(*(table.column(c).to_pylist() for c in
                          ("record", "input_id", "text", "reason")), strict=True)
        assert tally.rows == tally.expected and tally.lost == 0
        framed += tally.expected
    return rows, framed


def test_jsonl_ranges_read_back_to_the_whole_file(tmp_path):
    path = jsonl_with_every_kind_of_line(tmp_path / "big.jsonl")
    cfg = ReadConfig(max_doc_bytes=4000)  # the huge line is quarantined as too_large
    (whole,) = expand_inputs([InputSpec(path=str(path))])
    parts = split_unit(whole, unit_bytes=2048)
    assert len(parts) > 5 and [p.part.index for p in parts] == list(range(len(parts)))
    assert parts[0].part.start == 0 and parts[-1].part.end == path.stat().st_size
    assert all(a.part.end == b.part.start for a, b in zip(parts, parts[1:], strict=False))
    want, framed = read_rows([whole], cfg)
    got, framed_parts = read_rows(parts, cfg)
    assert got == want and framed_parts == framed
    reasons = {r[3] for r in want}
    assert {"malformed_json", "too_large", None} <= reasons
    assert want[0][2].startswith(real_paragraphs()[0][:20])  # the BOM went, at line 0 only
    # every range starts at a line start
    data = path.read_bytes()
    assert all(data[p.part.start - 1:p.part.start] == b"\n" for p in parts[1:])
    # the ranges' own spare ordinals are past every line and apart from each other
    spares = [p.part.spare_record for p in parts]
    assert min(spares) > max(r[0] for r in want) and len(set(spares)) == len(spares)


def test_parquet_runs_of_row_groups_read_back_to_the_whole_file(tmp_path):
    paras = real_paragraphs()
    table = pa.table({"id": [f"p{i}" for i in range(len(paras))], "text": paras})
    pq.write_table(table, tmp_path / "t.parquet", row_group_size=5)
    (whole,) = expand_inputs([InputSpec(path=str(tmp_path / "t.parquet"))])
    parts = split_unit(whole, unit_bytes=4096)
    assert len(parts) > 2 and parts[-1].part.end == pq.ParquetFile(tmp_path / "t.parquet"
                                                                    ).num_row_groups
    want, framed = read_rows([whole], ReadConfig())
    got, framed_parts = read_rows(parts, ReadConfig())
    assert got == want and framed_parts == framed == len(paras)
    assert [r[0] for r in got] == list(range(len(paras)))


def test_what_cannot_be_entered_midstream_stays_whole(tmp_path):
    path = jsonl_with_every_kind_of_line(tmp_path / "big.jsonl")
    gz = tmp_path / "big.jsonl.gz"
    gz.write_bytes(gzip.compress(path.read_bytes()))
    units = expand_inputs([InputSpec(path=str(tmp_path))], unit_bytes=2048)
    by_source = {}
    for u in units:
        by_source.setdefault(Path(u.source).name, []).append(u)
    assert len(by_source["big.jsonl.gz"]) == 1 and by_source["big.jsonl.gz"][0].part is None
    assert len(by_source["big.jsonl"]) > 5
    assert expand_inputs([InputSpec(path=str(path))], unit_bytes=0)[0].part is None
    assert len(expand_inputs([InputSpec(path=str(path))], unit_bytes=1 << 30)) == 1
