"""A single-stream compressed jsonl cut by spilling (connectors/spill.py): the chunks hold the
decoded stream exactly, and their units read back to the whole file's rows (doc_ids, records,
quarantines, a truncated or corrupt stream's failure row), cut the same way on every plan; a
half-written spill is redone; what would fill the disk is read whole."""

from __future__ import annotations

import bz2
import gzip
import json
import lzma
import os
import random
from pathlib import Path

import pyarrow as pa
import pytest

from connectors.registry import SourceUnit, expand_inputs, read_unit
from connectors.spill import INDEX, release_spills, spill_units
from connectors.tally import ReadTally
from curator.config import InputSpec, ReadConfig
from tests.connectors.bombs import jsonl_gz_long_line
from tests.connectors.test_split import jsonl_with_every_kind_of_line

# a document over max_doc_chars is too_large in chunks too; a line over max_doc_bytes would
# make the file read whole (test_a_bomb_is_read_whole_and_never_fills_the_disk)
_CFG = ReadConfig(max_doc_bytes=8000, max_doc_chars=5000, unit_bytes=2048)


def _zstd(raw: bytes) -> bytes:
    zstandard = pytest.importorskip("zstandard")  # connectors/fs.py reads .zst with it
    return zstandard.ZstdCompressor().compress(raw)


COMPRESS = {".gz": gzip.compress, ".zst": _zstd, ".bz2": bz2.compress, ".xz": lzma.compress}


def compressed(
    tmp_path: Path, suffix: str, cut: float = 0.0, filler: int = 0
) -> tuple[Path, bytes]:
    """The every-kind-of-line jsonl (then `filler` lines of random words) compressed as one
    stream (the last `cut` of it cut off); returns the file and the decoded jsonl."""
    raw = jsonl_with_every_kind_of_line(tmp_path / "plain.jsonl").read_bytes()
    rng = random.Random(0)
    raw += b"".join(b'\n{"text": "%x %x"}' % (rng.getrandbits(64), rng.getrandbits(64))
                    for _ in range(filler))
    data = COMPRESS[suffix](raw)
    path = tmp_path / f"big.jsonl{suffix}"
    path.write_bytes(data[: len(data) - int(cut * len(data))])
    return path, raw


def whole_unit(path: Path) -> SourceUnit:
    (unit,) = expand_inputs([InputSpec(path=str(path))], _CFG.unit_bytes)
    assert unit.part is None  # split.py leaves a single stream whole
    return unit


def read_all(units: list[SourceUnit], cfg: ReadConfig = _CFG) -> tuple[list[dict], int]:
    tables, framed = [], 0
    for unit in units:
        tally = ReadTally()
        tables += list(read_unit(unit, cfg, tally))
        assert tally.rows == tally.expected and tally.lost == 0
        framed += tally.expected
    return pa.concat_tables(tables, promote_options="default").to_pylist(), framed


@pytest.mark.parametrize("suffix", [".gz", ".zst", ".bz2", ".xz"])
def test_chunks_cover_the_stream_and_read_back_to_the_whole_file(tmp_path, suffix):
    path, raw = compressed(tmp_path, suffix)
    whole = whole_unit(path)
    units = spill_units([whole], tmp_path / "spill", _CFG)
    assert len(units) >= 5 and [u.part.index for u in units] == list(range(len(units)))
    assert {u.source for u in units} == {whole.source}  # the manifest's source: the .gz itself
    chunks = [Path(u.part.spill).read_bytes() for u in units]
    assert b"".join(chunks) == raw  # every decoded byte once, in order
    assert all(c.endswith(b"\n") for c in chunks[:-1])  # line-aligned
    firsts = [u.part.first_record for u in units]
    assert firsts == [sum(c.count(b"\n") for c in chunks[:k]) for k in range(len(chunks))]
    assert all(u.part.stop is None for u in units)

    rows, framed = read_all(units)
    want, want_framed = read_all([whole])
    assert rows == want and framed == want_framed  # doc_ids, records, texts, errors: all of it
    reasons = {r["reason"] for r in rows}
    assert {"malformed_json", "too_large", None} <= reasons


@pytest.mark.parametrize("suffix", [".gz", ".zst"])
def test_truncated_stream_ends_the_last_chunk_with_the_whole_reads_row(tmp_path, suffix):
    # large enough that the decoder hands out lines before it finds the stream cut (zstd
    # decodes whole blocks of 128 KiB; the line framer's buffered readline drops what it holds
    # when the decoder raises: both reads alike)
    path, _ = compressed(tmp_path, suffix, cut=0.3, filler=8000)
    whole = whole_unit(path)
    units = spill_units([whole], tmp_path / "spill", _CFG)
    assert len(units) >= 3
    assert [u.part.stop is not None for u in units] == [False] * (len(units) - 1) + [True]
    rows, framed = read_all(units)
    want, want_framed = read_all([whole])
    assert rows == want and framed == want_framed
    assert rows[-1]["reason"] == "truncated_file"
    assert rows[-1]["error"].startswith(("EOFError", "TruncatedZstdError"))
    # past every ordinal of the file, as split.py's ranges are
    assert min(u.part.spare_record for u in units) > max(r["record"] for r in rows)


