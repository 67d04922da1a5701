"""Cut points of a multi-member gzip jsonl (bgzip output, `cat a.jsonl.gz b.jsonl.gz`): a range
may begin at any member, since decoding can start there; its records are the lines that begin
in it, so a line running over a member boundary is the earlier range's.

A range begins at member offset `offset`, drops the first `skip` decoded bytes there (the end of
a line begun before it; 0 when the member starts a line) and owns the lines beginning in its
next `span` decoded bytes (counted from the member's start). `first_line` counts every line
before it, blank ones too, as connectors/lines.py numbers them, so doc_ids are those of the
whole-file read.

Finding them decodes every member once (zlib, in C: newlines are counted with bytes.count), as
counting lines of a plain file reads it once. A file that does not decode cleanly to its end (a
corrupt or truncated member, trailing garbage) is not cut: the whole-file reader stops for good
at its first bad member (gzip has no resynchronisation), and so must every range after it.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import IO

_MAGIC = b"\x1f\x8b\x08"  # a member header: magic, CM=8 (deflate), as Python's gzip checks it
_CHUNK = 1 << 20
_MAX_OUT = 4 << 20  # decoded bytes per zlib call: a member that inflates to gigabytes is never held


@dataclass(frozen=True)
class LineCut:
    """Where one range of a gzip jsonl begins."""

    offset: int  # compressed offset of the member it begins at
    skip: int  # decoded bytes dropped there: the end of a line begun in the previous range
    decoded: int  # decoded offset of that member's first byte
    first_line: int  # lines of the file before the range's first line


@dataclass(frozen=True)
class GzipLines:
    cuts: list[LineCut]  # the first is (0, 0, 0, 0)
    decoded_size: int
    lines: int  # lines of the file, a last line without newline included


def gzip_line_cuts(path: str, targets: list[int]) -> GzipLines | None:
    """A range start at the first member at or after each compressed offset in `targets`
    (ascending), unless that range would hold no line; None when the file has one member or
    does not decode cleanly to its end."""
    walk = _Walk(targets)
    with open(path, "rb") as f:
        if not walk.run(f):
            return None
    if walk.members < 2:
        return None
    cuts = [c for c in walk.cuts if c.decoded + c.skip < walk.decoded]  # no empty last range
    return GzipLines(cuts, walk.decoded, walk.newlines + (walk.last not in (b"\n", b"")))


class _Walk:
    """Every member decoded in turn; cuts opened at member starts, each settled once the first
    newline after it (the start of its first line) is seen."""

    def __init__(self, targets: list[int]) -> None:
        self.targets = targets
        self.next_target = 0
        self.cuts = [LineCut(0, 0, 0, 0)]
        self.open: tuple[int, int, int] | None = None  # (offset, decoded, newlines) unsettled
        self.members = 0
        self.decoded = 0  # decoded bytes so far
        self.newlines = 0
        self.last = b""  # the last decoded byte

    def run(self, f: IO[bytes]) -> bool:
        """False if a member fails to decode or the input ends inside one."""
        buf, at = b"", 0  # undecoded input and its file offset
        while True:
            # zero padding after a member is skipped, as Python's gzip does (not before the first)
            while not (buf.lstrip(b"\0") if self.members else buf):
                at += len(buf)
                buf = f.read(_CHUNK)
                if not buf:
                    return True
            if self.members:
                pad = len(buf) - len(buf.lstrip(b"\0"))
                buf, at = buf[pad:], at + pad
            while len(buf) < 3 and (more := f.read(_CHUNK)):
                buf += more
            if not buf.startswith(_MAGIC):
                return False  # trailing garbage: the whole-file reader fails here
            self._member_start(at)
            dec = zlib.decompressobj(zlib.MAX_WBITS | 16)
            while not dec.eof:
                if not buf:
                    buf = f.read(_CHUNK)
                    if not buf:
                        return False  # cut short inside a member
                fed = len(buf)
                try:
                    out = dec.decompress(buf, _MAX_OUT)
                except zlib.error:
                    return False
                buf = dec.unused_data if dec.eof else dec.unconsumed_tail
                at += fed - len(buf)
                if out:
                    self._output(out)
            self.members += 1

    def _member_start(self, offset: int) -> None:
        if self.next_target >= len(self.targets) or self.targets[self.next_target] > offset:
            return
        while self.next_target < len(self.targets) and self.targets[self.next_target] <= offset:
            self.next_target += 1  # targets in one member (or an unsettled cut's) make one cut
        if self.open is None and self.decoded > self._last_line_start():
            if self.last == b"\n":
                self.cuts.append(LineCut(offset, 0, self.decoded, self.newlines))
            else:
                self.open = (offset, self.decoded, self.newlines)

    def _last_line_start(self) -> int:
        last = self.cuts[-1]
        return last.decoded + last.skip

    def _output(self, out: bytes) -> None:
        if self.open is not None:
            at = out.find(b"\n")
            if at >= 0:
                offset, decoded, newlines = self.open
                skip = self.decoded + at + 1 - decoded
                self.cuts.append(LineCut(offset, skip, decoded, newlines + 1))
                self.open = None
        self.newlines += out.count(b"\n")
        self.decoded += len(out)
        self.last = out[-1:]
