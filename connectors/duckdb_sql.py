"""A DuckDB SQL query as an input: rows streamed in Arrow batches (a RecordBatchReader).

`InputSpec.path` is a .duckdb file (opened read-only, so a curation run can never modify the
user's database) or ':memory:' (queries over read_parquet()/read_csv() etc.). With
`input.html_field` the selected column holds HTML, extracted to text page by page
(connectors/html.py).
"""

from __future__ import annotations

from collections.abc import Iterator

import pyarrow as pa

from connectors.html import URL_FIELD, HtmlExtractor, missing_field_fix, record_batch_docs
from connectors.metadata import MetadataSelection
from connectors.tally import ReadTally
from connectors.validate import (
    WRONG_SCHEMA,
    quarantine_one,
    read_failure,
    with_metadata,
)
from curator.config import InputSpec, ReadConfig


def connect(path: str):  # noqa: ANN201 - duckdb is imported lazily (heavy import)
    import duckdb

    return duckdb.connect(path, read_only=path != ":memory:")


def query_columns(path: str, query: str) -> list[str]:
    """Column names of `query` without running it (DESCRIBE); raises on bad SQL."""
    with connect(path) as con:
        return [row[0] for row in con.execute(f"DESCRIBE {query}").fetchall()]


def read_duckdb(
    source: str, spec: InputSpec, cfg: ReadConfig, tally: ReadTally | None = None
) -> Iterator[pa.Table]:
    assert spec.query is not None  # InputSpec's validator requires it for format=duckdb
    tally = tally if tally is not None else ReadTally()
    try:
        con = connect(spec.path)
    except Exception as exc:  # noqa: BLE001 - unreadable input is quarantined, not raised
        tally.framed += 1
        yield read_failure(exc, source, 0)
        return
    with con:
        try:
            relation = con.sql(spec.query)
            names = list(relation.columns)
        except Exception as exc:  # noqa: BLE001
            tally.framed += 1
            yield read_failure(exc, source, 0)
            return
        # The column a document comes from: its text, or its HTML to extract text from.
        field = spec.html_field or spec.text_field
        setting = "input.html_field" if spec.html_field else "input.text_field"
        if field not in names:
            tally.framed += 1  # the query is refused whole: one record
            yield quarantine_one(
                source,
                0,
                WRONG_SCHEMA,
                f"query result has no column {field!r}; columns are {names}; "
                f"{missing_field_fix(setting, names)} (or select it in input.query)",
            )
            return
        extractor = HtmlExtractor(spec.html_extractor) if spec.html_field else None
        id_field = spec.id_field if spec.id_field in names and spec.id_field != field else None
        url_field = URL_FIELD if extractor is not None and URL_FIELD in names else None
        selection = MetadataSelection(cfg.metadata_fields)
        extracted = {"extractor": extractor.name} if extractor is not None else None
        record = 0
        batches = None
        while True:
            try:
                if batches is None:  # execution starts here; errors surface like read errors
                    batches = _record_batches(relation, cfg.batch_size)
                batch = batches.read_next_batch()
            except StopIteration:
                return
            except Exception as exc:  # noqa: BLE001 - e.g. a cast failing mid-query
                tally.framed += 1
                yield read_failure(exc, source, record)
                return
            # Framing is the result stream's own row count, taken before any row is parsed. A
            # second `SELECT count(*)` would be more independent but runs the query twice, and
            # disagrees with the read for any non-deterministic query (USING SAMPLE, random()).
            tally.framed += batch.num_rows
            docs = record_batch_docs(
                batch, source, record, field, id_field, url_field, extractor, cfg.max_doc_chars
            )
            yield with_metadata(docs, selection.of_columns(batch, extracted))
            record += batch.num_rows


def _record_batches(relation, batch_size: int) -> pa.RecordBatchReader:  # noqa: ANN001
    # DuckDB 2.x names it to_arrow_reader, older releases fetch_arrow_reader; both stream
    # the result instead of materializing it.
    if hasattr(relation, "to_arrow_reader"):
        return relation.to_arrow_reader(batch_size)
    return relation.fetch_arrow_reader(batch_size)
