"""The two streaming passes, as Ray Data callable classes over units (one input file each).

pass 1: read -> per-document steps -> `_work/pass1/source=i.parquet` (+ marker)
pass 2: pass-1 output + dedup decisions -> tokenize -> stage -> one shard part per curriculum
        stage + manifest part (+ marker)
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import sys
import time
from collections.abc import Iterator
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from connectors.fs import AtomicParquetWriter
from connectors.registry import SourceUnit, read_unit
from connectors.split import UnitPart
from connectors.tally import ReadTally
from connectors.validate import quarantine_one
from curator.config import CurateConfig, InputSpec
from curator.excluded import ExcludedSample, ExcludedWriter
from curator.pipeline import build_pass1_steps, output_schema, run_chain
from curator.progress import report
from curator.rundir import RunDir
from curator.schema import (
    KEPT,
    MANIFEST_BASE_FIELDS,
    QUARANTINED,
    SAMPLE_WEIGHT,
    SHARD_SCHEMA,
    cast_to_schema,
    sample_weights,
)
from curator.stages.curriculum import Difficulty, assign_stage
from curator.stats import UnitStats
from curator.step import alive_mask, apply_drops, set_column
from curator.unit_tries import (
    UNIT_FAILED,
    UnitTries,
    default_memory_limit,
    give_up_error,
    memory_bound,
)

# Heavy per-document columns that never go to the manifest.
NOT_IN_MANIFEST = {"text", "tokens", "minhash_bands", "minhash_sig"}
_MAX_ERROR_CHARS = 500


def unit_item(idx: int, unit: SourceUnit) -> dict:
    return {
        "idx": idx,
        "source": unit.source,
        "format": unit.format,
        "spec": unit.spec.model_dump_json(),
        "part": unit.part.to_json() if unit.part is not None else None,
    }


def item_unit(item: dict) -> SourceUnit:
    return SourceUnit(
        source=item["source"],
        format=item["format"],
        spec=InputSpec.model_validate_json(item["spec"]),
        part=UnitPart(**item["part"]) if item.get("part") else None,
    )


def manifest_schema(pass1_schema: pa.Schema) -> pa.Schema:
    base_names = {f.name for f in MANIFEST_BASE_FIELDS}
    signals = [
        f for f in pass1_schema if f.name not in base_names and f.name not in NOT_IN_MANIFEST
    ]
    return pa.schema(MANIFEST_BASE_FIELDS + signals)


def _timed(batches: Iterator[pa.Table], seconds: dict, name: str) -> Iterator[pa.Table]:
    """Charge the time spent producing each batch (reading, decoding, extraction) to `name`."""
    while True:
        t0 = time.perf_counter()
        batch = next(batches, None)
        seconds[name] += time.perf_counter() - t0
        if batch is None:
            return
        yield batch


def where() -> dict:
    """The machine, Ray node and process handling a unit, for its marker: on a cluster, which
    node read (or failed on) a file. `node_id` is null outside Ray."""
    ray = sys.modules.get("ray")  # a local worker never imports it (0.25 CPU-s per worker)
    node = ray.get_runtime_context().get_node_id() if ray and ray.is_initialized() else None
    return {"host": socket.gethostname(), "node_id": node, "pid": os.getpid()}


class _UnitWorker:
    """One pass over units, each tried at most `ray.max_unit_attempts` times per driver
    session (curator/unit_tries.py) under the per-worker memory bound; a unit given up is
    quarantined by `give_up`, so a file that kills its worker cannot stall the run."""

    phase = ""

    def __init__(
        self,
        cfg_json: str,
        run_root: str,
        filters: bool = True,
        progress: Any = None,
        session: str = "",
    ) -> None:
        self.cfg = CurateConfig.model_validate_json(cfg_json)
        self.progress = progress  # the driver's ProgressBoard actor, or None (quiet)
        self.run = RunDir.at(run_root)
        self.filters = filters
        self.session = session
        self.memory_limit = self.cfg.ray.worker_memory_bytes or default_memory_limit()

    def handle(self, item: dict) -> dict:
        """One unit (curator/fanout.py calls this on the actor): its marker written, with the
        worker that did it, its stats returned."""
        stats = self.bounded(item)
        self.run.write_marker({**stats.to_json(), "worker": where()}, self.phase, item["idx"])
        return {"idx": item["idx"], "stats": json.dumps(stats.to_json())}

    def bounded(self, item: dict) -> UnitStats:
        tries = UnitTries(self.run.tries, self.phase, item["idx"], self.session)
        limit = self.cfg.ray.max_unit_attempts
        while True:
            failed = tries.failed()
            if len(failed) >= limit:
                return self.give_up(item, give_up_error(failed, limit))
            tries.start()
            try:
                with memory_bound(self.memory_limit, tries):
                    return self.process(item)
            except Exception as exc:  # noqa: BLE001 - a unit's failure must not end the run
                tries.end(f"{type(exc).__name__}: {exc}"[:_MAX_ERROR_CHARS])

    def process(self, item: dict) -> UnitStats:
        raise NotImplementedError

    def give_up(self, item: dict, error: str) -> UnitStats:
        raise NotImplementedError


class Pass1Worker(_UnitWorker):
    phase = "pass1"

    def __init__(
        self,
        cfg_json: str,
        run_root: str,
        filters: bool = True,
        progress: Any = None,
        session: str = "",
    ) -> None:
        super().__init__(cfg_json, run_root, filters, progress, session)
        eval_set = None
        if filters and self.cfg.decontaminate.paths:
            from curator.stages.decontaminate import EvalSet

            # built once by the driver (executor.run_curate), memory-mapped here: no worker
            # reads or splits the evaluation files, and a node's workers share the pages
            meta = self.run.read_marker("decontaminate")
            eval_set = EvalSet.open(self.run.eval_set, meta) if meta is not None else None
        self.steps = build_pass1_steps(self.cfg, filters=filters, eval_set=eval_set)
        if filters and self.cfg.curriculum.score != "none":
            # Last: difficulty is scored on the final text of documents that passed the rules.
            self.steps.append(Difficulty(self.cfg.curriculum))
        self.schema = output_schema(self.steps)

    def process(self, item: dict) -> UnitStats:
        stats = UnitStats()
        unit = item_unit(item)
        excluded = ExcludedSample(self.cfg.excluded)  # per unit: its cap is per unit
        tally = ReadTally()
        with AtomicParquetWriter(self.run.pass1(item["idx"]), self.schema) as writer:
            for batch in _timed(read_unit(unit, self.cfg.read, tally), stats.seconds, "read"):
                stats.records += batch.num_rows
                chars = int(pc.sum(batch.column("n_chars")).as_py() or 0)
                stats.chars_in += chars
                report(self.progress, batch.num_rows, chars)
                batch = run_chain(self.steps, batch, stats.seconds)
                stats.add_batch_outcomes(batch)
                stats.chars_alive += UnitStats.alive_chars(batch)
                # Text of rows already out of the running is not needed again: drop it early,
                # except for the excluded/ sample that pass 2 writes.
                keep_text = pc.or_(alive_mask(batch), excluded.observe(batch))
                batch = set_column(batch, "text", pc.if_else(keep_text, batch.column("text"), None))
                writer.write(cast_to_schema(batch, self.schema))
        stats.framed = tally.expected
        return stats

    def give_up(self, item: dict, error: str) -> UnitStats:
        """The unit becomes one quarantined record (as an unreadable file does)."""
        stats = UnitStats()
        # at the unit's first record: a range's row is distinct from the other ranges'
        table = quarantine_one(item["source"], item_unit(item).first_record, UNIT_FAILED, error)
        table = run_chain(self.steps, table)
        stats.records = stats.framed = table.num_rows
        stats.add_batch_outcomes(table)
        with AtomicParquetWriter(self.run.pass1(item["idx"]), self.schema) as writer:
            writer.write(cast_to_schema(table, self.schema))
        return stats


def apply_duplicates(table: pa.Table, dups: pa.Table) -> pa.Table:
    """Drop rows listed in `dups` (doc_id, duplicate_of, reason) and fill `duplicate_of`."""
    if dups.num_rows == 0:
        return set_column(table, "duplicate_of", pa.nulls(table.num_rows, pa.string()))
    pos = pc.index_in(table.column("doc_id"), value_set=dups.column("doc_id"))
    hit = pc.is_valid(pos)
    reason = pc.if_else(hit, pc.take(dups.column("reason"), pc.fill_null(pos, 0)), None)
    dup_of = pc.if_else(hit, pc.take(dups.column("duplicate_of"), pc.fill_null(pos, 0)), None)
    table = apply_drops(table, reason)
    # Only rows that were alive when dedup saw them carry a duplicate_of.
    return set_column(table, "duplicate_of", dup_of)


class NoSurvivors:
    """Pass 2's tokenize step of a run where no document survived pass 1: null tokens."""

    name = "tokenize"

    def __call__(self, table: pa.Table) -> pa.Table:
        if pc.any(alive_mask(table)).as_py():
            raise RuntimeError("a document is alive in pass 2 but no tokenizer was trained")
        n = table.num_rows
        table = set_column(table, "tokens", pa.nulls(n, SHARD_SCHEMA.field("tokens").type))
        return set_column(table, "n_tokens", pa.nulls(n, pa.int64()))


