"""Plain-text files (.txt, .md, optionally compressed): each file is one document (record 0)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pyarrow as pa

from connectors.fs import open_input
from connectors.tally import ReadTally
from connectors.validate import INVALID_UTF8, TOO_LARGE, RowBuffer, over_bytes_error, read_failure
from curator.config import InputSpec, ReadConfig

_MAX_UTF8_BYTES_PER_CHAR = 4


def read_text(
    source: str, spec: InputSpec, cfg: ReadConfig, tally: ReadTally | None = None
) -> Iterator[pa.Table]:
    # A file over 4 bytes per allowed char (+3 for a BOM) cannot fit in max_doc_chars: stop
    # reading there instead of loading a multi-GB file to find out it is too large. The file
    # is never held past read.max_doc_bytes either; the error names whichever bound is hit.
    by_chars = _MAX_UTF8_BYTES_PER_CHAR * cfg.max_doc_chars + 3
    if by_chars <= cfg.max_doc_bytes:
        limit = by_chars
        too_large = (
            f"file is over {limit} bytes, so over "
            f"max_doc_chars={cfg.max_doc_chars} chars; raise read.max_doc_chars"
        )
    else:
        limit = cfg.max_doc_bytes
        too_large = over_bytes_error("file", None, limit, "read.max_doc_bytes")
    yield from one_file_document(source, cfg.max_doc_chars, limit, too_large, _utf8_text, tally)


def _utf8_text(data: bytes) -> tuple[str | None, str | None, str | None]:
    try:
        return data.decode("utf-8-sig"), None, None  # strict; a leading BOM is not text
    except UnicodeDecodeError as exc:
        return None, INVALID_UTF8, f"byte {exc.start}: {exc.reason}"


# bytes of the file -> (text, None, None), or (None, quarantine reason, error)
FileToText = Callable[[bytes], tuple["str | None", "str | None", "str | None"]]


def one_file_document(
    source: str,
    max_doc_chars: int,
    limit: int,
    too_large: str,
    to_text: FileToText,
    tally: ReadTally | None = None,
    meta: dict[str, str | None] | None = None,
) -> Iterator[pa.Table]:
    """A file that is one document (record 0): read at most `limit` + 1 bytes, so a huge file
    is refused as too_large (error `too_large`) without being held whole; a read failure or
    what `to_text` refuses is the file's one quarantine row. The file frames one record.
    `meta`: the document's url / date / metadata, where the reader has any."""
    if tally is not None:
        tally.framed += 1
    try:
        with open_input(source) as f:
            data = f.read(limit + 1)
    except Exception as exc:  # noqa: BLE001 - any read failure is this file's quarantine row
        yield read_failure(exc, source, 0)
        return
    rows = RowBuffer(source, max_doc_chars)
    if len(data) > limit:
        rows.add_bad(0, TOO_LARGE, too_large, meta=meta)
    else:
        text, reason, why = to_text(data)
        if text is None:
            rows.add_bad(0, reason or "", why or "", meta=meta)
        else:
            rows.add(0, text, meta=meta)
    yield rows.flush()
