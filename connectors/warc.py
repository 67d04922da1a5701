"""WARC files (.warc, .warc.gz, ...): HTML response records -> extracted text documents.

`record` is the ordinal of the response record in the file (counting non-HTML responses too,
so ids do not shift if the HTML test changes). Request/metadata/warcinfo records and non-HTML
responses are not documents and are skipped. The input id is the WARC header named by
`InputSpec.id_field` when the record has it (e.g. `WARC-Target-URI`), else `WARC-Record-ID`.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO

import pyarrow as pa

from connectors.fs import open_input
from connectors.html import HtmlExtractor
from connectors.validate import NO_TEXT_EXTRACTED, RowBuffer, TruncatedInputError, read_failure
from curator.config import InputSpec, ReadConfig

_HTML_TYPES = ("text/html", "application/xhtml+xml")


@dataclass(frozen=True)
class _Response:
    ordinal: int
    input_id: str | None
    url: str | None  # WARC-Target-URI
    content_type: str | None
    html: bytes | None  # None: a response, but not HTML


def read_warc(source: str, spec: InputSpec, cfg: ReadConfig) -> Iterator[pa.Table]:
    extractor = HtmlExtractor(spec.html_extractor)
    rows = RowBuffer(source, cfg.max_doc_chars)
    responses = _responses(source, spec.id_field)
    next_ordinal = 0
    while True:
        try:
            response = next(responses)
        except StopIteration:
            break
        except Exception as exc:  # noqa: BLE001 - the break becomes one quarantined record
            if len(rows):
                yield rows.flush()
            yield read_failure(exc, source, next_ordinal)
            return
        next_ordinal = response.ordinal + 1
        if response.html is None:
            continue
        text, why = extractor.page(response.html, response.content_type, response.url)
        if text is None:
            rows.add_bad(response.ordinal, NO_TEXT_EXTRACTED, why or "", response.input_id)
        else:
            rows.add(response.ordinal, text, response.input_id)
        if len(rows) >= cfg.batch_size or rows.text_chars >= cfg.max_batch_bytes:
            yield rows.flush()
    if len(rows):
        yield rows.flush()


def _responses(source: str, id_field: str | None) -> Iterator[_Response]:
    from warcio.archiveiterator import ArchiveIterator

    # We decompress (open_input), not warcio, and hide EOFError from it: warcio reads an
    # EOFError as "no more records", so a cut file would end quietly, its loss unnoticed.
    with open_input(source) as stream:
        ordinal = 0
        for rec in ArchiveIterator(_CutIsAnError(stream)):
            if rec.rec_type != "response":
                continue
            headers = rec.rec_headers
            input_id = (headers.get_header(id_field) if id_field else None) or headers.get_header(
                "WARC-Record-ID"
            )
            http = rec.http_headers
            content_type = http.get_header("Content-Type") if http is not None else None
            is_html = content_type is not None and content_type.split(";")[0].strip().lower() in (
                _HTML_TYPES
            )
            # The payload must be read before the iterator moves on to the next record.
            html = rec.content_stream().read() if is_html else None
            url = headers.get_header("WARC-Target-URI")
            yield _Response(ordinal, input_id, url, content_type, html)
            ordinal += 1


class _CutIsAnError:
    """Read-only stream wrapper turning EOFError (truncated input) into TruncatedInputError."""

    def __init__(self, stream: IO[bytes]) -> None:
        self._stream = stream

    def read(self, size: int = -1) -> bytes:
        try:
            return self._stream.read(size)
        except EOFError as exc:
            raise TruncatedInputError(f"{type(exc).__name__}: {exc}") from exc
