"""Units below the file: a plain jsonl cut into line-aligned byte ranges, a gzip jsonl of several
members and a WARC (gzip or plain) into runs of members / records, and a parquet file into runs
of row groups read back to exactly the rows (records, ids, texts, quarantines) of the whole
file, with the same framing counts; what cannot be entered mid-stream stays whole."""

from __future__ import annotations

import gzip
import json
import random
import zlib
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from connectors.registry import expand_inputs, read_unit
from connectors.split import split_unit
from connectors.tally import ReadTally
from curator.config import InputSpec, ReadConfig
from tests.connectors.damage import random_damage
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


def test_the_last_even_piece_is_cut_again_into_short_tail_ranges():
    from connectors.split import TAIL_PIECES, _targets

    # 10 even pieces of 100 bytes, the last one in 4 pieces of 25
    assert _targets(1000, 100) == [100, 200, 300, 400, 500, 600, 700, 800, 900, 925, 950, 975]
    assert TAIL_PIECES == 4
    assert _targets(150, 100) == [75, 93, 112, 131]  # two pieces: the second one in four
    assert _targets(100, 100) == [] and _targets(0, 100) == []


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


# --- gzip jsonl of several members ---------------------------------------------------------


def as_members(data: bytes, cuts: list[int]) -> bytes:
    """`data` gzip-compressed one member per piece between `cuts` (decoded offsets)."""
    bounds = [0, *cuts, len(data)]
    return b"".join(gzip.compress(data[a:b]) for a, b in zip(bounds, bounds[1:], strict=False))


def test_gzip_jsonl_ranges_at_any_member_read_back_to_the_whole_file(tmp_path):
    data = jsonl_with_every_kind_of_line(tmp_path / "big.jsonl").read_bytes()
    cfg = ReadConfig(max_doc_bytes=4000)
    # bgzip cuts blocks at a fixed size, mid-line; `cat a.gz b.gz` cuts between lines
    for name, cuts in [("bgzip", list(range(1000, len(data), 1000))),
                       ("cat", [data.index(b"\n", n) + 1 for n in range(3000, len(data), 3000)])]:
        path = tmp_path / f"{name}.jsonl.gz"
        path.write_bytes(as_members(data, cuts))
        (whole,) = expand_inputs([InputSpec(path=str(path))])
        parts = split_unit(whole, unit_bytes=1500)
        assert len(parts) >= 3, name
        assert parts[0].part.start == 0 and parts[-1].part.end == path.stat().st_size
        assert all(a.part.end == b.part.start for a, b in zip(parts, parts[1:], strict=False))
        want, framed = read_rows([whole], cfg)
        got, framed_parts = read_rows(parts, cfg)
        assert got == want and framed_parts == framed, name
        assert {"malformed_json", "too_large", None} <= {r[3] for r in want}
        if name == "cat":  # members start lines: nothing to drop at a range's start
            assert all(p.part.skip == 0 for p in parts)
        else:
            assert any(p.part.skip > 0 for p in parts)
        assert split_unit(whole, unit_bytes=1500) == parts  # a resume cuts it the same way


