"""Filesystem helpers over fsspec: input expansion and atomic output writes.

Outputs are written to a temporary name in the same folder and renamed into place, so a killed
job never leaves a half-written file under a final name (resume trusts final names).
"""

from __future__ import annotations

import bz2
import contextlib
import gzip
import io
import lzma
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import fsspec
import pyarrow as pa
import pyarrow.parquet as pq


def filesystem(path: str) -> tuple[fsspec.AbstractFileSystem, str]:
    """fsspec filesystem and the path stripped of its protocol."""
    fs, _, paths = fsspec.get_fs_token_paths(path)
    return fs, paths[0]


def is_local(path: str) -> bool:
    return "://" not in path or path.startswith("file://")


TEMP_MARK = ".tmp-"


def temp_name(path: str) -> str:
    """A hidden sibling of `path` to write before the rename. Hidden (leading dot) and not
    ending in the final suffix: globs such as `manifest/*.parquet` (DuckDB, polars) and
    pyarrow.dataset's folder discovery (which skips `.` and `_` names) never pick up a file a
    killed worker left half-written; a resumed run deletes them (`remove_stale_temps`)."""
    head, slash, name = path.rpartition("/")
    return f"{head}{slash}.{name}{TEMP_MARK}{uuid.uuid4().hex[:8]}"


def remove_stale_temps(root: Path) -> int:
    """Delete temp files left under `root` by killed writers; only safe while no writer runs
    (the caller holds the run's lock). Returns how many were removed."""
    stale = [p for p in root.rglob(f".*{TEMP_MARK}*") if p.is_file()]
    for p in stale:
        with contextlib.suppress(FileNotFoundError):
            p.unlink()
    return len(stale)


@contextlib.contextmanager
def atomic_open(path: str | Path, mode: str = "wb") -> Iterator[IO]:
    """Open `path` for writing through a temp name; rename into place on success only."""
    path = str(path)
    tmp = temp_name(path)
    if is_local(path):
        local = path.removeprefix("file://")
        Path(local).parent.mkdir(parents=True, exist_ok=True)
        tmp_local = tmp.removeprefix("file://")
        try:
            with open(tmp_local, mode) as f:
                yield f
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp_local, local)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.remove(tmp_local)
            raise
    else:
        fs, tmp_path = filesystem(tmp)
        _, final_path = filesystem(path)
        try:
            with fs.open(tmp_path, mode) as f:
                yield f
            fs.mv(tmp_path, final_path)
        except BaseException:
            with contextlib.suppress(Exception):
                fs.rm(tmp_path)
            raise


def write_parquet_atomic(table: pa.Table, path: str | Path, compression: str = "zstd") -> None:
    with atomic_open(path, "wb") as f:
        pq.write_table(table, f, compression=compression)


def write_text_atomic(text: str, path: str | Path) -> None:
    with atomic_open(path, "wb") as f:
        f.write(text.encode("utf-8"))


class AtomicParquetWriter:
    """Streaming parquet writer (one row group per batch) renamed into place on close()."""

    def __init__(self, path: str | Path, schema: pa.Schema, compression: str = "zstd") -> None:
        self._ctx = atomic_open(path, "wb")
        self._file = self._ctx.__enter__()
        self._writer = pq.ParquetWriter(self._file, schema, compression=compression)
        self.schema = schema
        self.rows = 0

    def write(self, table: pa.Table) -> None:
        if table.num_rows:
            self._writer.write_table(table.cast(self.schema))
            self.rows += table.num_rows

    def close(self) -> None:
        self._writer.close()
        self._ctx.__exit__(None, None, None)

    def abort(self) -> None:
        with contextlib.suppress(Exception):
            self._writer.close()
        with contextlib.suppress(BaseException):
            self._ctx.__exit__(RuntimeError, RuntimeError("aborted"), None)

    def __enter__(self) -> AtomicParquetWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


# --- reading inputs -------------------------------------------------------------------------

# Compression by file suffix. Each reader raises EOFError when the stream ends inside a frame or
# member, which is how the connectors tell a truncated file from a clean end.
COMPRESSION_SUFFIXES = {".gz": "gzip", ".zst": "zstd", ".zstd": "zstd", ".bz2": "bz2", ".xz": "xz"}


def compression_of(path: str) -> str | None:
    """Compression named by the path's last suffix (gzip, zstd, bz2, xz), or None."""
    return COMPRESSION_SUFFIXES.get(os.path.splitext(path)[1].lower())


class TruncatedZstdError(EOFError):
    """A zstd stream ended inside a frame."""