class Pass2Worker(_UnitWorker):
    phase = "pass2"

    def __init__(
        self,
        cfg_json: str,
        run_root: str,
        num_threads: int = 1,
        progress: Any = None,
        session: str = "",
    ) -> None:
        from curator.run_tokenizer import open_run_tokenizer
        from curator.stages.tokenize import Tokenize

        super().__init__(cfg_json, run_root, progress=progress, session=session)
        # No tokenizer = nothing survived pass 1 (executor.prepare_tokenizer): no row to encode.
        self.tokenize = (
            Tokenize(open_run_tokenizer(self.run.root, num_threads))
            if self.run.tokenizer.exists()
            else NoSurvivors()
        )
        # Written by the driver between dedup and pass 2; absent = no curriculum (one stage).
        curriculum = self.run.read_marker("curriculum") or {"cuts": []}
        self.cuts: list[float] = curriculum["cuts"]

    def process(self, item: dict) -> UnitStats:
        idx = item["idx"]
        stats = UnitStats()
        dups_path = self.run.dups(idx)
        dups = (
            pq.read_table(dups_path)
            if dups_path.exists()
            else pa.table(
                {
                    "doc_id": pa.array([], pa.string()),
                    "duplicate_of": pa.array([], pa.string()),
                    "reason": pa.array([], pa.string()),
                }
            )
        )
        pass1 = pq.ParquetFile(self.run.pass1(idx))
        m_schema = manifest_schema(pass1.schema_arrow)
        with contextlib.ExitStack() as stack:
            # One shard part per stage (possibly empty): a unit's files are complete together.
            shards = [
                stack.enter_context(AtomicParquetWriter(self.run.shard(k, idx), SHARD_SCHEMA))
                for k in range(len(self.cuts) + 1)
            ]
            manifest = stack.enter_context(
                AtomicParquetWriter(self.run.manifest_part(idx), m_schema)
            )
            excluded = stack.enter_context(
                ExcludedWriter(
                    self.run,
                    idx,
                    pass1.schema_arrow,
                    self.cfg.excluded,
                    lambda: (
                        apply_duplicates(pa.Table.from_batches([rb]), dups)
                        for rb in pass1.iter_batches(columns=["doc_id", "decision", "reason"])
                    ),
                )
            )
            for rb in pass1.iter_batches(batch_size=self.cfg.read.batch_size):
                table = pa.Table.from_batches([rb])
                stats.records += table.num_rows
                report(self.progress, table.num_rows, int(pc.sum(table["n_chars"]).as_py() or 0))
                t0 = time.perf_counter()
                table = apply_duplicates(table, dups)
                stats.seconds["apply_dedup"] += time.perf_counter() - t0
                t0 = time.perf_counter()
                excluded.write(table)  # final decisions and reasons; the sample's text
                stats.seconds["excluded"] += time.perf_counter() - t0
                table = run_chain([self.tokenize], table, stats.seconds)
                kept = alive_mask(table)
                n = table.num_rows
                difficulty = (
                    table.column("difficulty")
                    if "difficulty" in table.column_names
                    else pa.nulls(n, pa.float32())
                )
                stage_np = assign_stage(difficulty, self.cuts)
                stage = pc.if_else(kept, pa.array(stage_np), pa.nulls(n, pa.int32()))
                table = set_column(table, "stage", stage)
                # kept rows: the agent's weight, or 1 when no agent ran; others: none
                weight = pc.if_else(kept, sample_weights(table), pa.nulls(n, pa.int32()))
                table = set_column(table, SAMPLE_WEIGHT, weight)
                stats.add_batch_outcomes(table)
                stats.tokens += int(pc.sum(table.column("n_tokens")).as_py() or 0)
                manifest.write(cast_to_schema(table, m_schema))
                kept_np = kept.to_numpy(zero_copy_only=False)
                for k, writer in enumerate(shards):
                    rows = pa.array(kept_np & (stage_np == k))
                    writer.write(cast_to_schema(table.filter(rows), SHARD_SCHEMA))
        return stats

    def give_up(self, item: dict, error: str) -> UnitStats:
        """Every pass-1 row of the unit goes to the manifest quarantined (its text is not read
        again); its shard parts are written empty, so the unit's files stay complete together.
        """
        idx = item["idx"]
        stats = UnitStats()
        pass1 = pq.ParquetFile(self.run.pass1(idx))
        m_schema = manifest_schema(pass1.schema_arrow)
        columns = [n for n in pass1.schema_arrow.names if n not in NOT_IN_MANIFEST]
        with contextlib.ExitStack() as stack:
            for k in range(len(self.cuts) + 1):
                stack.enter_context(AtomicParquetWriter(self.run.shard(k, idx), SHARD_SCHEMA))
            manifest = stack.enter_context(
                AtomicParquetWriter(self.run.manifest_part(idx), m_schema)
            )
            for rb in pass1.iter_batches(batch_size=self.cfg.read.batch_size, columns=columns):
                table = pa.Table.from_batches([rb])
                n = table.num_rows
                table = set_column(table, "decision", pa.array([QUARANTINED] * n, pa.string()))
                table = set_column(table, "reason", pa.array([UNIT_FAILED] * n, pa.string()))
                table = set_column(table, "error", pa.array([error] * n, pa.string()))
                stats.records += n
                stats.add_batch_outcomes(table)
                manifest.write(cast_to_schema(table, m_schema))
        return stats


def kept_outcome_count(stats: UnitStats) -> int:
    return stats.by_decision()[KEPT]
