"""Work units below the file: a large plain jsonl file becomes line-aligned byte ranges, a large
parquet file runs of whole row groups, each range a unit of its own (its own pass-1 file and
completion marker), so one big file keeps every worker busy and a resume redoes only the ranges
that had not finished.

A range keeps the records' identity: its first record's ordinal is the number of lines (rows)
before it in the file, so every document gets the very `<source hash>:<record>` doc_id it gets
when the file is read whole, and the result does not depend on how the file was cut. The cut
points are found by the driver before any work (one read of the file to count lines, at memory
speed), and depend only on the file and `read.unit_bytes`, so a resume cuts it the same way.

Not split: compressed files (a gzip or zstd stream cannot be entered in the middle), WARC files,
text/html files (one document), DuckDB queries, and inputs that are not local files (cutting
them would mean reading them once more through the network).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from connectors.fs import compression_of, is_local

if TYPE_CHECKING:
    from connectors.registry import SourceUnit

_COUNT_CHUNK = 16 << 20


@dataclass(frozen=True)
class UnitPart:
    """One range of a file that is a unit of its own."""

    index: int  # k-th range of the file
    start: int  # jsonl: byte offset of its first line; parquet: its first row group
    end: int  # exclusive: the next range's start (the file's size / row group count at the end)
    first_record: int  # ordinal of its first record: lines (rows) of the file before it
    # First ordinal the range may give rows the reader adds itself (an unreadable stretch, a
    # record lost in parsing): past every record of the file, and apart from the other ranges'.
    spare_record: int

    def to_json(self) -> dict:
        return self.__dict__.copy()


def split_unit(unit: SourceUnit, unit_bytes: int) -> list[SourceUnit]:
    """`unit` cut into ranges of about `unit_bytes` (one unit when it is small or not
    splittable, see the module docstring)."""
    if unit_bytes <= 0 or unit.part is not None or not is_local(unit.source):
        return [unit]
    path = unit.source.removeprefix("file://")
    try:
        if unit.format == "jsonl" and compression_of(path) is None:
            parts = _jsonl_parts(path, unit_bytes)
        elif unit.format == "parquet":
            parts = _parquet_parts(path, unit_bytes)
        else:
            return [unit]
    except OSError:
        return [unit]  # unreadable now: the worker reads it whole and quarantines what fails
    return [replace(unit, part=p) for p in parts] if len(parts) > 1 else [unit]


def _jsonl_parts(path: str, unit_bytes: int) -> list[UnitPart]:
    size = os.path.getsize(path)
    n = math.ceil(size / unit_bytes)
    if n <= 1:
        return []
    cuts = [0]
    with open(path, "rb") as f:
        for k in range(1, n):
            f.seek(k * size // n - 1)
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
