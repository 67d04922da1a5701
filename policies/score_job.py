"""`curator score`: one row per input record with `doc_id`, `input_id`, `quality_score` and the
features.

Reading fans out one Ray task per input unit (connectors.registry.read_unit: bad records come
back quarantined, with a null score, so the output still has one row per record); scoring runs
in a Ray Data actor pool of `PolicyScorer`s over pyarrow batches. The output is one parquet
file written atomically (temp name + rename), rows in input order.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from tqdm import tqdm

from curator.config import InputSpec, RayConfig, ReadConfig


def _read_units(batch: pa.Table, read: dict[str, Any]) -> pa.Table:
    """map_batches fn: a batch of pickled SourceUnits -> their documents as one table."""
    import pickle

    from connectors.registry import read_unit
    from curator.schema import DOC_SCHEMA

    cfg = ReadConfig(**read)
    tables = [t for blob in batch.column("unit").to_pylist()
              for t in read_unit(pickle.loads(blob), cfg)]
    return pa.concat_tables(tables) if tables else DOC_SCHEMA.empty_table()


class _Score:
    """Scorer actor: PolicyScorer + projection to the output columns."""

    def __init__(self, policy: str | None) -> None:
        from policies.scorer import PolicyScorer

        self.scorer = PolicyScorer(policy, with_features=True)

    def __call__(self, table: pa.Table) -> pa.Table:
        out = self.scorer(table)
        keep = ["doc_id", "input_id", "source", "record", "decision", "reason", "quality_score"]
        feats = [c for c in out.column_names if c.startswith("feat_")]
        return out.select(keep + feats)


def run_score(inputs: list[str], output: str, policy: str | None = None,
              batch_size: int = 256, concurrency: int | None = None,
              text_field: str = "text", id_field: str | None = "id",
              ray_cfg: RayConfig | None = None, quiet: bool = False) -> dict[str, Any]:
    """Score every record of `inputs` into `output` (parquet). Returns counts and timing."""
    import pickle

    import ray.data

    from connectors.registry import expand_inputs
    from curator.output_place import check_output_place
    from curator.ray_runtime import ensure_ray

    output = check_output_place(output)  # written by this process only
    specs = [InputSpec(path=p, text_field=text_field, id_field=id_field) for p in inputs]
    units = expand_inputs(specs)  # config errors (no such path) raise here, before Ray starts
    resources = ensure_ray(ray_cfg or RayConfig())
    n_actors = max(1, min(concurrency or int(resources.get("CPU", 1)), 64))
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False
    ctx.execution_options.preserve_order = True  # output rows in input order
    t0 = time.time()
    # One block per unit, made at the source: a repartition here is an all-to-all task that
    # can starve behind an actor pool holding every CPU of a small cluster.
    ds = ray.data.from_items([{"unit": pickle.dumps(u)} for u in units],
                             override_num_blocks=max(1, len(units)))
    ds = ds.map_batches(_read_units, batch_size=1, batch_format="pyarrow",
                        fn_kwargs={"read": ReadConfig().model_dump()})
    ds = ds.map_batches(_Score, fn_constructor_kwargs={"policy": policy},
                        batch_size=batch_size, batch_format="pyarrow",
                        compute=ray.data.ActorPoolStrategy(size=n_actors))
    tables = []
    with tqdm(desc="score", unit="doc", disable=quiet, file=sys.stderr) as bar:
        for t in ds.iter_batches(batch_size=None, batch_format="pyarrow"):
            if t.num_rows:
                tables.append(t)
                bar.update(t.num_rows)
    result = pa.concat_tables(tables, promote_options="default") if tables else pa.table(
        {"doc_id": pa.array([], pa.string()), "quality_score": pa.array([], pa.float32())})
    out = Path(output)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    pq.write_table(result, tmp)
    tmp.replace(out)
    seconds = time.time() - t0
    return {"output": str(out), "rows": result.num_rows, "units": len(units),
            "actors": n_actors, "seconds": seconds,
            "docs_per_s": result.num_rows / seconds if seconds > 0 else 0.0}