# zstd expands one input byte into at most 32 KiB (an RLE block: 4 bytes -> 128 KiB), and a
# decompressobj call has no output bound (python-zstandard 0.25 has no max_length; its bounded
# stream_reader and read_to_iter end a cut frame silently), so input is fed in slices this
# small: one call then yields at most 16 MiB however the file was made. Slices are decoded until
# _ZSTD_FILL bytes are out, so the buffered reader above still gets large reads. Reading the
# lines of a real 38 MB jsonl (books, level 3): 0.069 s in 64 KiB chunks, 0.077 s in 512-byte
# slices, 0.094 s in 256-byte ones.
_ZSTD_SLICE = 512
_ZSTD_FILL = 1 << 16


class _ZstdRawReader(io.RawIOBase):
    """Streaming zstd decoder that, unlike zstandard's stream_reader, reports truncation.

    zstandard's stream_reader returns a short read at the end of a cut frame without error, so a
    truncated .zst would look complete; here the frame state is checked when the input runs out.
    Concatenated frames (pzstd, `cat a.zst b.zst`) are decoded one after another. Each decoder
    call gets `_ZSTD_SLICE` bytes, so a decompression bomb is decoded at most 16 MiB at a time.
    """

    def __init__(self, raw: IO[bytes], chunk_size: int = 1 << 16) -> None:
        import zstandard

        self._zstd = zstandard.ZstdDecompressor()
        self._raw = raw
        self._chunk = chunk_size
        self._dobj = self._zstd.decompressobj()
        self._in_frame = False  # bytes of the current frame have been fed but it has not ended
        self._input = memoryview(b"")  # compressed bytes read; those before _at were fed
        self._at = 0
        self._pending = b""  # decoded bytes; those before _pos were already handed out
        self._pos = 0
        self._eof = False
        self._truncated = False  # the input ended inside a frame: raised once _pending is out

    def readable(self) -> bool:
        return True

    def _fill(self) -> None:
        if self._pos < len(self._pending):
            return
        parts: list[bytes] = []
        size = 0
        while size < _ZSTD_FILL and not self._eof:
            if self._at >= len(self._input):
                data = self._raw.read(self._chunk)
                if not data:
                    self._eof = True
                    self._truncated = self._in_frame
                    break
                self._input, self._at = memoryview(data), 0
            self._in_frame = True
            # The hot loop of .zst reading, so locals only: one decoder call per slice.
            dobj, data, at, end = self._dobj, self._input, self._at, len(self._input)
            while at < end and size < _ZSTD_FILL:
                decoded = dobj.decompress(data[at : at + _ZSTD_SLICE])
                at += _ZSTD_SLICE
                if decoded:
                    parts.append(decoded)
                    size += len(decoded)
                if dobj.eof:
                    # Frame finished: the rest (if any) is the next frame.
                    self._input = memoryview(dobj.unused_data + bytes(data[min(at, end) :]))
                    at = 0
                    self._dobj = self._zstd.decompressobj()
                    self._in_frame = False
                    break
            self._at = at
        self._pending, self._pos = b"".join(parts), 0
        if not self._pending and self._truncated:
            raise TruncatedZstdError("zstd stream ends inside a frame (file truncated)")

    def readinto(self, buffer) -> int:  # type: ignore[override]
        self._fill()
        # An offset instead of slicing the rest off: slicing would copy the pending bytes on
        # every small read (quadratic in a highly compressed chunk).
        n = min(len(buffer), len(self._pending) - self._pos)
        buffer[:n] = self._pending[self._pos : self._pos + n]
        self._pos += n
        return n


@contextlib.contextmanager
def open_input(
    path: str, compression: str | None = "infer", start: int = 0
) -> Iterator[IO[bytes]]:
    """Open a local path or fsspec URI for streaming binary reads, decompressing by suffix; from
    file offset `start` (a range's: a line of a plain file, a gzip member's first byte).

    Truncated compressed inputs raise EOFError while reading (never a silent short read), so
    readers can quarantine the break. Both the decoder and the underlying file are closed on exit
    (gzip/bz2/lzma leave a passed-in file object open).
    """
    if compression == "infer":
        compression = compression_of(path)
    with contextlib.ExitStack() as stack:
        raw: IO[bytes] = stack.enter_context(fsspec.open(path, "rb"))
        if start:
            raw.seek(start)
        if compression is None:
            # fsspec's remote files have a readline() without a size limit; readers bound lines.
            yield raw if is_local(path) else stack.enter_context(io.BufferedReader(raw))
        elif compression == "gzip":
            yield stack.enter_context(gzip.GzipFile(fileobj=raw, mode="rb"))
        elif compression == "zstd":
            yield stack.enter_context(io.BufferedReader(_ZstdRawReader(raw)))
        elif compression == "bz2":
            yield stack.enter_context(bz2.BZ2File(raw, "rb"))
        elif compression == "xz":
            yield stack.enter_context(lzma.LZMAFile(raw, "rb"))
        else:
            raise ValueError(
                f"unknown compression {compression!r} for {path}; use gzip, zstd, bz2 or xz"
            )
