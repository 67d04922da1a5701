"""Plain-text files (.txt, .md, optionally compressed): each file is one document (record 0)."""

from __future__ import annotations

from collections.abc import Iterator

import pyarrow as pa

from connectors.fs import open_input
from connectors.validate import INVALID_UTF8, TOO_LARGE, RowBuffer, read_failure
from curator.config import InputSpec, ReadConfig

_MAX_UTF8_BYTES_PER_CHAR = 4


def read_text(source: str, spec: InputSpec, cfg: ReadConfig) -> Iterator[pa.Table]:
    # A file over 4 bytes per allowed char (+3 for a BOM) cannot fit in max_doc_chars: stop
    # reading there instead of loading a multi-GB file to find out it is too large.
    limit = _MAX_UTF8_BYTES_PER_CHAR * cfg.max_doc_chars + 3
    try:
        with open_input(source) as f:
            data = f.read(limit + 1)
    except Exception as exc:  # noqa: BLE001 - any read failure is this file's quarantine row
        yield read_failure(exc, source, 0)
        return
    rows = RowBuffer(source, cfg.max_doc_chars)
    if len(data) > limit:
        rows.add_bad(
            0,
            TOO_LARGE,
            f"file is over {limit} bytes, so over "
            f"max_doc_chars={cfg.max_doc_chars} chars; raise read.max_doc_chars",
        )
    else:
        try:
            rows.add(0, data.decode("utf-8-sig"))  # strict; a leading BOM is not text
        except UnicodeDecodeError as exc:
            rows.add_bad(0, INVALID_UTF8, f"byte {exc.start}: {exc.reason}")
    yield rows.flush()
