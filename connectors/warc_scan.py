"""WARC framing: find each record by its header block and Content-Length, count the response
records, hold at most a capped body, and resynchronise after damage.

A WARC file is a run of records: a `WARC/1.x` line, header lines, a blank line, exactly
Content-Length bytes of block, then CRLF CRLF. The scanner reads only that framing; what a
response holds (HTTP headers, the HTML) is the parser's business (connectors/warc.py), so a
parser that stops early cannot hide records from the count (ReadTally.framed).

After damage the scanner skips to the next record and reports the skipped stretch as one
`Damage` frame: in a .warc.gz, to the next gzip member that decodes and starts a `WARC/1.x`
record (connectors/gzip_members.py); elsewhere, to the next `WARC/1.x` line. warcio 1.8 and
FastWARC 2.0 both raise at the first bad record (a corrupt member, a garbage line) and end the
file there; their record offsets say where the bad record began, not where the next good one
does, hence a scanner of our own.

For .warc.gz, a response is handed on only once the next record has begun or the file has
ended, that is, once its member's CRC has been checked: a member that decodes to wrong bytes
without a deflate error is caught there and its record becomes part of the damage.

Ranges (connectors/split.py): `record_starts` runs this scanner over a whole file and notes each
record it read whole that begins where a fresh scanner could begin (a gzip member's first byte,
or any line of an uncompressed file), with the ordinal it got. Started there with that ordinal,
the scanner is in the state the whole-file scan was in (nothing pending is the previous range's,
and any open damage ends at that line, in the previous range), so it frames the same records,
damage included, with the same ordinals and messages, until it meets the next range's first
line, where it stops as the whole-file scan would have gone on.

Why a whole scan and not a cheaper search for members: ranges need the ordinals, and damage
takes ordinals (a corrupt request member is a Damage frame; neighbouring bad members merge into
one), which only decoding every member through this scanner gives. Measured on the shared
crawl WARCs concatenated 40 times (23.5 MB, 5,280 members), CPU s: a search for member headers,
each verified by decoding its first bytes, 0.06; walking the members with zlib's
`unused_data`, 0.25; `record_starts`, 0.46; reading the file whole (`read_unit`), 3.4. So the
driver spends ~13% of a whole read's CPU to cut a .warc.gz.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING

import fsspec

from connectors.fs import compression_of, open_input
from connectors.gzip_members import CorruptMember, GzipMembers
from connectors.tally import ReadTally
from connectors.validate import (
    CORRUPT_RECORD,
    TRUNCATED_FILE,
    UNREADABLE_FILE,
    TruncatedInputError,
)

if TYPE_CHECKING:
    from connectors.split import UnitPart

_MAX_LINE = 1 << 16  # longer header or garbage lines are read through in pieces
_MAX_HEADER_BYTES = 1 << 20  # a record's whole header block; real ones are a few hundred bytes
_HEAD_BYTES = 1 << 16  # kept of a body over the cap: room for its HTTP headers
_SKIP_CHUNK = 1 << 20
_VERSION_AT_END = re.compile(rb"WARC/1\.\d\r?\n\Z")


@dataclass(frozen=True)
class Response:
    """A response record. `body` is the whole block, or only its first bytes when Content-Length
    is over the cap (`complete` False): such a body is read through, never held."""

    ordinal: int  # response records and damaged stretches, counted from 0 in file order
    offset: int  # where the record starts (for .warc.gz: the offset of its gzip member)
    where: str  # the offset in words, for error messages ("compressed byte 3296")
    headers: dict[str, str]  # WARC headers, names lower-cased
    block: bytes  # the header block as read, version line to blank line
    body: bytes
    length: int  # Content-Length

    @property
    def complete(self) -> bool:
        return len(self.body) == self.length


@dataclass(frozen=True)
class Damage:
    """A stretch that could not be framed: one quarantined record."""

    ordinal: int
    reason: str  # corrupt_record, or truncated_file / unreadable_file (the file ends with it)
    error: str


class _BadRecord(Exception):
    """A record whose framing is wrong (no Content-Length, a block not followed by a blank
    line, a header block too long); reading resumes at the next record line."""

    def __init__(self, offset: int, message: str) -> None:
        super().__init__(message)
        self.offset = offset


class _Plain:
    """An uncompressed (or whole-file compressed) WARC stream with offsets; it has no members
    to skip to, so after damage the scanner looks for the next record line."""

    member_start: int | None = None
    # Any line may begin a range: a scanner seeked to it reads what the whole-file one read.
    last_at_boundary = True

    def __init__(self, stream: IO[bytes], offsets: str, start: int = 0) -> None:
        self._stream = stream
        self.offsets = offsets
        self.last_start = start
        self._pos = start

    def readline(self, limit: int) -> bytes:
        line = self._stream.readline(limit)
        self.last_start, self._pos = self._pos, self._pos + len(line)
        return line

    def read(self, n: int) -> bytes:
        data = self._stream.read(n)
        self.last_start, self._pos = self._pos, self._pos + len(data)
        return data

    def skip_member(self) -> bool:
        return False


@contextlib.contextmanager
def _open(source: str, start: int = 0) -> Iterator[GzipMembers | _Plain]:
    """`source` decoded from `start`: a record start `record_starts` found (0: the file)."""
    if compression_of(source) == "gzip":
        with fsspec.open(source, "rb") as raw:
            raw.seek(start)
            yield GzipMembers(raw, start=start)
    else:
        offsets = "byte" if compression_of(source) is None else "decompressed byte"
        with open_input(source) as stream:
            if start:
                stream.seek(start)  # only uncompressed files are cut (connectors/split.py)
            yield _Plain(stream, offsets, start)


def scan_warc(
    source: str, max_body_bytes: int, tally: ReadTally, part: UnitPart | None = None
) -> Iterator[Response | Damage]:
    """The response records and damaged stretches of `source` (of its range `part`), in file
    order, each counted into `tally.framed`. Never raises for bad data: a file that cannot be
    opened, or whose remaining bytes cannot be decoded, ends with one Damage frame."""
    scanner = _Scanner(max_body_bytes, tally)
    if part is not None:
        scanner.ordinal, scanner.end = part.first_record, part.end
    try:
        with _open(source, part.start if part is not None else 0) as src:
            yield from scanner.frames(src)
    except Exception as exc:  # noqa: BLE001 - cannot open or close: the rest is one record
        yield scanner.count(_break_damage(exc, "", scanner.ordinal))


def record_starts(source: str) -> tuple[list[tuple[int, int]], int]:
    """Where a range of `source` may begin: (offset, ordinal) of each record that starts at a
    gzip member's first byte (in an uncompressed file: at any line) and was read whole, in file
    order; and the file's frame count. One scan of the whole file with bodies read through
    (decoding every member is the only way to know the ordinals: damage takes ordinals too)."""
    scanner = _Scanner(0, ReadTally())
    scanner.starts = []
    with _open(source) as src:
        for _ in scanner.frames(src):
            pass
    return scanner.starts, scanner.ordinal


def _break_damage(exc: Exception, where: str, ordinal: int) -> Damage:
    cut = isinstance(exc, (EOFError, TruncatedInputError))
    return Damage(
        ordinal, TRUNCATED_FILE if cut else UNREADABLE_FILE, f"{type(exc).__name__}: {exc}{where}"
    )


class _Scanner:
    def __init__(self, max_body_bytes: int, tally: ReadTally) -> None:
        self.max_body = max_body_bytes
        self.tally = tally
        self.ordinal = 0
        self.found_record = False
        self.pending: Response | None = None  # read, waiting for its member's CRC check
        self.damage_start: int | None = None  # offset where the open damaged stretch began
        self.damage_error = ""
        self.reading: int | None = None  # offset of the record being read
        # a version line read as a trailer, where it starts, and if a range may begin there
        self.stashed: tuple[bytes, int, bool] | None = None
        self.end: int | None = None  # a range's end: the offset of the next range's first line
        self.starts: list[tuple[int, int]] | None = None  # record_starts' findings, if asked

    def count(self, frame: Response | Damage) -> Response | Damage:
        """Count a frame as it is handed on."""
        self.tally.framed += 1
        self.ordinal += 1
        return frame

    def frames(self, src: GzipMembers | _Plain) -> Iterator[Response | Damage]:
        stop: int | None = None  # where the next range begins, once its first line is read
        while True:
            try:
                line, start, at_boundary = self._next_line(src)
                if not line:
                    break
                if self.end is not None and start >= self.end:
                    stop = start  # that line is the next range's: end as the whole scan goes on
                    break
                version = line
                if not line.startswith(b"WARC/"):
                    cut = _version_at_end(line)
                    yield from self._flush_pending()  # its block ended where it should
                    self._open_damage(start, f"{line[:40]!r} where a WARC record should start")
                    if cut is None:
                        continue
                    version = line[cut:]
                    if src.member_start is None:  # the record begins inside this line
                        start += cut
                yield from self._flush_pending()
                yield from self._close_damage(start, src.offsets)
                self.reading = start
                ordinal = self.ordinal
                self.pending = self._read_record(src, version, start)
                self.reading = None
                self.found_record = True
                if self.starts is not None and at_boundary and version is line:
                    self.starts.append((start, ordinal))
            except _BadRecord as exc:
                self.reading = None
                self._open_damage(exc.offset, str(exc))
            except CorruptMember as exc:
                yield from self._drop_pending_in(src.member_start)
                at = self.reading if self.reading is not None else src.member_start
                self.reading = None
                self._open_damage(at, str(exc))
                if not src.skip_member():
                    break
            except Exception as exc:  # noqa: BLE001 - truncated, or undecodable: the end
                yield from self._drop_pending_in(src.member_start)
                yield from self._end_with(exc, src)
                return
        yield from self._flush_pending()
        yield from self._close_damage(stop, src.offsets)

    # --- one record ----------------------------------------------------------------------

    def _read_record(
        self, src: GzipMembers | _Plain, version: bytes, start: int
    ) -> Response | None:
        """Read one record after its version line; the Response if it is one, else None."""
        block, headers = _read_headers(src, version, start)
        try:
            length = int(headers["content-length"])
            if length < 0:
                raise ValueError(length)
        except (KeyError, ValueError):
            raise _BadRecord(
                start,
                f"WARC record at {src.offsets} {start} has no valid Content-Length "
                f"({headers.get('content-length')!r})",
            ) from None
        is_response = headers.get("warc-type", "").lower() == "response"
        if not is_response:
            body = b""
            _skip(src, length, start)
        elif length <= self.max_body:
            body = _read_exact(src, length, start)
        else:  # keep the start (HTTP headers), read the rest through without holding it
            body = _read_exact(src, min(length, _HEAD_BYTES), start)
            _skip(src, length - len(body), start)
        trailer = src.readline(_MAX_LINE)
        if trailer.startswith(b"WARC/"):
            # No CRLF CRLF before the next record: lenient, as warcio is; the line is the next
            # record's version line.
            self.stashed = (trailer, src.last_start, src.last_at_boundary)
        elif trailer and not trailer.isspace():
            raise _BadRecord(
                start,
                f"WARC record at {src.offsets} {start}: its {length}-byte block is not followed "
                "by a blank line (wrong Content-Length?)",
            )
        if not is_response:
            return None
        where = f"{src.offsets} {start}"
        return Response(self.ordinal, start, where, headers, block, body, length)

    def _next_line(self, src: GzipMembers | _Plain) -> tuple[bytes, int, bool]:
        """The next non-blank line, where it starts and whether a range may begin there;
        (b"", _, _) at the end. Only its first _MAX_LINE bytes are returned, the rest of a
        longer line is read through."""
        if self.stashed is not None:
            stashed, self.stashed = self.stashed, None
            return stashed
        while True:
            line = src.readline(_MAX_LINE)
            start, at_boundary = src.last_start, src.last_at_boundary
            if not line:
                return b"", start, at_boundary
            if not line.endswith(b"\n"):
                _drain_line(src)
            if not line.isspace():
                return line, start, at_boundary

    # --- pending records and damaged stretches ------------------------------------------

    def _flush_pending(self) -> Iterator[Response | Damage]:
        if self.pending is not None:
            record, self.pending = self.pending, None
            # Its ordinal was reserved when it was read; a damage found since comes after it.
            yield self.count(record)

    def _drop_pending_in(self, member: int | None) -> Iterator[Response | Damage]:
        """A decoding failure in `member`: a pending record from that member is part of the
        damage; one from an earlier member was checked whole and is handed on."""
        if self.pending is None:
            return
        if member is not None and self.pending.offset == member:
            self._open_damage(self.pending.offset, "")
            self.pending = None
        else:
            yield from self._flush_pending()

    def _open_damage(self, offset: int, error: str) -> None:
        if self.damage_start is None:
            self.damage_start = offset
        if error and not self.damage_error:
            self.damage_error = error

    def _close_damage(self, end: int | None, offsets: str) -> Iterator[Response | Damage]:
        if self.damage_start is None:
            return
        start, error = self.damage_start, self.damage_error
        self.damage_start, self.damage_error = None, ""
        if end is None and not self.found_record:
            yield self.count(
                Damage(self.ordinal, UNREADABLE_FILE, f"no WARC record found: {error}")
            )
            return
        to = f"{offsets} {end}" if end is not None else "the end of the file"
        yield self.count(
            Damage(
                self.ordinal,
                CORRUPT_RECORD,
                f"damaged WARC data from {offsets} {start} to {to}, skipped: {error}",
            )
        )

    def _end_with(self, exc: Exception, src: GzipMembers | _Plain) -> Iterator[Response | Damage]:
        """The file cannot be read past here: one last record, with any open damage in it."""
        where = ""
        if self.damage_start is not None:
            where = f" (damaged from {src.offsets} {self.damage_start}: {self.damage_error})"
            self.damage_start, self.damage_error = None, ""
        yield self.count(_break_damage(exc, where, self.ordinal))


def _version_at_end(line: bytes) -> int | None:
    """Where a `WARC/1.x` line starts inside a garbage line (garbage without a newline runs
    straight into the next record), or None."""
    at = line.rfind(b"WARC/1.")
    if at > 0 and _VERSION_AT_END.match(line, at):
        return at
    return None


def _read_headers(
    src: GzipMembers | _Plain, version: bytes, start: int
) -> tuple[bytes, dict[str, str]]:
    parts = [version]
    size = len(version)
    headers: dict[str, str] = {}
    while True:
        line = src.readline(_MAX_LINE)
        if not line:
            raise TruncatedInputError(
                f"file ends inside the headers of the record at {src.offsets} {start}"
            )
        parts.append(line)
        size += len(line)
        if size > _MAX_HEADER_BYTES:
            raise _BadRecord(
                start, f"WARC record at {src.offsets} {start}: header block over {size} bytes"
            )
        if line.isspace():
            return b"".join(parts), headers
        name, colon, value = line.partition(b":")
        if colon:  # folded or malformed lines are left to the parser
            headers[name.strip().lower().decode("latin-1")] = value.strip().decode(
                "utf-8", "replace"
            )


def _read_exact(src: GzipMembers | _Plain, n: int, start: int) -> bytes:
    parts: list[bytes] = []
    got = 0
    while got < n:
        data = src.read(min(n - got, _SKIP_CHUNK))
        if not data:
            raise TruncatedInputError(
                f"file ends {got} bytes into the {n}-byte block of the record at "
                f"{src.offsets} {start}"
            )
        parts.append(data)
        got += len(data)
    return b"".join(parts)


def _skip(src: GzipMembers | _Plain, n: int, start: int) -> None:
    left = n
    while left:
        data = src.read(min(left, _SKIP_CHUNK))
        if not data:
            raise TruncatedInputError(
                f"file ends {n - left} bytes into the {n}-byte block of the record at "
                f"{src.offsets} {start}"
            )
        left -= len(data)


def _drain_line(src: GzipMembers | _Plain) -> None:
    while True:
        piece = src.readline(_SKIP_CHUNK)
        if not piece or piece.endswith(b"\n"):
            return