def test_corrupt_gzip_stream_gives_the_whole_reads_unreadable_row(tmp_path):
    path, _ = compressed(tmp_path, ".gz")
    data = bytearray(path.read_bytes())
    data[-6] ^= 0xFF  # the trailer's CRC: every line decodes, then the check fails
    path.write_bytes(bytes(data))
    whole = whole_unit(path)
    units = spill_units([whole], tmp_path / "spill", _CFG)
    rows, _ = read_all(units)
    want, _ = read_all([whole])
    assert len(units) >= 3 and rows == want
    assert want[-1]["reason"] == "unreadable_file" and "CRC" in want[-1]["error"]


def test_second_plan_reuses_the_spill_and_a_fresh_one_cuts_the_same(tmp_path):
    path, _ = compressed(tmp_path, ".gz")
    whole = whole_unit(path)
    first = spill_units([whole], tmp_path / "spill", _CFG)
    stamps = [os.stat(u.part.spill).st_mtime_ns for u in first]
    assert spill_units([whole], tmp_path / "spill", _CFG) == first
    assert [os.stat(u.part.spill).st_mtime_ns for u in first] == stamps  # not written again
    fresh = spill_units([whole], tmp_path / "other", _CFG)
    strip = [(u.part.start, u.part.end, u.part.first_record, u.part.spare_record) for u in first]
    assert [(u.part.start, u.part.end, u.part.first_record, u.part.spare_record)
            for u in fresh] == strip


@pytest.mark.parametrize("damage", ["no index", "chunk missing", "chunk cut"])
def test_half_written_spill_is_redone_to_the_same_units(tmp_path, damage):
    path, _ = compressed(tmp_path, ".gz", cut=0.2)
    whole = whole_unit(path)
    root = tmp_path / "spill"
    first = spill_units([whole], root, _CFG)
    want, _ = read_all(first)
    (folder,) = root.iterdir()
    chunk = Path(first[2].part.spill)
    if damage == "no index":  # killed before the index was written (it comes last)
        (folder / INDEX).unlink()
        (folder / f".part-00009.jsonl.tmp-{'0' * 8}").write_bytes(b'{"text": "half')
    elif damage == "chunk missing":
        chunk.unlink()
    else:
        chunk.write_bytes(chunk.read_bytes()[:10])
    again = spill_units([whole], root, _CFG)
    assert again == first
    assert read_all(again)[0] == want
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        [INDEX] + [Path(u.part.spill).name for u in first])


def test_released_spill_keeps_its_units_without_its_chunks(tmp_path):
    path, _ = compressed(tmp_path, ".zst")
    whole = whole_unit(path)
    root = tmp_path / "spill"
    first = spill_units([whole], root, _CFG)
    assert release_spills(root) == len(first)
    assert not list(root.glob("*/part-*"))
    assert spill_units([whole], root, _CFG) == first  # a resume after pass 1: same units


def test_what_stays_whole(tmp_path):
    path, _ = compressed(tmp_path, ".gz")
    whole = whole_unit(path)
    for cfg in (ReadConfig(unit_bytes=0), ReadConfig(unit_bytes=2048, spill_max_bytes=0),
                ReadConfig(unit_bytes=path.stat().st_size)):  # not over unit_bytes
        assert spill_units([whole], tmp_path / "off", cfg) == [whole]
    assert not (tmp_path / "off").exists()
    # decodes to one chunk: a short stream, then garbage (the read breaks there)
    short = tmp_path / "short.jsonl.gz"
    short.write_bytes(gzip.compress(b'{"text": "a"}\n') + os.urandom(4096))
    assert spill_units([whole_unit(short)], tmp_path / "one", _CFG) == [whole_unit(short)]
    assert read_all([whole_unit(short)])[0][-1]["reason"] == "unreadable_file"
    plain = expand_inputs([InputSpec(path=str(tmp_path / "plain.jsonl"))], _CFG.unit_bytes)
    assert len(plain) > 1 and spill_units(plain, tmp_path / "p", _CFG) == plain  # split.py's


def test_a_bomb_is_read_whole_and_never_fills_the_disk(tmp_path):
    # one line of 8 MiB: over max_doc_bytes, the whole-file read quarantines it read through
    bomb = jsonl_gz_long_line(tmp_path / "bomb.jsonl.gz", 8 << 20)
    cfg = ReadConfig(max_doc_bytes=1 << 20, unit_bytes=1024)
    (unit,) = expand_inputs([InputSpec(path=str(bomb))], cfg.unit_bytes)
    root = tmp_path / "spill"
    assert spill_units([unit], root, cfg) == [unit]
    assert [p.name for p in root.glob("*/*")] == [INDEX]  # the decision, no chunk
    assert "max_doc_bytes" in json.loads(next(root.glob(f"*/{INDEX}")).read_text())["whole"]
    # many short lines decoding past read.spill_max_bytes: read whole too
    path, raw = compressed(tmp_path, ".gz")
    capped = ReadConfig(max_doc_bytes=8000, unit_bytes=2048, spill_max_bytes=len(raw) // 2)
    assert spill_units([whole_unit(path)], tmp_path / "capped", capped) == [whole_unit(path)]
    assert [p.name for p in (tmp_path / "capped").glob("*/*")] == [INDEX]
    # the budget is the run's: a second file only gets what the first left
    other = tmp_path / "b" / "big.jsonl.gz"
    other.parent.mkdir()
    other.write_bytes(path.read_bytes())
    budget = ReadConfig(max_doc_bytes=8000, unit_bytes=2048, spill_max_bytes=len(raw) * 3 // 2)
    units = spill_units([whole_unit(path), whole_unit(other)], tmp_path / "budget", budget)
    assert [u.source for u in units if u.part is None] == [whole_unit(other).source]
