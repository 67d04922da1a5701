"""A multi-member gzip file read member by member: bounded reads, member offsets, and a way past
a damaged member.

Python's gzip module decodes a multi-member file as one stream and stops for good at the first
bad member. A .warc.gz holds one record per member (WARC 1.1, annex D), so a reader that knows
where members start can step over a damaged one and go on with the next (connectors/warc_scan.py).
Every decoder call yields at most `max_out` bytes, so a member that inflates to gigabytes is read
a piece at a time and never held.
"""

from __future__ import annotations

import zlib
from typing import IO

from connectors.validate import TruncatedInputError

# Magic, then CM=8 (deflate): what every gzip member starts with.
_MEMBER_MAGIC = b"\x1f\x8b\x08"
_RESERVED_FLAGS = 0xE0  # must be zero in a real member header; rules out most false matches


_PROBE = 1 << 10  # compressed bytes a candidate member must decode without error


def may_have_members(path: str) -> bool:
    """Whether local file `path` may hold a second gzip member: a header after byte 0 whose
    first compressed bytes decode. A single-member file (most .gz) is ruled out at the speed of
    reading it, not of inflating it, before anything walks its members; a false match inside
    deflate data only costs that walk."""
    with open(path, "rb") as f:
        tail, at = b"", 1  # `tail`: the last bytes of the previous block, for a split header
        f.seek(1)
        while block := f.read(1 << 20):
            data = tail + block
            found = data.find(_MEMBER_MAGIC)
            while found >= 0:
                if found + 3 < len(data) and not data[found + 3] & _RESERVED_FLAGS:
                    if _decodes(f, at - len(tail) + found):
                        return True
                found = data.find(_MEMBER_MAGIC, found + 1)
            tail = data[-3:]
            at += len(block)
    return False


def _decodes(f: IO[bytes], offset: int) -> bool:
    back = f.tell()
    f.seek(offset)
    probe = f.read(_PROBE)
    f.seek(back)
    try:
        zlib.decompressobj(zlib.MAX_WBITS | 16).decompress(probe, 1 << 16)
    except zlib.error:
        return False
    return True


class CorruptMember(Exception):
    """A gzip member that cannot be decoded: bad deflate data, CRC or length, or no gzip magic."""