def test_gzip_jsonl_that_does_not_decode_to_its_end_stays_whole(tmp_path):
    data = jsonl_with_every_kind_of_line(tmp_path / "big.jsonl").read_bytes()
    good = as_members(data, list(range(1000, len(data), 1000)))
    bad = bytearray(good)
    bad[len(good) // 2 + 30] ^= 0xFF  # inside a member in the middle
    for name, blob in [("corrupt", bytes(bad)), ("garbage", good + b"junk"),
                       ("cut", good[:-5]), ("one member", gzip.compress(data)),
                       ("zeros first", b"\0\0" + good)]:
        path = tmp_path / f"{name}.jsonl.gz"
        path.write_bytes(blob)
        (whole,) = expand_inputs([InputSpec(path=str(path))])
        assert split_unit(whole, unit_bytes=1500) == [whole], name


# --- WARC: runs of records ------------------------------------------------------------------


def write_articles_warc(path: Path, n: int, gzip_members: bool = True) -> None:
    """Real prose pages between requests, non-HTML responses and a warcinfo record."""
    from tests.connectors.test_warc_reader import write_warc

    write_warc(path, n_articles=n, gzip=gzip_members)


def warc_rows(units, cfg: ReadConfig | None = None) -> tuple[list[tuple], int]:
    rows, framed = [], 0
    for unit in units:
        tally = ReadTally()
        for table in read_unit(unit, cfg or ReadConfig(), tally):
            rows += zip(*(table.column(c).to_pylist() for c in
                          ("doc_id", "record", "input_id", "text", "reason", "error")),
                        strict=True)
        assert tally.rows == tally.expected and tally.lost == 0
        framed += tally.expected
    return rows, framed


def assert_ranges_read_as_whole(path: Path, unit_bytes: int, min_parts: int = 3) -> list:
    (whole,) = expand_inputs([InputSpec(path=str(path))])
    parts = split_unit(whole, unit_bytes)
    assert len(parts) >= min_parts
    assert parts[0].part.start == 0 and parts[-1].part.end == path.stat().st_size
    assert all(a.part.end == b.part.start for a, b in zip(parts, parts[1:], strict=False))
    want, framed = warc_rows([whole])
    got, framed_parts = warc_rows(parts)
    assert got == want and framed_parts == framed
    spares = [p.part.spare_record for p in parts]
    assert min(spares) >= framed and len(set(spares)) == len(spares)
    return parts


def test_warc_gz_ranges_begin_at_members_and_read_back_to_the_whole_file(tmp_path):
    path = tmp_path / "crawl.warc.gz"
    write_articles_warc(path, 30)
    parts = assert_ranges_read_as_whole(path, unit_bytes=2048, min_parts=5)
    data = path.read_bytes()
    for p in parts:  # each range begins at a member holding a whole record's start
        first = zlib.decompressobj(zlib.MAX_WBITS | 16).decompress(data[p.part.start:], 16)
        assert first.startswith(b"WARC/1.")
    (whole,) = expand_inputs([InputSpec(path=str(path))])
    assert split_unit(whole, unit_bytes=2048) == parts  # a resume cuts it the same way
    assert split_unit(whole, unit_bytes=0) == [whole]


def test_plain_warc_ranges_read_back_to_the_whole_file(tmp_path):
    path = tmp_path / "crawl.warc"
    write_articles_warc(path, 30, gzip_members=False)
    parts = assert_ranges_read_as_whole(path, unit_bytes=4096, min_parts=5)
    data = path.read_bytes()
    assert all(data[p.part.start:].startswith(b"WARC/1.") for p in parts)


def test_warc_gz_in_one_member_stays_whole(tmp_path):
    path = tmp_path / "one.warc.gz"
    write_articles_warc(tmp_path / "plain.warc", 30, gzip_members=False)
    path.write_bytes(gzip.compress((tmp_path / "plain.warc").read_bytes()))
    (whole,) = expand_inputs([InputSpec(path=str(path))])
    assert split_unit(whole, unit_bytes=2048) == [whole]


@pytest.mark.parametrize("damage", ["deflate", "crc", "not gzip"])
def test_damaged_member_in_a_range_reads_as_in_the_whole_file(tmp_path, damage):
    from tests.connectors.test_warc_reader import response_member

    path = tmp_path / "d.warc.gz"
    write_articles_warc(path, 30)
    data = bytearray(path.read_bytes())
    start, end = response_member(bytes(data), "http://example.com/a14")
    if damage == "deflate":
        data[start + 20:start + 60] = bytes(b ^ 0x5A for b in data[start + 20:start + 60])
    elif damage == "crc":
        data[end - 8] ^= 0xFF
    else:
        data[start:start + 2] = b"XX"
    path.write_bytes(bytes(data))
    assert_ranges_read_as_whole(path, unit_bytes=2048, min_parts=5)


def test_random_damage_reads_the_same_in_ranges_as_whole(tmp_path):
    """Seeded random damage anywhere (ranges' first members included): every range reads
    exactly the rows, ordinals and error texts of the whole-file read."""
    rng = random.Random(7)
    path = tmp_path / "f.warc.gz"
    write_articles_warc(path, 20)
    data = path.read_bytes()
    damaged = tmp_path / "r.warc.gz"
    for _ in range(25):
        damaged.write_bytes(random_damage(data, rng))
        assert_ranges_read_as_whole(damaged, unit_bytes=1024, min_parts=2)


def test_records_inside_a_member_or_glued_to_garbage_are_not_cut_at(tmp_path):
    """A range begins only where a fresh scanner reads what the whole-file one read: not at a
    record sharing its member with the one before, nor at one glued to garbage."""
    from tests.connectors.test_warc_reader import members

    path = tmp_path / "m.warc.gz"
    write_articles_warc(path, 20)
    decoded = [d for _, _, d in members(path.read_bytes())]
    joined = []
    for i in range(0, len(decoded) - 1, 2):
        kind = i // 2 % 3
        if kind == 0:  # two records in one member, as some writers do
            joined.append(gzip.compress(decoded[i] + decoded[i + 1]))
            continue
        # garbage at the member's start: glued to its record's version line, or a line of its own
        junk = b"\x00\xffjunk" if kind == 1 else b"junk line\r\n"
        joined += [gzip.compress(junk + decoded[i]), gzip.compress(decoded[i + 1])]
    path.write_bytes(b"".join(joined))
    assert_ranges_read_as_whole(path, unit_bytes=300, min_parts=5)

    plain = tmp_path / "g.warc"
    write_articles_warc(plain, 20, gzip_members=False)
    data = plain.read_bytes()
    glued = data.replace(b"WARC/1.0\r\nWARC-Type: request", b"\x00\xff" * 20
                         + b"WARC/1.0\r\nWARC-Type: request")
    assert glued != data
    plain.write_bytes(glued)
    assert_ranges_read_as_whole(plain, unit_bytes=300, min_parts=5)
