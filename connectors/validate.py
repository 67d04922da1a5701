"""Shared validation: candidate records -> `DOC_SCHEMA` rows, bad ones quarantined.

Readers hand over one batch of candidates (record ordinal, input id, text, and any reason the
reader already found while parsing). The row's key, `doc_id`, comes from (source, record)
(curator/doc_ids.py); the input's own id is kept as `input_id`. The checks every format
shares -- NUL characters, empty/whitespace-only text, length over `max_doc_chars` -- run here
as pyarrow column operations over the whole batch. A quarantined row keeps its `n_chars` (when
known) and `error`, and loses its text: nothing downstream reads it, and a huge bad document
should not ride along to the manifest.
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

from curator.doc_ids import doc_ids
from curator.schema import DOC_SCHEMA, KEPT, QUARANTINED, READER_METADATA

# Quarantine reason codes (the manifest's `reason` for decision == quarantined).
MALFORMED_JSON = "malformed_json"
INVALID_UTF8 = "invalid_utf8"
NUL_BYTES = "nul_bytes"
EMPTY_TEXT = "empty_text"
MISSING_TEXT_FIELD = "missing_text_field"
TEXT_NOT_STRING = "text_not_string"
TOO_LARGE = "too_large"
UNREADABLE_FILE = "unreadable_file"
UNREADABLE_FOLDER = "unreadable_folder"
TRUNCATED_FILE = "truncated_file"
WRONG_SCHEMA = "wrong_schema"
NO_TEXT_EXTRACTED = "no_text_extracted"
CORRUPT_RECORD = "corrupt_record"  # a damaged stretch of a file the reader skipped to resynchronise
LOST_IN_PARSE = "lost_in_parse"  # framed by the reader but never returned by its parser (a bug)

_STR = pa.string()


def too_large_error(n_chars: int, max_doc_chars: int) -> str:
    """Error text of a too_large row (also built column-wise in `finish_batch`)."""
    return f"text has {n_chars} chars > max_doc_chars={max_doc_chars}; raise read.max_doc_chars"


def over_bytes_error(what: str, n_bytes: int | None, limit: int, setting: str) -> str:
    """Error text of a record refused by size while it was read (so never held whole)."""
    size = f" ({n_bytes} bytes)" if n_bytes is not None else ""
    return f"{what} is over {setting}={limit} bytes{size}; raise {setting}"


def ids_as_strings(ids: pa.Array | pa.ChunkedArray | None, n_rows: int) -> pa.Array:
    """Input ids as strings (the `input_id` column); null where absent, empty, or of a type with
    no string form. They are carried for joining back to the input, never used as a key."""
    if ids is None:
        return pa.nulls(n_rows, _STR)
    if isinstance(ids, pa.ChunkedArray):
        ids = ids.combine_chunks()
    try:
        ids = pc.cast(ids, _STR)
    except (pa.ArrowNotImplementedError, pa.ArrowInvalid):
        return pa.nulls(n_rows, _STR)  # e.g. struct ids
    # An empty string identifies nothing; null says so plainly.
    return pc.if_else(pc.equal(ids, ""), pa.scalar(None, _STR), ids)


def valid_utf8(values: pa.Array) -> tuple[pa.Array, pa.Array | None]:
    """Binary or string values -> (string array, mask of rows that were not valid UTF-8).

    Arrow's string validation covers the whole array at C speed; only when it fails do we look
    row by row for the culprits (bad rows come back null, mask True). The mask is None when all
    rows are valid.
    """
    binary = values.cast(pa.binary())
    try:
        as_str = binary.cast(_STR)
        as_str.validate(full=True)
        return as_str, None
    except pa.ArrowInvalid:
        pass
    # Rare path, already per row: rebuild from Python so no invalid bytes hide under a null
    # (if_else keeps them in the data buffer, and utf8 kernels then reject the whole array).
    values_py = binary.to_pylist()
    bad = [_not_utf8(value) for value in values_py]
    strings = [
        None if b or v is None else v.decode("utf-8") for v, b in zip(values_py, bad, strict=True)
    ]
    return pa.array(strings, _STR), pa.array(bad, pa.bool_())


def _not_utf8(value: bytes | None) -> bool:
    if value is None:
        return False
    try:
        value.decode("utf-8")
    except UnicodeDecodeError:
        return True
    return False


def finish_batch(
    source: str,
    records: pa.Array,
    ids: pa.Array | None,
    texts: pa.Array,
    reasons: pa.Array | None,
    errors: pa.Array | None,
    max_doc_chars: int,
    n_chars: pa.Array | None = None,
) -> pa.Table:
    """Validate one batch of candidates and build the `DOC_SCHEMA` table.

    `reasons`/`errors`: quarantine already decided by the reader (null = none); the reader's
    reason wins over the checks here. `n_chars`: lengths the reader knows for rows whose text it
    did not keep (a too_large document dropped early), used where `texts` is null.
    """
    n = len(records)
    if pa.types.is_large_string(texts.type):
        texts = texts.cast(_STR)
    if reasons is None:
        reasons = pa.nulls(n, _STR)
    if errors is None:
        errors = pa.nulls(n, _STR)
    length = pc.utf8_length(texts)
    if n_chars is not None:
        length = pc.coalesce(length, n_chars.cast(pa.int64()))
    length = length.cast(pa.int64())

    has_nul = pc.fill_null(pc.match_substring(texts, "\x00"), False)
    # utf8_is_space is false for "", hence the length test.
    empty = pc.fill_null(pc.or_(pc.equal(pc.utf8_length(texts), 0), pc.utf8_is_space(texts)), False)
    too_large = pc.fill_null(pc.greater(length, max_doc_chars), False)
    large_msg = pc.binary_join_element_wise(
        "text has ",
        pc.cast(length, _STR),
        f" chars > max_doc_chars={max_doc_chars}; raise read.max_doc_chars",
        "",
    )
    conditions = pc.make_struct(has_nul, empty, too_large, field_names=["n", "e", "t"])
    found = pc.case_when(conditions, NUL_BYTES, EMPTY_TEXT, TOO_LARGE)
    found_error = pc.case_when(
        conditions,
        pa.scalar("text contains NUL (\\x00) characters", _STR),
        pa.scalar("text is empty or whitespace only", _STR),
        large_msg,
    )
    preset = pc.is_valid(reasons)
    reason = pc.if_else(preset, reasons, found)
    error = pc.if_else(preset, errors, found_error)
    bad = pc.is_valid(reason)

    table = pa.Table.from_arrays(
        [
            doc_ids(source, records),
            ids_as_strings(ids, n),
            pa.array([source] * n, _STR) if n else pa.array([], _STR),
            records.cast(pa.int64()),
            pc.if_else(bad, pa.scalar(None, _STR), texts),
            pc.if_else(bad, QUARANTINED, KEPT),
            reason,
            error,
            length,
        ],
        schema=DOC_SCHEMA,
    )
    return table


def quarantine_one(source: str, record: int, reason: str, error: str) -> pa.Table:
    """A one-row table for a failure that swallows the rest of a source (unreadable, truncated,
    wrong schema): it counts as one quarantined record at the ordinal where reading stopped."""
    return quarantine_records(source, pa.array([record], pa.int64()), reason, error)


def quarantine_records(source: str, records: pa.Array, reason: str, error: str) -> pa.Table:
    """Rows for `records` that share one reason and error (a row group that cannot be read,
    records lost in parsing); text and n_chars are unknown."""
    n = len(records)
    return finish_batch(
        source,
        records.cast(pa.int64()),
        None,
        pa.nulls(n, _STR),
        pa.array([reason] * n, _STR),
        pa.array([error] * n, _STR),
        max_doc_chars=1,
    )


def with_metadata(table: pa.Table, columns: dict[str, pa.Array | list]) -> pa.Table:
    """`table` plus the reader-metadata columns (READER_METADATA: url, date, metadata) that
    hold any value; a batch whose input has none gets none (pass 1 fills nulls)."""
    for field in READER_METADATA:
        values = columns.get(field.name)
        if values is None:
            continue
        arr = values if isinstance(values, pa.Array | pa.ChunkedArray) else pa.array(
            values, pa.string())
        if arr.null_count < len(arr):
            table = table.append_column(field, arr.cast(pa.string()))
    return table


class RowBuffer:
    """Candidates of one batch collected record by record (line, file or WARC readers).

    `add` keeps a good candidate; `add_bad` a record the reader already judged. Text longer
    than `max_doc_chars` is dropped at once (only its length is kept), so a batch never holds
    more than one oversized document at a time.
    """

    def __init__(self, source: str, max_doc_chars: int) -> None:
        self.source = source
        self.max_doc_chars = max_doc_chars
        self._clear()

    def _clear(self) -> None:
        self.records: list[int] = []
        self.ids: list[str | None] = []
        self.texts: list[str | None] = []
        self.reasons: list[str | None] = []
        self.errors: list[str | None] = []
        self.n_chars: list[int | None] = []
        self.meta: dict[str, list[str | None]] = {f.name: [] for f in READER_METADATA}
        self.text_chars = 0  # bounds batch memory together with the row count

    def __len__(self) -> int:
        return len(self.records)

    def add(self, record: int, text: str, input_id: str | None = None,
            meta: dict[str, str | None] | None = None) -> None:
        """A good candidate; `meta`: its url / date / metadata (JSON text), where it has any."""
        n = len(text)
        if n > self.max_doc_chars:
            self.add_bad(record, TOO_LARGE, too_large_error(n, self.max_doc_chars), input_id, n,
                         meta)
            return
        self._append(record, input_id, text, None, None, None, meta)
        self.text_chars += n

    def add_bad(
        self,
        record: int,
        reason: str,
        error: str,
        input_id: str | None = None,
        n_chars: int | None = None,
        meta: dict[str, str | None] | None = None,
    ) -> None:
        self._append(record, input_id, None, reason, error, n_chars, meta)

    def _append(
        self,
        record: int,
        input_id: str | None,
        text: str | None,
        reason: str | None,
        error: str | None,
        n_chars: int | None,
        meta: dict[str, str | None] | None = None,
    ) -> None:
        for name, values in self.meta.items():
            values.append(meta.get(name) if meta else None)
        self.records.append(record)
        self.ids.append(input_id)
        self.texts.append(text)
        self.reasons.append(reason)
        self.errors.append(error)
        self.n_chars.append(n_chars)

    def flush(self) -> pa.Table:
        """Validate and return the collected rows as one `DOC_SCHEMA` table; empty the buffer."""
        texts = _strings_or_surrogates(self.texts, self.reasons, self.errors)
        ids = _strings_or_surrogates(self.ids, self.reasons, self.errors)
        table = finish_batch(
            self.source,
            pa.array(self.records, pa.int64()),
            ids,
            texts,
            pa.array(self.reasons, _STR),
            pa.array(self.errors, _STR),
            self.max_doc_chars,
            pa.array(self.n_chars, pa.int64()),
        )
        table = with_metadata(table, {k: _strings_or_nulls(v) for k, v in self.meta.items()})
        self._clear()
        return table


def _strings_or_nulls(values: list[str | None]) -> pa.Array:
    """Metadata strings; one that cannot be UTF-8 (a lone surrogate) becomes null: metadata
    never quarantines a document."""
    try:
        return pa.array(values, _STR)
    except (UnicodeEncodeError, pa.ArrowInvalid):
        return pa.array([v if v is None or _encodes(v) else None for v in values], _STR)


def _encodes(value: str) -> bool:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _strings_or_surrogates(
    values: list[str | None], reasons: list[str | None], errors: list[str | None]
) -> pa.Array:
    """Python strings -> Arrow; a lone surrogate (JSON "\\ud800") cannot be UTF-8, so its row
    is quarantined as invalid_utf8 (in place in `reasons`/`errors`) instead of failing the batch."""
    try:
        return pa.array(values, _STR)
    except (UnicodeEncodeError, pa.ArrowInvalid):
        pass
    out: list[str | None] = []
    for i, value in enumerate(values):
        try:
            if value is not None:
                value.encode("utf-8")
            out.append(value)
        except UnicodeEncodeError as exc:
            out.append(None)
            if reasons[i] is None:
                reasons[i] = INVALID_UTF8
                errors[i] = f"lone surrogate, not encodable as UTF-8: {exc.reason} at {exc.start}"
    return pa.array(out, _STR)


class RecordedError(Exception):
    """A read failure seen earlier (while a compressed jsonl was spilled, connectors/spill.py),
    raised again where it happened so that it makes the very row the first one made."""

    def __init__(self, name: str, message: str, truncated: bool) -> None:
        super().__init__(message)
        self.name, self.message, self.truncated = name, message, truncated

    @classmethod
    def of(cls, exc: BaseException) -> RecordedError:
        return cls(type(exc).__name__, str(exc), _is_cut(exc))

    def to_json(self) -> dict:
        return {"name": self.name, "message": self.message, "truncated": self.truncated}


class TruncatedInputError(Exception):
    """Input ended inside a compressed unit, re-raised under a name that libraries which
    take EOFError for a clean end of data (warcio) let through."""


def read_failure(exc: BaseException, source: str, record: int) -> pa.Table:
    """The one quarantined row for a stream that broke at `record`.

    EOFError is how gzip/bz2/xz and our zstd reader report input ending inside a compressed
    unit: the file was cut short (truncated_file). Anything else (not the format, bad CRC,
    permission denied) means the rest cannot be read (unreadable_file).
    """
    if isinstance(exc, RecordedError):
        cut, name = exc.truncated, exc.name
    else:
        cut, name = _is_cut(exc), type(exc).__name__
    reason = TRUNCATED_FILE if cut else UNREADABLE_FILE
    where = "" if record == 0 else f" after {record} records"
    return quarantine_one(source, record, reason, f"{name}: {exc}{where}")


def _is_cut(exc: BaseException) -> bool:
    return isinstance(exc, (EOFError, TruncatedInputError))


def columns_to_docs(
    source: str,
    first_record: int,
    texts: pa.Array | pa.ChunkedArray,
    ids: pa.Array | pa.ChunkedArray | None,
    text_field: str,
    max_doc_chars: int,
) -> pa.Table:
    """A columnar batch (parquet row group slice, DuckDB result batch) -> `DOC_SCHEMA`.

    Text columns of any string/binary flavour are checked for UTF-8 in one pass; a column of
    another type makes every non-null row text_not_string; nulls are missing_text_field.
    """
    if isinstance(texts, pa.ChunkedArray):
        texts = texts.combine_chunks()
    n = len(texts)
    records = pa.array(range(first_record, first_record + n), pa.int64())
    if pa.types.is_dictionary(texts.type):
        texts = texts.dictionary_decode()
    reasons = pa.nulls(n, _STR)
    errors = pa.nulls(n, _STR)
    kind = texts.type
    if pa.types.is_null(kind):
        strings = pa.nulls(n, _STR)
    elif (
        pa.types.is_string(kind)
        or pa.types.is_large_string(kind)
        or pa.types.is_binary(kind)
        or pa.types.is_large_binary(kind)
    ):
        strings, bad = valid_utf8(texts)
        if bad is not None:
            reasons = pc.if_else(bad, INVALID_UTF8, reasons)
            not_utf8 = f"column {text_field!r} holds bytes that are not UTF-8"
            errors = pc.if_else(bad, not_utf8, errors)
    else:
        wrong = pc.is_valid(texts)
        reasons = pc.if_else(wrong, TEXT_NOT_STRING, reasons)
        wrong_type = f"column {text_field!r} has type {kind}, expected string"
        errors = pc.if_else(wrong, wrong_type, errors)
        strings = pa.nulls(n, _STR)
    missing = pc.and_(pc.is_null(strings), pc.is_null(reasons))
    reasons = pc.if_else(missing, MISSING_TEXT_FIELD, reasons)
    errors = pc.if_else(missing, f"column {text_field!r} is null", errors)
    return finish_batch(source, records, ids, strings, reasons, errors, max_doc_chars)
