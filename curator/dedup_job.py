"""`curator dedup`: normalize + hashes over the inputs, global dedup, one row per input record."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from connectors.fs import AtomicParquetWriter
from connectors.registry import expand_inputs
from connectors.spill import release_spills, spill_units
from curator.config import CurateConfig
from curator.executor import run_pass
from curator.fanout import worker_pool
from curator.output_place import check_output_place
from curator.passes import Pass1Worker, apply_duplicates, unit_item
from curator.ray_runtime import default_concurrency, ensure_ray, local_resources, runs_locally
from curator.rundir import RunDir

DEDUP_OUTPUT_SCHEMA = pa.schema(
    [
        pa.field("doc_id", pa.string(), nullable=False),
        pa.field("input_id", pa.string()),
        pa.field("duplicate_of", pa.string()),
        pa.field("source", pa.string(), nullable=False),
        pa.field("record", pa.int64(), nullable=False),
        pa.field("decision", pa.string(), nullable=False),
        pa.field("reason", pa.string()),
    ]
)


def run_dedup_only(cfg: CurateConfig, output: str) -> dict:
    """Write `output` (parquet): doc_id, input_id, duplicate_of (a doc_id; null for
    representatives, unique docs and quarantined records), source, record, decision, reason.
    Work files go to OUTPUT.work/."""
    from curator.stages.dedup import run_dedup

    output = check_output_place(output, cfg.ray)  # tasks write OUTPUT.work/
    units = expand_inputs(cfg.inputs, cfg.read.unit_bytes)
    work = RunDir.at(Path(output).with_suffix(".work"))
    work.root.mkdir(parents=True, exist_ok=True)
    local = runs_locally(cfg.ray, units)  # judged on the inputs as stored, not spilled
    units = spill_units(units, work.spill, cfg.read)  # large .jsonl.zst / one-member .gz
    resources = local_resources(cfg.ray) if local else ensure_ray(cfg.ray)
    items = [unit_item(i, u) for i, u in enumerate(units)]
    concurrency = default_concurrency(cfg.ray, len(items), resources)
    with worker_pool(concurrency, local=local):  # one pool for the pass and the shuffles
        run_pass(
            Pass1Worker,
            "pass1",
            work,
            items,
            {"cfg_json": cfg.model_dump_json(), "run_root": str(work.root), "filters": False},
            concurrency,
            cfg.quiet,
        )
        release_spills(work.spill)
        summary = run_dedup(
            [(i["idx"], str(work.pass1(i["idx"]))) for i in items],
            str(work.dedup_work),
            cfg.dedup,
            concurrency,
        )
    with AtomicParquetWriter(output, DEDUP_OUTPUT_SCHEMA) as writer:
        for item in items:
            dups_path = work.dups(item["idx"])
            dups = pq.read_table(dups_path)
            table = pq.read_table(
                work.pass1(item["idx"]),
                columns=["doc_id", "input_id", "source", "record", "decision", "reason"],
            )
            writer.write(apply_duplicates(table, dups).select(DEDUP_OUTPUT_SCHEMA.names))
    return asdict(summary)
