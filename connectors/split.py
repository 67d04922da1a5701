"""Work units below the file: a large file becomes ranges, each a unit of its own (its own
pass-1 file and completion marker), so one big file keeps every worker busy and a resume redoes
only the ranges that had not finished.

- plain jsonl: line-aligned byte ranges;
- gzip jsonl of several members (bgzip, concatenated parts): runs of members, each owning the
  lines that begin in it (connectors/gzip_lines.py);
- WARC, plain or gzip: runs of records, cut where a record begins at a gzip member's first byte
  (at any record of a plain file) (connectors/warc_scan.py `record_starts`);
- parquet: runs of whole row groups.

A range keeps the records' identity: its first record's ordinal is the number of records (lines,
rows, WARC responses and damaged stretches) before it in the file, so every document gets the
very `<source hash>:<record>` doc_id it gets when the file is read whole, and the result does
not depend on how the file was cut. The cut points are found by the driver before any work (one
read of the file: counting lines at memory speed; decoding a gzip file's members; framing a
WARC's records), and depend only on the file and `read.unit_bytes`, so a resume cuts it the same
way.

Not split here: single-stream compressed files (a one-member .gz, .zst, .bz2, .xz: the stream
cannot be entered in the middle; a jsonl of that kind is decoded once into plain chunks by the
driver instead, connectors/spill.py), a gzip jsonl that does not decode cleanly to its end (the
whole-file reader stops at its first bad member, so would every range after it; the spill takes
it too), text/html files (one document), DuckDB queries, and inputs that are not local files
(cutting them would mean reading them once more through the network).
"""

from __future__ import annotations

import bisect
import math
import os
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from connectors.fs import compression_of, is_local
from connectors.gzip_lines import gzip_line_cuts
from connectors.gzip_members import may_have_members
from connectors.warc_scan import record_starts

if TYPE_CHECKING:
    from connectors.registry import SourceUnit

_COUNT_CHUNK = 16 << 20
TAIL_PIECES = 4  # the last of a file's even pieces is cut again into this many (see _targets)


@dataclass(frozen=True)
class UnitPart:
    """One range of a file that is a unit of its own."""

    index: int  # k-th range of the file
    start: int  # byte offset of its first line / record / gzip member; parquet: its first row group
    end: int  # exclusive: the next range's start (the file's size / row group count at the end)
    first_record: int  # ordinal of its first record: records of the file before it
    # First ordinal the range may give rows the reader adds itself (an unreadable stretch, a
    # record lost in parsing): past every record of the file, and apart from the other ranges'.
    spare_record: int
    # gzip jsonl only (connectors/gzip_lines.py): decoded bytes to drop at `start` (the end of
    # a line begun before), and the decoded bytes from `start` whose lines are the range's.
    skip: int = 0
    span: int | None = None
    # spilled single-stream compressed jsonl only (connectors/spill.py): the plain chunk file
    # holding the range's lines, and on the file's last range where the decoding broke off
    # (`{"name", "message", "truncated"}`), so the same failure row ends the file
    spill: str | None = None
    stop: dict | None = None

    def to_json(self) -> dict:
        return self.__dict__.copy()


def split_unit(unit: SourceUnit, unit_bytes: int) -> list[SourceUnit]:
    """`unit` cut into ranges of about `unit_bytes` (one unit when it is small or not
    splittable, see the module docstring)."""
    if unit_bytes <= 0 or unit.part is not None or not is_local(unit.source):
        return [unit]
    path = unit.source.removeprefix("file://")
    compression = compression_of(path)
    try:
        if unit.format == "jsonl" and compression is None:
            parts = _jsonl_parts(path, unit_bytes)
        elif unit.format == "jsonl" and compression == "gzip":
            parts = _gzip_jsonl_parts(path, unit_bytes)
        elif unit.format == "warc" and compression in (None, "gzip"):
            parts = _warc_parts(path, unit_bytes)
        elif unit.format == "parquet":
            parts = _parquet_parts(path, unit_bytes)
        else:
            return [unit]
    except OSError:
        return [unit]  # unreadable now: the worker reads it whole and quarantines what fails
    return [replace(unit, part=p) for p in parts] if len(parts) > 1 else [unit]


