"""Line framing for line-per-record inputs (jsonl): bounded lines and an independent count.

Every read is a `readline(limit)`, so no line is held past `max_line_bytes`: a longer one is
read through in chunks while its bytes are counted, and handed on as `LongLine` (the reader
makes it one too_large row). The framer counts each record into the unit's ReadTally before
any parser sees it; the parser's own row count is then checked against it (connectors/tally.py).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO

from connectors.fs import open_input
from connectors.split import UnitPart
from connectors.tally import ReadTally
from connectors.validate import RecordedError

_BOM = b"\xef\xbb\xbf"
_DRAIN_CHUNK = 1 << 20


@dataclass(frozen=True)
class LongLine:
    """A line over the limit, read through but not kept."""

    n_bytes: int  # its length without the newline


@dataclass(frozen=True)
class Break:
    """Reading stopped here (truncated or unreadable input): the rest of the file is one record."""

    error: Exception


def frame_lines(
    source: str, max_line_bytes: int, tally: ReadTally, part: UnitPart | None = None
) -> Iterator[tuple[int, bytes | LongLine | Break]]:
    """(0-based line number, line) for each record of `source`, in order; with `part`, of the
    lines that start in its range (line numbers still count from the file's start): a plain
    file's bytes [start, end), or for a gzip file the `span` decoded bytes from the member at
    `start`, less the `skip` bytes of a line begun before (connectors/gzip_lines.py).

    A record is a non-blank line: its bytes with the newline (a leading BOM dropped), or a
    LongLine. Any failure to read (truncated compression, unreadable file) ends the iterator
    with one Break at the line where it happened. A truncated .gz/.zst raises before handing out
    the cut last line, so every line yielded is complete. A spilled range (`part.spill`) reads
    its plain chunk of the decoded file; the last one ends with the whole file's Break, if any.
    """
    line_no = part.first_record if part is not None else 0
    # a spilled range's lines are in its plain chunk file (connectors/spill.py), all of them
    path = part.spill if part is not None and part.spill is not None else source
    try:
        with open_input(path, start=part.start if part is not None else 0) as f:
            end = None
            if part is not None:  # tell() counts from `start` in a gzip file, from 0 in a plain
                end = f.tell() + (part.span if part.span is not None else part.end - part.start)
                _skip(f, part.skip)
            while end is None or f.tell() < end:
                line = f.readline(max_line_bytes + 1)
                if not line:
                    break
                n_bytes = len(line) - line.endswith(b"\n")
                if n_bytes > max_line_bytes:
                    tally.framed += 1
                    yield line_no, LongLine(n_bytes + _drain_line(f))
                else:
                    if line_no == 0 and line.startswith(_BOM):
                        line = line[len(_BOM) :]
                    if line and not line.isspace():  # blank lines are not records
                        tally.framed += 1
                        yield line_no, line
                line_no += 1
        if part is not None and part.stop is not None:
            # where decoding the whole file broke off: the same Break, at the same line
            raise RecordedError(**part.stop)
    except Exception as exc:  # noqa: BLE001 - the break is one quarantined record, not a crash
        tally.framed += 1
        yield line_no, Break(exc)


def _skip(f: IO[bytes], n: int) -> None:
    """Drop `n` bytes (the end of a line begun in the previous range) in bounded reads."""
    while n > 0:
        data = f.read(min(n, _DRAIN_CHUNK))
        if not data:
            return
        n -= len(data)


def _drain_line(f: IO[bytes]) -> int:
    """Read the rest of the current line in bounded chunks; its length without the newline."""
    n_bytes = 0
    while True:
        chunk = f.readline(_DRAIN_CHUNK)
        if not chunk:
            return n_bytes
        if chunk.endswith(b"\n"):
            return n_bytes + len(chunk) - 1
        n_bytes += len(chunk)
