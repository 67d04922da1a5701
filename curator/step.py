"""The Step protocol and the helpers filters use to record decisions.

A step is a small callable class: expensive set-up in `__init__(cfg)`, work in
`__call__(table) -> table`. Steps only look at rows still `kept`; rows already dropped or
quarantined pass through untouched, so every document reaches the manifest.
"""

from __future__ import annotations

from typing import Protocol

import pyarrow as pa
import pyarrow.compute as pc

from curator.schema import DROPPED, KEPT


class Step(Protocol):
    name: str

    def __call__(self, table: pa.Table) -> pa.Table: ...


def alive_mask(table: pa.Table) -> pa.Array:
    """Boolean array: rows still in the running (decision == kept)."""
    return pc.equal(table.column("decision"), KEPT).combine_chunks()


def apply_drops(table: pa.Table, drop_reason: pa.Array) -> pa.Table:
    """Mark alive rows with a non-null `drop_reason` as dropped with that reason.

    `drop_reason` is a string array aligned with `table` (null = keep). Rows already dropped or
    quarantined keep their first reason: the funnel counts the first failed condition.
    """
    alive = alive_mask(table)
    newly = pc.and_(alive, pc.is_valid(drop_reason))
    decision = pc.if_else(newly, DROPPED, table.column("decision"))
    reason = pc.if_else(newly, drop_reason, table.column("reason"))
    table = table.set_column(table.schema.get_field_index("decision"), "decision", decision)
    return table.set_column(table.schema.get_field_index("reason"), "reason", reason)


def first_reason(conditions: list[tuple[str, pa.Array]], n_rows: int) -> pa.Array:
    """Combine named failure masks into one reason column, first failing condition wins.

    `conditions` is an ordered list of (reason, bool mask where True = failed). Null masks count
    as not failed (e.g. a ratio undefined for an empty doc).
    """
    reason = pa.nulls(n_rows, pa.string())
    for name, failed in reversed(conditions):
        failed = pc.fill_null(failed, False)
        reason = pc.if_else(failed, pa.scalar(name, pa.string()), reason)
    return reason


def set_column(table: pa.Table, name: str, values: pa.Array | pa.ChunkedArray) -> pa.Table:
    """Add or replace a column by name."""
    idx = table.schema.get_field_index(name)
    if idx >= 0:
        return table.set_column(idx, name, values)
    return table.append_column(name, values)