def _targets(size: int, unit_bytes: int) -> list[int]:
    """Nominal cut offsets: the file in n = ceil(size / unit_bytes) even pieces, the last of
    them cut again into TAIL_PIECES.

    Why the short tail: a big file's ranges are the last units of a pass, and with even pieces
    the last one often runs alone while the other workers wait (13 ranges on 2 workers: one
    range's time with a core idle). Short last ranges go to whichever workers are free, so the
    pass ends within a short range of its ideal, for any number of workers."""
    n = math.ceil(size / unit_bytes)
    if n <= 1:
        return []
    even = [k * size // n for k in range(1, n)]
    last = even[-1]
    return even + [last + j * (size - last) // TAIL_PIECES for j in range(1, TAIL_PIECES)]


def _gzip_jsonl_parts(path: str, unit_bytes: int) -> list[UnitPart]:
    size = os.path.getsize(path)
    targets = _targets(size, unit_bytes)
    if not targets or not may_have_members(path):
        return []
    found = gzip_line_cuts(path, targets)
    if found is None:
        return []
    cuts = found.cuts
    # each range's lines run to the next range's first line; the last range's to the end
    line_ends = [c.decoded + c.skip for c in cuts[1:]] + [found.decoded_size]
    ends = [c.offset for c in cuts[1:]] + [size]
    return [
        UnitPart(k, cut.offset, ends[k], cut.first_line, found.lines + cut.first_line + k,
                 cut.skip, line_ends[k] - cut.decoded)
        for k, cut in enumerate(cuts)
    ]


def _warc_parts(path: str, unit_bytes: int) -> list[UnitPart]:
    size = os.path.getsize(path)
    targets = _targets(size, unit_bytes)
    if not targets or (compression_of(path) == "gzip" and not may_have_members(path)):
        return []  # a .warc.gz in one member has no record to cut at but the first
    starts, framed = record_starts(path)  # damage is framed, not raised; OSError: read whole
    offsets = [offset for offset, _ in starts]
    chosen = [(0, 0)]  # the file's start: a fresh scanner there is the whole-file scan
    for target in targets:
        i = bisect.bisect_left(offsets, target)
        if i < len(starts) and starts[i][0] > chosen[-1][0]:
            chosen.append(starts[i])
    bounds = [offset for offset, _ in chosen] + [size]
    return [
        UnitPart(k, bounds[k], bounds[k + 1], first, framed + first + k)
        for k, (_, first) in enumerate(chosen)
    ]


def _jsonl_parts(path: str, unit_bytes: int) -> list[UnitPart]:
    size = os.path.getsize(path)
    targets = _targets(size, unit_bytes)
    if not targets:
        return []
    cuts = [0]
    with open(path, "rb") as f:
        for target in targets:
            f.seek(target - 1)
            f.readline()  # to the end of the line holding the nominal cut's previous byte
            pos = f.tell()
            if cuts[-1] < pos < size:  # a line longer than a range makes no empty range
                cuts.append(pos)
        cuts.append(size)
        # lines before each cut: every line counts (blank ones too), as frame_lines numbers them
        f.seek(0)
        lines_before, pos, newlines = [0], 0, 0
        for cut in cuts[1:]:
            while pos < cut:
                chunk = f.read(min(cut - pos, _COUNT_CHUNK))
                if not chunk:
                    break
                newlines += chunk.count(b"\n")
                pos += len(chunk)
            lines_before.append(newlines)
        f.seek(max(size - 1, 0))
        total = newlines + (f.read(1) not in (b"\n", b""))  # a last line without newline
    return [
        UnitPart(k, cuts[k], cuts[k + 1], lines_before[k], total + lines_before[k] + k)
        for k in range(len(cuts) - 1)
    ]


def _parquet_parts(path: str, unit_bytes: int) -> list[UnitPart]:
    import pyarrow.parquet as pq

    try:
        meta = pq.ParquetFile(path).metadata
    except Exception:  # noqa: BLE001 - not parquet / no footer: read whole, quarantined there
        return []
    groups = [meta.row_group(g) for g in range(meta.num_row_groups)]
    bounds, rows_before, size, rows = [0], [0], 0, 0
    for g, group in enumerate(groups):
        size += sum(group.column(c).total_compressed_size for c in range(group.num_columns))
        rows += group.num_rows
        if size >= unit_bytes and g + 1 < len(groups):
            bounds.append(g + 1)
            rows_before.append(rows)
            size = 0
    bounds.append(len(groups))
    total = meta.num_rows
    return [
        UnitPart(k, bounds[k], bounds[k + 1], rows_before[k], total + rows_before[k] + k)
        for k in range(len(bounds) - 1)
    ]
