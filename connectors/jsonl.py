"""JSON Lines (.jsonl/.ndjson/.json, plain or .gz/.zst/.bz2/.xz): one document per line.

`record` is the 0-based line number; blank lines are not records. Lines come from the line
framer (connectors/lines.py), which counts them for the unit's ReadTally and hands a line over
read.max_doc_bytes on as one too_large row without ever holding it. Lines are batched as raw
bytes, then parsed in one of two ways:

- fast path: pyarrow.json parses the whole batch in C, reading only the text and id fields.
  It rejects anything a strict reader should (invalid UTF-8, bad JSON, a text that is not a
  string, two objects on one line -- caught by the row count), so a batch it accepts is clean.
- slow path, only for a batch the fast path rejects: json.loads per line after a strict
  UTF-8 decode, so each bad line gets its own reason instead of failing its neighbours. Any
  exception on a line (json.loads raises RecursionError, not ValueError, on deep nesting)
  quarantines that line only.

With `input.html_field` the document field holds HTML: it is parsed the same way, then each
page goes through the one HTML extraction path (connectors/html.py), with the row's `url`.

Measured on Common Crawl lines (~9 KB): pyarrow.json ~44k lines/s vs json.loads ~5.8k lines/s.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pj

from connectors.html import (
    URL_FIELD,
    UTF8_HTML,
    HtmlExtractor,
    html_field_docs,
    missing_field_fix,
)
from connectors.lines import LongLine, frame_lines
from connectors.metadata import MetadataSelection
from connectors.split import UnitPart
from connectors.tally import ReadTally
from connectors.validate import (
    INVALID_UTF8,
    MALFORMED_JSON,
    MISSING_TEXT_FIELD,
    NO_TEXT_EXTRACTED,
    TEXT_NOT_STRING,
    TOO_LARGE,
    RowBuffer,
    finish_batch,
    over_bytes_error,
    quarantine_one,
    read_failure,
    with_metadata,
)
from curator.config import InputSpec, ReadConfig

_MAX_ERROR_CHARS = 200
DATE_FIELD, META_FIELD = "date", "metadata"  # kept with URL_FIELD (curator.schema.READER_METADATA)
_MAX_BYTES = "read.max_doc_bytes"


def read_jsonl(
    source: str, spec: InputSpec, cfg: ReadConfig, tally: ReadTally | None = None,
    part: UnitPart | None = None,
) -> Iterator[pa.Table]:
    parser = _BatchParser(source, spec, cfg)
    lines: list[bytes] = []
    records: list[int] = []
    size = 0
    frames = frame_lines(source, cfg.max_doc_bytes, tally if tally is not None else ReadTally(),
                         part)
    for line_no, line in frames:
        if not isinstance(line, bytes):
            # A line over read.max_doc_bytes or the point where reading stopped: one row each,
            # after the lines before it so that rows stay in record order.
            if lines:
                yield parser.parse(lines, records)
                lines, records, size = [], [], 0
            if isinstance(line, LongLine):
                error = over_bytes_error("line", line.n_bytes, cfg.max_doc_bytes, _MAX_BYTES)
                yield quarantine_one(source, line_no, TOO_LARGE, error)
                continue
            yield read_failure(line.error, source, line_no)
            return
        lines.append(line)
        records.append(line_no)
        size += len(line)
        if len(lines) >= cfg.batch_size or size >= cfg.max_batch_bytes:
            yield parser.parse(lines, records)
            lines, records, size = [], [], 0
    if lines:
        yield parser.parse(lines, records)


class _BatchParser:
    def __init__(self, source: str, spec: InputSpec, cfg: ReadConfig) -> None:
        self.source = source
        # The field a document comes from: its text, or its HTML to extract text from.
        self.text_field = spec.html_field or spec.text_field
        self.setting = "input.html_field" if spec.html_field else "input.text_field"
        self.extractor = HtmlExtractor(spec.html_extractor) if spec.html_field else None
        self.selection = MetadataSelection(cfg.metadata_fields)
        self.extracted = {"extractor": self.extractor.name} if self.extractor else None
        # field names that send a batch to the per-line path (their values become JSON there)
        self.object_keys = [f'"{k}"'.encode() for k in self.selection.object_fields]
        self.id_field = spec.id_field if spec.id_field != self.text_field else None
        self.max_doc_chars = cfg.max_doc_chars
        # Guess for the id column's JSON type; the fast path needs it exact and datasets use
        # either strings or integers. Updated from what the slow path sees.
        self.id_type: pa.DataType = pa.string()
        self._int_ids = self._str_ids = 0  # id kinds seen by the slow path in this batch

    def parse(self, lines: list[bytes], records: list[int]) -> pa.Table:
        table = self._parse_fast(lines, records)
        return table if table is not None else self._parse_slow(lines, records)

    def _parse_fast(self, lines: list[bytes], records: list[int]) -> pa.Table | None:
        data = b"".join(lines)
        if not data.endswith(b"\n"):
            data += b"\n"
        if any(key in data for key in self.object_keys):  # (inside a JSON string: escaped)
            return None  # a `metadata` object is kept as JSON text: the per-line path writes it
        types = {self.text_field: pa.string()}
        if self.id_field is not None:
            types[self.id_field] = self.id_type
        for name in self._own_columns():  # kept when strings; other JSON types: per line
            types.setdefault(name, pa.string())
        fields = [pa.field(name, kind) for name, kind in types.items()]
        try:
            parsed = pj.read_json(
                io.BytesIO(data),
                # One block for the whole batch: a block must hold the longest line, and
                # threads would compete with the other Ray workers on the node.
                read_options=pj.ReadOptions(use_threads=False, block_size=len(data) + 1),
                parse_options=pj.ParseOptions(
                    explicit_schema=pa.schema(fields), unexpected_field_behavior="ignore"
                ),
            )
        except Exception:  # noqa: BLE001 - any refusal: the per-line path finds the bad line
            return None
        if parsed.num_rows != len(lines):
            return None  # e.g. `{...}{...}` on one line: json.loads calls that malformed
        ids = parsed.column(self.id_field) if self.id_field is not None else None
        ids = ids.combine_chunks() if ids is not None else None
        record_ids = pa.array(records, pa.int64())
        meta: dict[str, pa.Array | list] = {
            name: parsed.column(name).combine_chunks() for name in self._own_columns()}
        if self.extracted:
            meta[META_FIELD] = [self.selection.merged(None, {}, self.extracted)] * len(lines)
        if self.extractor is not None:
            table = html_field_docs(
                self.extractor,
                self.source,
                record_ids,
                parsed.column(self.text_field),
                ids,
                parsed.column(URL_FIELD),
                self.text_field,
                self.max_doc_chars,
            )
            return with_metadata(table, meta)
        texts = parsed.column(self.text_field).combine_chunks()
        missing = pc.is_null(texts)
        reasons = pc.if_else(missing, MISSING_TEXT_FIELD, pa.scalar(None, pa.string()))
        table = finish_batch(
            self.source,
            record_ids,
            ids,
            texts,
            reasons,
            self._missing_errors(lines, missing),
            self.max_doc_chars,
        )
        return with_metadata(table, meta)

    def _own_columns(self) -> list[str]:
        return [n for n in (URL_FIELD, DATE_FIELD) if getattr(self.selection, n)]

    def _missing_errors(self, lines: list[bytes], missing: pa.Array) -> pa.Array:
        """The error of each row without its text field, naming the row's fields and the fix;
        only those rows (quarantined anyway) are parsed again to list their fields."""
        positions = pc.indices_nonzero(missing).to_pylist()
        errors = pa.nulls(len(lines), pa.string())
        if not positions:
            return errors
        found = [self._missing_error(_field_names(lines[i])) for i in positions]
        return pc.replace_with_mask(errors, missing, pa.array(found, pa.string()))

    def _missing_error(self, names: list[str]) -> str:
        return (
            f"field {self.text_field!r} missing or null; fields are {names}; "
            + missing_field_fix(self.setting, names)
        )

    def _parse_slow(self, lines: list[bytes], records: list[int]) -> pa.Table:
        rows = RowBuffer(self.source, self.max_doc_chars)
        self._int_ids = self._str_ids = 0
        for record, line in zip(records, lines, strict=True):
            try:
                obj = self._decode(line)
            except Exception as exc:  # noqa: BLE001 - any failure on one line is that line's
                rows.add_bad(record, *_line_failure(exc))
                continue
            self._add_object(rows, record, obj)
        if self._int_ids or self._str_ids:
            self.id_type = pa.int64() if self._int_ids > self._str_ids else pa.string()
        return rows.flush()

    @staticmethod
    def _decode(line: bytes) -> dict:
        """One line -> its JSON object; raises for anything else (the caller quarantines)."""
        obj = json.loads(line.decode("utf-8"))  # strict UTF-8: never replace bytes silently
        if not isinstance(obj, dict):
            raise _NotAnObject(f"line is a JSON {type(obj).__name__}, expected object")
        return obj

    def _add_object(self, rows: RowBuffer, record: int, obj: dict) -> None:
        raw_id = obj.get(self.id_field) if self.id_field is not None else None
        input_id = _id_string(raw_id)
        self._int_ids += isinstance(raw_id, int) and not isinstance(raw_id, bool)
        self._str_ids += isinstance(raw_id, str)
        text = obj.get(self.text_field)
        meta = self.selection.of_object(obj, self.extracted)
        if text is None:
            rows.add_bad(record, MISSING_TEXT_FIELD, self._missing_error(list(obj)), input_id,
                         meta=meta)
        elif not isinstance(text, str):
            rows.add_bad(
                record,
                TEXT_NOT_STRING,
                f"field {self.text_field!r} is a JSON {type(text).__name__}, expected "
                f"string; check {self.setting}",
                input_id,
                meta=meta,
            )
        elif self.extractor is not None:
            self._add_page(rows, record, text, obj.get(URL_FIELD), input_id, meta)
        else:
            rows.add(record, text, input_id, meta)

    def _add_page(
        self, rows: RowBuffer, record: int, html: str, url: object, input_id: str | None,
        meta: dict[str, str | None],
    ) -> None:
        assert self.extractor is not None
        # "replace": a lone surrogate (JSON "\ud800") must not fail the page; HTML decoding
        # is lenient everywhere (connectors/html.py).
        text, why = self.extractor.page(
            html.encode("utf-8", "replace"), UTF8_HTML, url if isinstance(url, str) else None
        )
        if text is None:
            rows.add_bad(record, NO_TEXT_EXTRACTED, why or "", input_id, meta=meta)
        else:
            rows.add(record, text, input_id, meta)


class _NotAnObject(ValueError):
    """A line that is valid JSON but not an object."""


def _line_failure(exc: Exception) -> tuple[str, str]:
    """(reason, error) of a line that could not be decoded into a JSON object. json.loads
    raises ValueError for bad JSON but RecursionError for nesting deeper than the interpreter's
    stack; both, like any other failure, quarantine that one line."""
    if isinstance(exc, UnicodeDecodeError):
        return INVALID_UTF8, f"byte {exc.start}: {exc.reason}"
    if isinstance(exc, _NotAnObject):
        return MALFORMED_JSON, str(exc)
    if isinstance(exc, RecursionError):
        return MALFORMED_JSON, f"JSON nested too deeply to parse ({exc})"[:_MAX_ERROR_CHARS]
    if isinstance(exc, ValueError):
        return MALFORMED_JSON, str(exc)[:_MAX_ERROR_CHARS]
    return MALFORMED_JSON, f"{type(exc).__name__}: {exc}"[:_MAX_ERROR_CHARS]


def _field_names(line: bytes) -> list[str]:
    """Top-level field names of a line the fast path accepted (for an error message only)."""
    try:
        return list(json.loads(line))
    except Exception:  # noqa: BLE001 - e.g. nesting too deep for json; the names are a hint
        return []


def _id_string(value: object) -> str | None:
    """An input id as text, matching what pyarrow's cast gives on the fast path."""
    if isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return None
