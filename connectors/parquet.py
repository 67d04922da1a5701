"""Parquet files: one document per row, streamed with `iter_batches` over the needed columns.

The footer's row count frames the file (ReadTally.framed); a row group that cannot be decoded
becomes one corrupt_record row per record it holds, and reading goes on with the next group.

With `input.html_field` the document column holds HTML, extracted to text page by page
(connectors/html.py), with the row's `url` column when there is one.
"""

from __future__ import annotations

from collections.abc import Iterator

import fsspec
import pyarrow as pa
import pyarrow.parquet as pq

from connectors.html import URL_FIELD, HtmlExtractor, missing_field_fix, record_batch_docs
from connectors.metadata import MetadataSelection
from connectors.split import UnitPart
from connectors.tally import ReadTally
from connectors.validate import (
    CORRUPT_RECORD,
    WRONG_SCHEMA,
    quarantine_one,
    quarantine_records,
    read_failure,
    with_metadata,
)
from curator.config import InputSpec, ReadConfig


def read_parquet(
    source: str, spec: InputSpec, cfg: ReadConfig, tally: ReadTally | None = None,
    part: UnitPart | None = None,
) -> Iterator[pa.Table]:
    """`part`: its run of row groups only (connectors/split.py); records are row numbers in
    the file either way."""
    tally = tally if tally is not None else ReadTally()
    # a failure of the whole unit is one row at its first record: distinct across ranges
    first = part.first_record if part is not None else 0
    try:
        handle = fsspec.open(source, "rb").open()
    except Exception as exc:  # noqa: BLE001 - unreadable input is quarantined, not raised
        tally.framed += 1
        yield read_failure(exc, source, first)
        return
    with handle:
        try:
            pf = pq.ParquetFile(handle)
        except Exception as exc:  # noqa: BLE001 - not parquet / truncated footer
            tally.framed += 1
            yield read_failure(exc, source, first)
            return
        names = pf.schema_arrow.names
        # The column a document comes from: its text, or its HTML to extract text from.
        field = spec.html_field or spec.text_field
        setting = "input.html_field" if spec.html_field else "input.text_field"
        if field not in names:
            tally.framed += 1  # the file is refused whole: one record
            yield quarantine_one(
                source,
                first,
                WRONG_SCHEMA,
                f"column {field!r} missing in {source}; columns are {names}; "
                + missing_field_fix(setting, names),
            )
            return
        extractor = HtmlExtractor(spec.html_extractor) if spec.html_field else None
        id_field = spec.id_field if spec.id_field in names and spec.id_field != field else None
        url_field = URL_FIELD if extractor is not None and URL_FIELD in names else None
        selection = MetadataSelection(cfg.metadata_fields)
        kept = selection.columns_to_read(names)  # the input's own metadata
        extracted = {"extractor": extractor.name} if extractor is not None else None
        columns = list(dict.fromkeys(c for c in (field, id_field, url_field, *kept) if c))
        meta = pf.metadata
        groups = range(part.start, part.end) if part is not None else range(meta.num_row_groups)
        # the footer's count, not what the batches turn out to be
        tally.framed += sum(meta.row_group(g).num_rows for g in groups)
        batch_size = _rows_per_batch(pf, field, cfg)
        record = part.first_record if part is not None else 0
        for group in groups:
            end = record + meta.row_group(group).num_rows
            batches = pf.iter_batches(
                batch_size=batch_size, row_groups=[group], columns=columns, use_threads=False
            )
            while True:
                try:
                    batch = next(batches)
                except StopIteration:
                    break
                except Exception as exc:  # noqa: BLE001 - a corrupt row group: skip to the next
                    yield _unreadable_rows(source, record, end, group, meta.num_row_groups, exc)
                    break
                docs = record_batch_docs(
                    batch, source, record, field, id_field, url_field, extractor, cfg.max_doc_chars
                )
                yield with_metadata(docs, selection.of_columns(batch, extracted))
                record += batch.num_rows
            record = end


def _unreadable_rows(
    source: str, first: int, end: int, group: int, n_groups: int, exc: Exception
) -> pa.Table:
    """One corrupt_record row per record of a row group left unread: the footer says how many
    there are, and the next row group is read as usual."""
    why = " ".join(str(exc).split())  # Arrow's messages span lines
    error = (
        f"row group {group} of {n_groups} cannot be read from record {first}: "
        f"{type(exc).__name__}: {why}; its records {first}..{end - 1} are lost, reading went on "
        "with the next row group"
    )
    records = pa.array(range(first, end), pa.int64())
    return quarantine_records(source, records, CORRUPT_RECORD, error)


def _rows_per_batch(pf: pq.ParquetFile, text_field: str, cfg: ReadConfig) -> int:
    """batch_size, lowered so that a batch's text stays near max_batch_bytes.

    The footer knows each row group's uncompressed text bytes, so long-document files (books)
    get small batches without reading anything first.
    """
    meta = pf.metadata
    if meta.num_rows == 0:
        return cfg.batch_size
    col = pf.schema_arrow.get_field_index(text_field)
    leaf = [
        i
        for i in range(meta.num_columns)
        if meta.schema.column(i).path.split(".")[0] == pf.schema_arrow.field(col).name
    ]
    text_bytes = sum(
        meta.row_group(g).column(i).total_uncompressed_size
        for g in range(meta.num_row_groups)
        for i in leaf
    )
    per_row = max(1, text_bytes // meta.num_rows)
    return max(1, min(cfg.batch_size, cfg.max_batch_bytes // per_row))
