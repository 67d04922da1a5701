"""RUN/excluded/: dropped and quarantined documents with their text and reason, for inspection.

The manifest says why a document left, not what it said: pass 1 throws away the text of rows
out of the running. Rows that may be in the sample keep it (`ExcludedSample.observe` in pass 1),
and pass 2, which sees every row's final decision (dedup drops included) and still has that text
in `_work/pass1`, writes the sample per reason (`ExcludedWriter`), beside the unit's shards and
manifest.

The sample is a pure function of a unit's rows: per reason, the `max_per_reason_per_unit`
smallest stable hashes of doc_id (among those under `sample_rate`), so pass 1 and pass 2 agree
however their batches are cut, and a resumed unit writes the same files. `curator show` reads
them back (`reason_table`, `read_excluded`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from connectors.fs import AtomicParquetWriter
from curator.config import ExcludedConfig
from curator.hashing import stable_hash
from curator.rundir import RunDir
from curator.schema import DECISION_FIELDS, INPUT_METADATA, cast_to_schema
from curator.step import alive_mask

# Every excluded row has these; `text` is null for quarantined rows (bad input has none).
BASE_FIELDS = [*DECISION_FIELDS, pa.field("text", pa.string())]

# Copied when the run has them: the input's metadata, language id, the agent's score.
META_COLUMNS = (*INPUT_METADATA, "quality_score")


def excluded_schema(pass1_schema: pa.Schema) -> pa.Schema:
    """BASE_FIELDS plus the metadata columns present in the run's pass-1 output."""
    meta = [pass1_schema.field(n) for n in META_COLUMNS if n in pass1_schema.names]
    return pa.schema(BASE_FIELDS + meta)


def _codes(reasons: pa.Array | pa.ChunkedArray) -> tuple[np.ndarray, list[str]]:
    """Reasons as integer codes into their distinct values (null -> "")."""
    encoded = pc.fill_null(reasons, "").combine_chunks().dictionary_encode()
    return encoded.indices.to_numpy(), encoded.dictionary.to_pylist()


class BottomK:
    """Per reason, the k smallest doc_id hashes seen so far in a unit: the k documents of that
    reason the sample takes (a uniform draw, whatever the file order)."""

    def __init__(self, k: int) -> None:
        self.k = k
        self.smallest: dict[str, np.ndarray] = {}

    def update(self, reasons: pa.Array | pa.ChunkedArray, hashes: np.ndarray) -> np.ndarray:
        """Add a batch of rows; mask of those among the k smallest of their reason so far.

        A row of the final k is among the k smallest of every prefix that holds it, so this
        mask, applied batch after batch, keeps a superset of the final sample (about
        k * (1 + ln(n / k)) rows of a reason with n rows)."""
        codes, names = _codes(reasons)
        keep = np.zeros(len(hashes), bool)
        for code, name in enumerate(names):  # one pass per distinct reason, not per document
            rows = codes == code
            merged = np.concatenate([self.smallest.get(name, hashes[:0]), hashes[rows]])
            if len(merged) > self.k:
                merged = np.partition(merged, self.k - 1)[: self.k]
            self.smallest[name] = merged
            keep[rows] = hashes[rows] <= merged.max()
        return keep

    def threshold(self, reasons: pa.Array | pa.ChunkedArray) -> np.ndarray:
        """The largest hash the sample takes for each row's reason (0 for an unseen reason)."""
        codes, names = _codes(reasons)
        top = [self.smallest[n].max() if n in self.smallest else 0 for n in names]
        return np.array(top, np.uint64)[codes]


class ExcludedSample:
    """Which excluded rows of one unit go to RUN/excluded/: every one with `all`, else those
    whose doc_id hash is under `sample_rate` and, per reason, among the unit's
    `max_per_reason_per_unit` smallest such hashes.

    `observe` feeds batches in order; `select` then gives the exact sample of any batch once
    every batch was observed (pass 2), and a superset of it while observing (pass 1, which keeps
    the text of those rows for pass 2).
    """

    def __init__(self, cfg: ExcludedConfig) -> None:
        self.cfg = cfg
        cap = cfg.max_per_reason_per_unit
        self.bottom = BottomK(cap) if cap is not None and not cfg.all else None

    def _eligible(self, table: pa.Table) -> tuple[np.ndarray, np.ndarray]:
        """Rows (indices) excluded and under the rate, and their hashes."""
        out = pc.invert(alive_mask(table)).to_numpy(zero_copy_only=False)
        idx = np.flatnonzero(out)
        if not self.cfg.enabled:
            return idx[:0], np.zeros(0, np.uint64)
        hashes = stable_hash(table.column("doc_id").take(idx))
        if self.cfg.sample_rate < 1 and not self.cfg.all:
            under = hashes < np.uint64(int(self.cfg.sample_rate * 2**64))
            idx, hashes = idx[under], hashes[under]
        return idx, hashes

    def observe(self, table: pa.Table) -> pa.Array:
        """Count a batch towards the per-reason cap; mask of its rows that may be sampled."""
        idx, hashes = self._eligible(table)
        if self.bottom is not None and len(idx):
            idx = idx[self.bottom.update(table.column("reason").take(idx), hashes)]
        return _mask(idx, table.num_rows)

    def select(self, table: pa.Table) -> pa.Array:
        """Mask of the batch's rows in the sample (every batch of the unit observed first)."""
        idx, hashes = self._eligible(table)
        if self.bottom is not None and len(idx):
            idx = idx[hashes <= self.bottom.threshold(table.column("reason").take(idx))]
        return _mask(idx, table.num_rows)


