"""WARC files (.warc, .warc.gz, ...): HTML response records -> extracted text documents.

Framing (finding records, counting them, resynchronising after damage, capping what is held)
is connectors/warc_scan.py; this file parses what it frames. `record` is the ordinal of the
response record in the file (counting non-HTML responses too, so ids do not shift if the HTML
test changes; a damaged stretch takes one ordinal). Request/metadata/warcinfo records are not
framed; non-HTML responses are framed but are not documents (ReadTally.skipped). The input id
is the WARC header named by `InputSpec.id_field` when the record has it (e.g.
`WARC-Target-URI`), else `WARC-Record-ID`.

Each response is parsed on its own (warcio's record loader over the bytes the scanner read), so
a malformed HTTP part or payload encoding quarantines that record as corrupt_record, and a body
over read.max_doc_bytes (before or after its Content-Encoding is undone) is too_large.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pyarrow as pa

from connectors.html import HtmlExtractor
from connectors.metadata import MetadataSelection
from connectors.split import UnitPart
from connectors.tally import ReadTally
from connectors.validate import (
    CORRUPT_RECORD,
    NO_TEXT_EXTRACTED,
    TOO_LARGE,
    RowBuffer,
    over_bytes_error,
)
from connectors.warc_scan import Damage, Response, scan_warc
from curator.config import InputSpec, ReadConfig

if TYPE_CHECKING:
    from warcio.recordloader import ArcWarcRecordLoader

_HTML_TYPES = ("text/html", "application/xhtml+xml")
_MAX_BYTES = "read.max_doc_bytes"


def read_warc(
    source: str, spec: InputSpec, cfg: ReadConfig, tally: ReadTally | None = None,
    part: UnitPart | None = None,
) -> Iterator[pa.Table]:
    from warcio.recordloader import ArcWarcRecordLoader

    tally = tally if tally is not None else ReadTally()
    parser = _ResponseParser(HtmlExtractor(spec.html_extractor), ArcWarcRecordLoader(), spec, cfg)
    rows = RowBuffer(source, cfg.max_doc_chars)
    for frame in scan_warc(source, cfg.max_doc_bytes, tally, part):
        if isinstance(frame, Damage):
            rows.add_bad(frame.ordinal, frame.reason, frame.error)
        elif not parser.add(rows, frame):
            tally.skipped += 1  # framed, but not a document: a response that is not HTML
        if len(rows) >= cfg.batch_size or rows.text_chars >= cfg.max_batch_bytes:
            yield rows.flush()
    if len(rows):
        yield rows.flush()


def _bare_uri(uri: str | None) -> str | None:
    """WARC-Target-URI without the angle brackets some WARC 1.0 writers put around it."""
    if uri is None:
        return None
    uri = uri.strip()
    return uri[1:-1] if uri.startswith("<") and uri.endswith(">") else uri


class _ResponseParser:
    def __init__(
        self,
        extractor: HtmlExtractor,
        loader: ArcWarcRecordLoader,
        spec: InputSpec,
        cfg: ReadConfig,
    ) -> None:
        self.extractor = extractor
        self.loader = loader
        self.id_field = spec.id_field.lower() if spec.id_field else None
        self.max_bytes = cfg.max_doc_bytes
        self.selection = MetadataSelection(cfg.metadata_fields)
        self.extracted = {"extractor": extractor.name}

    def add(self, rows: RowBuffer, frame: Response) -> bool:
        """Add the row of one response; False (no row) when it is not HTML."""
        headers = frame.headers
        input_id = (headers.get(self.id_field) if self.id_field else None) or headers.get(
            "warc-record-id"
        )
        # the page's own metadata, on every row it gets (kept or quarantined)
        meta = self.selection.of_record({
            "url": _bare_uri(headers.get("warc-target-uri")),
            "date": headers.get("warc-date"),
            "metadata": json.dumps({"warc_record_id": headers.get("warc-record-id")}),
        }, self.extracted)
        try:
            content_type, payload = self._payload(frame)
        except Exception as exc:  # noqa: BLE001 - any failure here is this record's alone
            rows.add_bad(
                frame.ordinal,
                CORRUPT_RECORD,
                f"response record at {frame.where} cannot be parsed: {type(exc).__name__}: {exc}",
                input_id,
                meta=meta,
            )
            return True
        is_html = content_type is not None and content_type.split(";")[0].strip().lower() in (
            _HTML_TYPES
        )
        if not is_html:
            return False
        if payload is None:
            what = "WARC record block" if not frame.complete else "decoded HTTP payload"
            size = frame.length if not frame.complete else None
            rows.add_bad(
                frame.ordinal,
                TOO_LARGE,
                over_bytes_error(what, size, self.max_bytes, _MAX_BYTES),
                input_id,
                meta=meta,
            )
            return True
        text, why = self.extractor.page(payload, content_type, headers.get("warc-target-uri"))
        if text is None:
            rows.add_bad(frame.ordinal, NO_TEXT_EXTRACTED, why or "", input_id, meta=meta)
        else:
            rows.add(frame.ordinal, text, input_id, meta)
        return True

    def _payload(self, frame: Response) -> tuple[str | None, bytes | None]:
        """(HTTP Content-Type, payload with its transfer and content encodings undone). The
        payload is None when the body was too large to hold, or decodes to more than the cap
        (a gzip Content-Encoding is a bomb of its own)."""
        rec = self.loader.parse_record_stream(io.BytesIO(frame.block + frame.body))
        http = rec.http_headers
        content_type = http.get_header("Content-Type") if http is not None else None
        if not frame.complete:
            return content_type, None
        payload = rec.content_stream().read(self.max_bytes + 1)
        return content_type, payload if len(payload) <= self.max_bytes else None
