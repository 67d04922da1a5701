"""HTML -> plain text, the one extraction path for every HTML input.

WARC responses (warc.py), `.html`/`.htm` files (`read_html` below) and HTML held in a jsonl,
parquet or DuckDB field (`InputSpec.html_field`, via `html_field_docs`) all go through
`HtmlExtractor.page`: resiliparse (default, fast) or trafilatura (optional).

Both take raw payload bytes: the charset comes from the HTTP Content-Type when it names one,
else from resiliparse's detector (meta tags, byte statistics). Web pages in the wild are
often mislabelled, so undecodable bytes are replaced here rather than quarantined: the
quarantine for invalid UTF-8 is about corrupted text records, not about lenient HTML decoding.
A page that fails to parse or yields no text is quarantined as no_text_extracted, never raised.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator

import pyarrow as pa
import pyarrow.compute as pc

from connectors.metadata import MetadataSelection
from connectors.tally import ReadTally
from connectors.text import one_file_document
from connectors.validate import (
    MISSING_TEXT_FIELD,
    NO_TEXT_EXTRACTED,
    TEXT_NOT_STRING,
    columns_to_docs,
    finish_batch,
    over_bytes_error,
)
from curator.config import InputSpec, ReadConfig

_CHARSET = re.compile(r"charset\s*=\s*[\"']?([\w.:-]+)", re.IGNORECASE)
# HTML that arrives as (already decoded) text is re-encoded as UTF-8 and labelled so, so the
# page's own <meta charset> cannot make the parser decode it a second time.
UTF8_HTML = "text/html; charset=utf-8"
# A field of this name next to html_field is the page's address; trafilatura uses it.
URL_FIELD = "url"

# (payload, Content-Type or None, page URL or None) -> text
HtmlToText = Callable[[bytes, "str | None", "str | None"], str]


def html_encoding(payload: bytes, content_type: str | None) -> str:
    """Charset named by the Content-Type header, else detected from the bytes."""
    from resiliparse.parse.encoding import detect_encoding

    if content_type:
        match = _CHARSET.search(content_type)
        if match:
            try:
                "".encode(match.group(1))  # only trust names Python knows
                return match.group(1)
            except LookupError:
                pass
    return detect_encoding(payload)


def _resiliparse(payload: bytes, content_type: str | None, url: str | None) -> str:
    from resiliparse.extract.html2text import extract_plain_text
    from resiliparse.parse.html import HTMLTree

    tree = HTMLTree.parse_from_bytes(payload, html_encoding(payload, content_type), "replace")
    return extract_plain_text(tree, preserve_formatting=True, main_content=True)


def _trafilatura(payload: bytes, content_type: str | None, url: str | None) -> str:
    import trafilatura

    html = payload.decode(html_encoding(payload, content_type), errors="replace")
    return trafilatura.extract(html, url=url, include_comments=False, include_tables=True) or ""


_EXTRACTORS: dict[str, HtmlToText] = {"resiliparse": _resiliparse, "trafilatura": _trafilatura}


class HtmlExtractor:
    """The extractor `name` (InputSpec.html_extractor), failing early if it is not installed."""

    def __init__(self, name: str) -> None:
        if name not in _EXTRACTORS:
            raise ValueError(f"unknown html_extractor {name!r}; use one of {sorted(_EXTRACTORS)}")
        __import__(name)  # optional dependency: fail when the reader is built, not mid-file
        self.name = name
        self._extract = _EXTRACTORS[name]

    def page(
        self, payload: bytes, content_type: str | None = None, url: str | None = None
    ) -> tuple[str | None, str | None]:
        """(text, None) for a page with text, else (None, why): a parser failure or an empty
        extraction loses this page only."""
        try:
            text = self._extract(payload, content_type, url)
        except Exception as exc:  # noqa: BLE001 - any parser failure is this page's quarantine
            return None, f"{self.name} failed on {len(payload)} bytes of HTML: " + (
                f"{type(exc).__name__}: {exc}"
            )
        if not text.strip():
            return None, f"{self.name} found no text in {len(payload)} bytes of HTML"
        return text, None

    def column(self, html: pa.Array, urls: pa.Array | None) -> tuple[pa.Array, pa.Array]:
        """A string or binary column of pages -> (texts, errors), null where the page is null.

        Extraction is per page by nature, so this is the one Python loop; strings are labelled
        UTF-8, bytes go through charset detection as WARC payloads do.
        """
        labelled = (
            UTF8_HTML
            if pa.types.is_string(html.type) or pa.types.is_large_string(html.type)
            else None
        )
        pages = html.to_pylist()
        addresses = urls.to_pylist() if urls is not None else [None] * len(pages)
        texts: list[str | None] = []
        errors: list[str | None] = []
        for page, url in zip(pages, addresses, strict=True):
            if page is None:
                text, why = None, None
            else:
                payload = page.encode("utf-8") if isinstance(page, str) else page
                text, why = self.page(payload, labelled, url)
            texts.append(text)
            errors.append(why)
        return pa.array(texts, pa.string()), pa.array(errors, pa.string())


def html_field_docs(
    extractor: HtmlExtractor,
    source: str,
    records: pa.Array,
    html: pa.Array | pa.ChunkedArray,
    ids: pa.Array | pa.ChunkedArray | None,
    urls: pa.Array | pa.ChunkedArray | None,
    field: str,
    max_doc_chars: int,
) -> pa.Table:
    """A batch's html_field column -> `DOC_SCHEMA`, its text extracted page by page.

    Null pages are missing_text_field, non-text columns text_not_string, pages without text
    no_text_extracted; the error names input.html_field so the fix is obvious.
    """
    html = _flat(html)
    n = len(html)
    none = pa.scalar(None, pa.string())
    kind = html.type
    if (
        pa.types.is_string(kind)
        or pa.types.is_large_string(kind)
        or pa.types.is_binary(kind)
        or pa.types.is_large_binary(kind)
    ):
        texts, errors = extractor.column(html, _url_strings(urls))
        failed = pc.is_valid(errors)
        reasons = pc.if_else(failed, NO_TEXT_EXTRACTED, none)
    elif pa.types.is_null(kind):  # every page null: all missing_text_field, below
        texts = reasons = errors = pa.nulls(n, pa.string())
    else:
        wrong = pc.is_valid(html)
        texts = pa.nulls(n, pa.string())
        reasons = pc.if_else(wrong, TEXT_NOT_STRING, none)
        errors = pc.if_else(
            wrong, f"input.html_field {field!r} has type {kind}, expected string or bytes", none
        )
    missing = pc.is_null(html)
    reasons = pc.if_else(missing, MISSING_TEXT_FIELD, reasons)
    errors = pc.if_else(missing, f"input.html_field {field!r} is missing or null", errors)
    return finish_batch(source, records, ids, texts, reasons, errors, max_doc_chars)


def record_batch_docs(
    batch: pa.RecordBatch,
    source: str,
    record: int,
    field: str,
    id_field: str | None,
    url_field: str | None,
    extractor: HtmlExtractor | None,
    max_doc_chars: int,
) -> pa.Table:
    """One batch of a columnar input (parquet, a DuckDB query) -> `DOC_SCHEMA`: `field` is the
    text, or the HTML to extract when the input sets html_field (`extractor` given)."""
    ids = batch.column(id_field) if id_field else None
    if extractor is None:
        return columns_to_docs(source, record, batch.column(field), ids, field, max_doc_chars)
    return html_field_docs(
        extractor,
        source,
        pa.array(range(record, record + batch.num_rows), pa.int64()),
        batch.column(field),
        ids,
        batch.column(url_field) if url_field else None,
        field,
        max_doc_chars,
    )


def _flat(values: pa.Array | pa.ChunkedArray) -> pa.Array:
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    return values.dictionary_decode() if pa.types.is_dictionary(values.type) else values


def _url_strings(urls: pa.Array | pa.ChunkedArray | None) -> pa.Array | None:
    """The url column as strings, or None when absent or of a type with no string form."""
    if urls is None:
        return None
    try:
        return pc.cast(_flat(urls), pa.string())
    except (pa.ArrowNotImplementedError, pa.ArrowInvalid):
        return None


def html_like_field(names: list[str]) -> str | None:
    """A field that obviously holds HTML (`html`, else the first name containing 'html'), so a
    missing text field can name `input.html_field` as the fix."""
    if "html" in names:
        return "html"
    return next((name for name in names if "html" in name.lower()), None)


def missing_field_fix(setting: str, names: list[str]) -> str:
    """The fix for a record without its text: `input.html_field: html` when a field obviously
    holds HTML (the usual mistake with scraped pages), else the setting that names the field."""
    found = html_like_field(names) if setting == "input.text_field" else None
    if found is None:
        return f"set {setting}"
    return f"{found!r} looks like HTML: set input.html_field: {found} to extract its text"


def read_html(
    source: str, spec: InputSpec, cfg: ReadConfig, tally: ReadTally | None = None
) -> Iterator[pa.Table]:
    """An .html/.htm file (optionally compressed) is one document (record 0): its extracted
    text. The charset comes from the page's <meta> or the bytes, as for a WARC payload."""
    extractor = HtmlExtractor(spec.html_extractor)

    def to_text(data: bytes) -> tuple[str | None, str | None, str | None]:
        text, why = extractor.page(data)
        return (text, None, None) if text is not None else (None, NO_TEXT_EXTRACTED, why)

    # The markup is held whole while parsed; a page past a document's (or a batch's) byte
    # budget is refused before it is read whole, so one huge file cannot multiply worker memory.
    setting = "read.max_doc_bytes"
    if cfg.max_batch_bytes < cfg.max_doc_bytes:
        setting = "read.max_batch_bytes"
    limit = min(cfg.max_doc_bytes, cfg.max_batch_bytes)
    too_large = over_bytes_error("HTML file", None, limit, setting)
    meta = MetadataSelection(cfg.metadata_fields).of_record({}, {"extractor": extractor.name})
    yield from one_file_document(source, cfg.max_doc_chars, limit, too_large, to_text, tally,
                                 meta)