def _mask(idx: np.ndarray, n: int) -> pa.Array:
    mask = np.zeros(n, bool)
    mask[idx] = True
    return pa.array(mask)


class ExcludedWriter:
    """One unit's excluded/ files: a part per reason, opened at that reason's first row and,
    like the unit's shards and manifest, renamed into place only when the whole unit succeeds.

    `decided` yields the unit's batches (doc_id, decision, reason at least) with their final
    decisions; with a per-reason cap they are read once first, to know each reason's sample.
    """

    def __init__(
        self,
        run: RunDir,
        idx: int,
        schema: pa.Schema,
        cfg: ExcludedConfig,
        decided: Callable[[], Iterator[pa.Table]],
    ) -> None:
        self.run = run
        self.idx = idx
        self.schema = excluded_schema(schema)
        self.sample = ExcludedSample(cfg)
        if self.sample.bottom is not None:
            for table in decided():
                self.sample.observe(table)
        self.writers: dict[Path, AtomicParquetWriter] = {}

    def write(self, table: pa.Table) -> None:
        """Write the sample's rows of a batch that carries final decisions and reasons."""
        rows = table.filter(self.sample.select(table))
        if rows.num_rows == 0:
            return
        rows = cast_to_schema(rows, self.schema)
        reasons = pc.fill_null(rows.column("reason"), "")
        for reason in pc.unique(reasons).to_pylist():  # a few distinct reasons, not documents
            path = self.run.excluded_part(reason, self.idx)
            if path not in self.writers:
                self.writers[path] = AtomicParquetWriter(path, self.schema)
            self.writers[path].write(rows.filter(pc.equal(reasons, reason)))

    def __enter__(self) -> ExcludedWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        # Closes every part (renaming it into place), or aborts them all if the unit failed or
        # one close did.
        stack = contextlib.ExitStack()
        for writer in self.writers.values():
            stack.push(writer)
        stack.__exit__(exc_type, exc, tb)


# --- reading back (curator show) --------------------------------------------------------------


def _reason_dirs(run: RunDir) -> dict[str, Path]:
    return {
        d.name.removeprefix("reason="): d
        for d in sorted(run.excluded.glob("reason=*"))
        if d.is_dir()
    }


def reason_counts(run: RunDir) -> dict[str, int]:
    """Documents in excluded/ per reason, from the parquet footers (no data read)."""
    return {
        reason: sum(pq.ParquetFile(p).metadata.num_rows for p in sorted(d.glob("part-*.parquet")))
        for reason, d in _reason_dirs(run).items()
    }


def read_excluded(run: RunDir, reason: str, n: int) -> pa.Table:
    """The first `n` excluded documents of `reason` (units in order, rows in file order)."""
    d = _reason_dirs(run).get(reason)
    if d is None:
        raise KeyError(reason)
    parts: list[pa.Table] = []
    have = 0
    for path in sorted(d.glob("part-*.parquet")):
        for rb in pq.ParquetFile(path).iter_batches(batch_size=max(1, n - have)):
            parts.append(pa.Table.from_batches([rb]))
            have += rb.num_rows
            break
        if have >= n:
            break
    if not parts:
        return pa.schema(BASE_FIELDS).empty_table()
    return pa.concat_tables(parts, promote_options="default").slice(0, n)


def reason_table(run: RunDir) -> list[tuple[str, str, int, int]]:
    """(reason, decision, documents in the run, documents in excluded/) for every reason a
    document left the run with, most frequent first."""
    from curator.catalog import query

    _, rows = query(
        run,
        "SELECT coalesce(reason, '') AS reason, decision, count(*) AS docs FROM manifest "
        "WHERE decision <> 'kept' GROUP BY ALL ORDER BY docs DESC, reason",
    )
    sampled = reason_counts(run)
    return [(reason, decision, docs, sampled.get(reason, 0)) for reason, decision, docs in rows]
