"""Which of an input's own fields travel with each document (`read.metadata_fields`).

Every document has three metadata columns (curator.schema.READER_METADATA): `url`, `date` and
`metadata` (JSON text). The selection says which of them are filled, and which further input
fields join the `metadata` object under their own names, e.g. `[url, date, metadata, crawl_id]`
keeps a jsonl line's `crawl_id` (or a parquet column of that name) inside `metadata`. A page
whose text curator extracted from HTML also records the tool (`"extractor": "resiliparse"`), so
a run that mixes extractors can be told apart later.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

import pyarrow as pa
import pyarrow.compute as pc

URL, DATE, META = "url", "date", "metadata"
DEFAULT_FIELDS = (URL, DATE, META)
_STR = pa.string()


def _json(value: object) -> str:
    # sorted keys: the same object always gives the same string
    return json.dumps(value, ensure_ascii=False, sort_keys=True, separators=(",", ":"),
                      default=str)


def _text(value: object) -> str | None:
    if value is None:
        return None
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


class MetadataSelection:
    def __init__(self, fields: Sequence[str] = DEFAULT_FIELDS) -> None:
        self.url = URL in fields
        self.date = DATE in fields
        self.meta = META in fields
        self.extra = tuple(f for f in fields if f not in DEFAULT_FIELDS)

    @property
    def object_fields(self) -> tuple[str, ...]:
        """Input fields whose values make the `metadata` JSON."""
        return ((META,) if self.meta else ()) + self.extra

    def merged(self, meta_value: object, extras: dict[str, object],
               constants: dict[str, str] | None = None) -> str | None:
        """The `metadata` JSON of one record: its own `metadata` object (when kept) with the
        extra fields and `constants` added; None when there is nothing to say."""
        own = meta_value if self.meta else None
        added = {k: v for k, v in extras.items() if v is not None} | (constants or {})
        if not added:
            return None if own is None else _json(own)
        if own is None:
            return _json(added)
        return _json(own | added if isinstance(own, dict) else {META: own} | added)

    def of_object(self, obj: dict, constants: dict[str, str] | None = None
                  ) -> dict[str, str | None]:
        """A JSON line's url, date (as text, whatever their JSON type) and metadata JSON."""
        return {
            URL: _text(obj.get(URL)) if self.url else None,
            DATE: _text(obj.get(DATE)) if self.date else None,
            META: self.merged(obj.get(META), {k: obj.get(k) for k in self.extra}, constants),
        }

    def of_record(self, meta: dict[str, str | None], constants: dict[str, str] | None = None
                  ) -> dict[str, str | None]:
        """A reader's own url / date / metadata (a WARC record's) narrowed to the selection;
        `metadata` is a JSON object given as text."""
        own = json.loads(meta[META]) if self.meta and meta.get(META) else None
        return {
            URL: meta.get(URL) if self.url else None,
            DATE: meta.get(DATE) if self.date else None,
            META: self.merged(own, {}, constants) if own is not None or constants else None,
        }

    def columns_to_read(self, names: Sequence[str]) -> list[str]:
        """The metadata columns of a columnar input (parquet, DuckDB) to read."""
        wanted = [n for n in (URL, DATE) if getattr(self, n)] + list(self.object_fields)
        return [n for n in wanted if n in names]

    def of_columns(self, batch: pa.RecordBatch | pa.Table,
                   constants: dict[str, str] | None = None) -> dict[str, pa.Array]:
        """A columnar input's metadata columns as text: `url` and `date` cast to strings (a
        timestamp prints as ISO text), `metadata` as JSON (a struct, map or list encoded; the
        extra columns and `constants` added). A column that cannot be turned into text is left
        out, never the document."""
        out: dict[str, pa.Array] = {}
        names = batch.schema.names
        for name in (URL, DATE):
            if getattr(self, name) and name in names:
                col = _column(batch, name)
                try:
                    out[name] = col.cast(_STR)
                except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                    continue
        present = [n for n in self.object_fields if n in names]
        if not present and not constants:
            return out
        if present == [META] and not constants:
            text = _meta_text(_column(batch, META))
            if text is not None:
                out[META] = text
            return out
        # extra columns or constants: merged per row (the rows' values as Python objects)
        values = {n: _column(batch, n).to_pylist() for n in present}
        own = values.pop(META, None)
        if own is not None and pa.types.is_string(batch.schema.field(META).type):
            own = [_loads_or_text(v) for v in own]
        out[META] = pa.array([
            self.merged(None if own is None else own[i],
                        {k: v[i] for k, v in values.items()}, constants)
            for i in range(batch.num_rows)
        ], _STR)
        return out


def _column(batch: pa.RecordBatch | pa.Table, name: str) -> pa.Array:
    col = batch.column(name)
    return col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col


def _loads_or_text(value: str | None) -> object:
    if value is None:
        return None
    try:
        return json.loads(value)
    except ValueError:
        return value


def _meta_text(col: pa.Array) -> pa.Array | None:
    """A `metadata` column alone as text: a struct JSON-encoded in one vectorized call."""
    import polars as pl

    try:
        if pa.types.is_struct(col.type):
            text = pl.from_arrow(col).struct.json_encode().to_arrow().cast(_STR)
            return pc.if_else(col.is_valid(), text, pa.scalar(None, _STR))
        if pa.types.is_string(col.type) or pa.types.is_large_string(col.type):
            return col.cast(_STR)
        if pa.types.is_nested(col.type):
            return pa.array([None if v is None else _json(v) for v in col.to_pylist()], _STR)
        return col.cast(_STR)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, TypeError, ValueError):
        return None
