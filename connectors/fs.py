"""Filesystem helpers over fsspec: input expansion and atomic output writes.

Outputs are written to a temporary name in the same folder and renamed into place, so a killed
job never leaves a half-written file under a final name (resume trusts final names).
"""

from __future__ import annotations

import contextlib
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


@contextlib.contextmanager
def atomic_open(path: str | Path, mode: str = "wb") -> Iterator[IO]:
    """Open `path` for writing through a temp name; rename into place on success only."""
    path = str(path)
    tmp = f"{path}.tmp-{uuid.uuid4().hex[:8]}"
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