class GzipMembers:
    """Decoded bytes of a gzip file, with `readline(limit)` and `read(n)` like a binary stream.

    `last_start` is the file offset of the member the first byte of the last read came from, so
    a caller can say where a record starts, and `last_at_boundary` whether that byte was the
    member's first (a record there may begin a range of the file, connectors/split.py);
    `member_start` is the member being decoded now. A decoding failure raises CorruptMember;
    `skip_member()` then moves to the next plausible member header. Input that ends inside a
    member raises TruncatedInputError (file cut short).
    """

    offsets = "compressed byte"  # how `last_start`/`member_start` read in an error message

    def __init__(
        self, raw: IO[bytes], chunk_size: int = 1 << 16, max_out: int = 1 << 20, start: int = 0
    ) -> None:
        """`raw` is positioned at file offset `start`: a member's first byte, or 0."""
        self._raw = raw
        self._chunk = chunk_size
        self._max_out = max_out
        self._in = b""  # input read but not yet decoded
        self._in_at = start  # file offset of self._in[0]
        self._dec: zlib._Decompress | None = None  # decoder of the current member, if inside one
        self.member_start = start
        self.last_start = start
        self.last_at_boundary = False
        self._out = b""  # decoded bytes; those before _pos were handed out
        self._pos = 0
        self._out_member = start  # member the bytes in _out came from
        self._out_first = False  # _out is its member's first decoded piece
        self._fresh = False  # the current member has decoded nothing yet

    # --- reading -------------------------------------------------------------------------

    def read(self, n: int) -> bytes:
        """Up to `n` decoded bytes (fewer at a member's piece boundary); b"" at the end."""
        if self._pos >= len(self._out) and not self._decode():
            return b""
        self._mark_start()
        piece = self._out[self._pos : self._pos + n]
        self._pos += len(piece)
        return piece

    def readline(self, limit: int) -> bytes:
        """The next line with its newline, or its first `limit` bytes; b"" at the end."""
        parts: list[bytes] = []
        while limit > 0:
            if self._pos >= len(self._out) and not self._decode():
                break
            if not parts:
                self._mark_start()
            end = self._out.find(b"\n", self._pos, self._pos + limit)
            stop = end + 1 if end >= 0 else min(len(self._out), self._pos + limit)
            parts.append(self._out[self._pos : stop])
            limit -= stop - self._pos
            self._pos = stop
            if end >= 0:
                break
        return b"".join(parts)

    def _mark_start(self) -> None:
        self.last_start = self._out_member
        self.last_at_boundary = self._out_first and self._pos == 0

    def _decode(self) -> bool:
        """Decode the next piece of output; False at the clean end of the input."""
        while True:
            if self._dec is None and not self._start_member():
                return False
            assert self._dec is not None
            if not self._in and not self._read_raw():
                raise TruncatedInputError(
                    f"gzip member at byte {self.member_start} is cut short (file truncated)"
                )
            fed = len(self._in)
            try:
                out = self._dec.decompress(self._in, self._max_out)
            except zlib.error as exc:
                raise CorruptMember(f"gzip member at byte {self.member_start}: {exc}") from None
            if self._dec.eof:  # the member ended and its CRC and length were checked
                rest = self._dec.unused_data
                self._dec = None
            else:
                rest = self._dec.unconsumed_tail
            self._in_at += fed - len(rest)
            self._in = rest
            if out:
                self._out, self._pos, self._out_member = out, 0, self.member_start
                self._out_first, self._fresh = self._fresh, False
                return True

    def _start_member(self) -> bool:
        """Begin decoding the member at the current position; False at the end of the input.
        Zero padding between or after members is skipped, as gzip(1) does."""
        while True:
            if not self._in and not self._read_raw():
                return False
            padding = len(self._in) - len(self._in.lstrip(b"\0"))
            self._in, self._in_at = self._in[padding:], self._in_at + padding
            if self._in:
                break
        while len(self._in) < 2 and self._read_raw():
            pass
        if not self._in.startswith(_MEMBER_MAGIC[:2]):
            self.member_start = self._in_at  # where the damage is, and where a skip starts from
            raise CorruptMember(f"no gzip member at byte {self._in_at} (starts {self._in[:4]!r})")
        self._dec = zlib.decompressobj(zlib.MAX_WBITS | 16)
        self.member_start = self._in_at
        self._fresh = True
        return True

    def _read_raw(self) -> bool:
        data = self._raw.read(self._chunk)
        if not data:
            return False
        self._in = self._in + data if self._in else data
        return True

    # --- resynchronising -----------------------------------------------------------------

    def skip_member(self) -> bool:
        """Drop the current member and go to the next offset after its start that looks like a
        member header (magic, deflate, no reserved flags); False if the file has none. Whether
        that is a real member shows when it is decoded: a false match fails and is skipped the
        same way, each time one byte further on."""
        self._dec, self._out, self._pos = None, b"", 0
        restart = self.member_start + 1
        if self._raw.seekable():
            # Back to just after the bad member's start: its damage may have made the decoder
            # run past the next member's header before it noticed.
            self._raw.seek(restart)
            self._in, self._in_at = b"", restart
        elif self._in_at < restart:
            self._in, self._in_at = self._in[restart - self._in_at :], restart
        while True:
            found = self._in.find(_MEMBER_MAGIC)
            while found >= 0 and found + 3 < len(self._in):
                if not self._in[found + 3] & _RESERVED_FLAGS:
                    self._in, self._in_at = self._in[found:], self._in_at + found
                    self.member_start = self._in_at
                    return True
                found = self._in.find(_MEMBER_MAGIC, found + 1)
            # Keep a tail that may hold the start of a header split across reads.
            keep = len(self._in) - found if found >= 0 else min(len(self._in), 3)
            self._in, self._in_at = (
                self._in[len(self._in) - keep :],
                self._in_at + len(self._in) - keep,
            )
            if not self._read_raw():
                self._in, self._in_at = b"", self._in_at + len(self._in)
                return False
