"""Global exact + near deduplication over the pass-1 files, as Ray tasks.

Phases (each a set of Ray tasks over files under `workdir/_dedup/`, one task per unit of data):
  map      per source: kept rows -> exact rows by hash(text_hash), band rows by (band, hash)
  reduce   per partition: exact groups -> duplicates (shuffled by representative);
           buckets -> star edges (first large-star input) + the source of each edge endpoint
  cc       alternating large-star/small-star rounds until nothing changes (components.py)
  resolve  per partition: near label of each node, exact duplicate -> final representative
  write    per source: `workdir/dups/source=<idx:05d>.parquet` (doc_id, duplicate_of, reason)

Near dedup sees only exact representatives (bucket_edges keeps the smallest doc of each exact
group), and an exact duplicate's `duplicate_of` is its representative's near-cluster label, so
it always names a kept document. Labels are component minima, so every output is a function of
the input rows alone: the same whatever the unit order, partition count or worker count, and a
re-run over the same workdir rewrites identical files.
"""

from __future__ import annotations

import math
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from connectors.fs import filesystem, write_parquet_atomic
from curator.config import DedupConfig
from curator.fanout import run_tasks
from curator.schema import KEPT
from curator.stages.components import (
    connected_components,
    read_labels,
    read_partition,
    write_edges_for_components,
    write_partitions,
    write_scratch,
)
from curator.stages.dedup_exact import EXACT_DUPLICATE, exact_duplicates
from curator.stages.lsh import bucket_edges, write_band_partitions

NEAR_DUPLICATE = "near_duplicate"
AUTO_ROWS_PER_PARTITION = 250_000  # shuffle rows per partition when num_partitions is 'auto'
DUPS_SCHEMA = pa.schema(
    [
        pa.field("doc_id", pa.string(), nullable=False),
        pa.field("duplicate_of", pa.string(), nullable=False),
        pa.field("reason", pa.string(), nullable=False),
    ]
)
EXACT_SCHEMA = {"doc_id": pl.String, "text_hash": pl.String, "source_idx": pl.Int64}
DUP_SCHEMA = {"doc_id": pl.String, "representative": pl.String, "source_idx": pl.Int64}
NODE_SCHEMA = {"doc_id": pl.String, "source_idx": pl.Int64}
RESOLVED_SCHEMA = {"doc_id": pl.String, "duplicate_of": pl.String, "reason": pl.String}


@dataclass
class DedupSummary:
    """What one dedup pass found, and how long each phase took."""

    n_docs: int = 0  # kept documents that took part
    n_candidates: int = 0  # LSH candidate edges (star edges, after verification)
    n_exact_duplicates: int = 0
    n_near_duplicates: int = 0
    n_clusters: int = 0  # kept representatives with at least one duplicate
    cc_rounds: int = 0
    partitions: int = 0  # of the shuffles (dedup.num_partitions, resolved when 'auto')
    seconds: dict[str, float] = field(default_factory=dict)  # per phase


def dups_path(workdir: str | Path, source_idx: int) -> Path:
    return Path(workdir) / "dups" / f"source={source_idx:05d}.parquet"


@dataclass(frozen=True)
class _Dirs:
    root: Path

    @property
    def exact(self) -> Path:
        return self.root / "exact"

    @property
    def exact_dups(self) -> Path:
        return self.root / "exact_dups"

    @property
    def bands(self) -> Path:
        return self.root / "bands"

    @property
    def nodes(self) -> Path:
        return self.root / "nodes"

    @property
    def cc(self) -> Path:
        return self.root / "cc"

    @property
    def resolved(self) -> Path:
        return self.root / "resolved"


def _band_schema(cfg: DedupConfig) -> dict[str, pl.DataType]:
    schema = {"doc_id": pl.String, "source_idx": pl.Int64, "band_hash": pl.UInt64, "band": pl.Int32}
    if cfg.exact:
        schema["text_hash"] = pl.String
    if cfg.threshold is not None:
        schema["minhash_sig"] = pl.List(pl.UInt32)
    return schema


def _wanted_columns(cfg: DedupConfig) -> list[str]:
    want = ["doc_id", "decision"]
    want += ["text_hash"] if cfg.exact else []
    want += ["minhash_bands"] if cfg.near else []
    want += ["minhash_sig"] if cfg.near and cfg.threshold is not None else []
    return want


def check_units(units: list[tuple[int, str]], cfg: DedupConfig) -> int:
    """Fail before any task starts when a pass-1 file lacks a column dedup needs (footer only).
    Returns the pass-1 files' row count (every row, kept or not: read from the footers too)."""
    want = _wanted_columns(cfg)
    rows = 0
    for _, path in units:
        fs, local = filesystem(path)
        meta = pq.read_metadata(local, filesystem=fs)
        have = meta.schema.to_arrow_schema().names
        missing = [c for c in want if c not in have]
        if missing:
            raise ValueError(
                f"pass-1 file {path} lacks {missing} (columns are {have}); the pass-1 chain "
                "must include ExactHash (text_hash) and MinHashSignature (minhash_bands, and "
                "minhash_sig when dedup.threshold is set), or turn dedup.exact / dedup.near off"
            )
        rows += meta.num_rows
    return rows


def partition_count(cfg: DedupConfig, pass1_rows: int) -> int:
    """The shuffles' partition count: the configured one, or for 'auto' one per
    AUTO_ROWS_PER_PARTITION rows the shuffles carry together (a kept document is one exact row
    and `bands` band rows; the pass-1 row count bounds the kept count from above).

    Why not a fixed 16: every map task writes one file per partition and shuffle, so on a small
    corpus the shuffles were thousands of tiny parquet files (16 inputs x 16 partitions x 2
    shuffles in the map phase alone), about 1 CPU-s of a 25 MB run that needs none of them.
    The partitions bound a reduce task's memory: 250,000 rows are some tens of MB, and the
    count grows with the corpus, so a reduce task holds about as much at 400 MB as at 40 MB.
    """
    if cfg.num_partitions != "auto":
        return int(cfg.num_partitions)
    rows_per_doc = 1 + (cfg.bands if cfg.near else 0)
    return max(1, math.ceil(pass1_rows * rows_per_doc / AUTO_ROWS_PER_PARTITION))


def _read_kept(path: str, source_idx: int, cfg: DedupConfig) -> pl.DataFrame:
    fs, local = filesystem(path)
    table = pq.read_table(local, columns=_wanted_columns(cfg), filesystem=fs)
    df = pl.from_arrow(table).filter(pl.col("decision") == KEPT).drop("decision")
    return df.with_columns(source_idx=pl.lit(source_idx, dtype=pl.Int64))


def _map_task(path: str, source_idx: int, cfg: DedupConfig, root: str) -> int:
    dirs, df = _Dirs(Path(root)), _read_kept(path, source_idx, cfg)
    parts = cfg.num_partitions
    if cfg.exact:
        exact = df.select("doc_id", "text_hash", "source_idx")
        write_partitions(exact, pl.col("text_hash"), parts, dirs.exact, source_idx)
    if cfg.near:
        cols = ["doc_id", "source_idx", "minhash_bands"]
        cols += ["text_hash"] if cfg.exact else []
        cols += ["minhash_sig"] if cfg.threshold is not None else []
        write_band_partitions(df.select(cols), parts, str(dirs.bands), source_idx)
    return df.height


def _reduce_task(part: int, cfg: DedupConfig, root: str) -> tuple[int, int]:
    dirs, parts = _Dirs(Path(root)), cfg.num_partitions
    n_exact = n_edges = 0
    if cfg.exact:
        dups = exact_duplicates(read_partition(dirs.exact, part, EXACT_SCHEMA))
        # Shuffled by representative so `resolve` meets it with the representative's label.
        write_partitions(dups, pl.col("representative"), parts, dirs.exact_dups, part)
        n_exact = dups.height
    if cfg.near:
        rows = read_partition(dirs.bands, part, _band_schema(cfg))
        edges = bucket_edges(rows, cfg.threshold)
        write_edges_for_components(edges, dirs.cc, parts, part)
        ends = pl.concat([edges.get_column("src"), edges.get_column("dst")]).unique()
        nodes = rows.filter(pl.col("doc_id").is_in(ends.implode())).select(list(NODE_SCHEMA))
        write_partitions(nodes.unique(), pl.col("doc_id"), parts, dirs.nodes, part)
        n_edges = edges.height
    return n_exact, n_edges


def _resolve_task(part: int, labels_dir: str | None, root: str) -> tuple[int, int, int]:
    """Final (doc_id, duplicate_of, reason) of partition `part`, shuffled by source."""
    dirs = _Dirs(Path(root))
    if labels_dir is None:
        labels = pl.DataFrame(schema={"doc_id": pl.String, "label": pl.String})
    else:
        labels = read_labels(labels_dir, part)
    nodes = read_partition(dirs.nodes, part, NODE_SCHEMA).unique()
    exact = read_partition(dirs.exact_dups, part, DUP_SCHEMA)
    near = labels.join(nodes, on="doc_id").select(
        "doc_id", duplicate_of="label", reason=pl.lit(NEAR_DUPLICATE), source_idx="source_idx"
    )
    exact_final = exact.join(
        labels.rename({"doc_id": "representative"}), on="representative", how="left"
    ).select(
        "doc_id",
        duplicate_of=pl.coalesce("label", "representative"),
        reason=pl.lit(EXACT_DUPLICATE),
        source_idx="source_idx",
    )
    # Clusters are counted at their kept representative, which lives in this partition: near
    # components by their root (a node without a label), exact groups whose representative
    # is in no near component.
    roots = nodes.join(labels, on="doc_id", how="anti").height
    lone = (
        exact.select("representative")
        .unique()
        .join(nodes, left_on="representative", right_on="doc_id", how="anti")
        .height
    )
    out = pl.concat([near, exact_final])
    for (source_idx,), rows in out.partition_by("source_idx", as_dict=True).items():
        path = dirs.resolved / f"source={source_idx:05d}" / f"from={part:05d}.parquet"
        write_scratch(rows.drop("source_idx"), path)
    return near.height, exact_final.height, roots + lone


def _write_task(source_idx: int, root: str, workdir: str) -> None:
    folder = _Dirs(Path(root)).resolved / f"source={source_idx:05d}"
    files = sorted(str(p) for p in folder.glob("from=*.parquet"))
    rows = pl.read_parquet(files) if files else pl.DataFrame(schema=RESOLVED_SCHEMA)
    table = rows.sort("doc_id").to_arrow().cast(DUPS_SCHEMA)
    write_parquet_atomic(table, dups_path(workdir, source_idx))


def run_dedup(
    units: list[tuple[int, str]],
    workdir: str,
    cfg: DedupConfig,
    concurrency: int | None = None,
) -> DedupSummary:
    """Find exact and near duplicates among the kept rows of `units` (source_idx, pass-1 path).

    Writes `workdir/dups/source=<idx:05d>.parquet` for every unit (empty when it has none).
    Runs as Ray tasks on the connected cluster (in this process, serially, if Ray is not
    initialized); `concurrency` bounds tasks in flight (default: the cluster's CPUs).
    """
    summary = DedupSummary()
    dirs = _Dirs(Path(workdir) / "_dedup")
    # Scratch of an earlier (possibly killed) run would add stale rows to the shuffles.
    shutil.rmtree(dirs.root, ignore_errors=True)
    root = str(dirs.root)

    def phase(name: str, t0: float) -> float:
        now = time.perf_counter()
        summary.seconds[name] = round(now - t0, 3)
        return now

    t = time.perf_counter()
    labels_dir: str | None = None
    if cfg.exact or cfg.near:
        summary.partitions = partition_count(cfg, check_units(units, cfg))
        # Every task gets the resolved count: a shuffle's writers and readers must agree.
        cfg = cfg.model_copy(update={"num_partitions": summary.partitions})
        parts = range(summary.partitions)
        kept = run_tasks(_map_task, [(path, s, cfg, root) for s, path in units], concurrency)
        summary.n_docs = sum(kept)
        t = phase("map", t)
        reduced = run_tasks(_reduce_task, [(p, cfg, root) for p in parts], concurrency)
        summary.n_candidates = sum(n for _, n in reduced)
        t = phase("reduce", t)
        if cfg.near:
            comps = connected_components(dirs.cc, cfg.num_partitions, concurrency)
            labels_dir, summary.cc_rounds = str(comps.labels_dir), comps.rounds
            t = phase("components", t)
        resolved = run_tasks(_resolve_task, [(p, labels_dir, root) for p in parts], concurrency)
        summary.n_near_duplicates = sum(r[0] for r in resolved)
        summary.n_exact_duplicates = sum(r[1] for r in resolved)
        summary.n_clusters = sum(r[2] for r in resolved)
        t = phase("resolve", t)
    run_tasks(_write_task, [(s, root, workdir) for s, _ in units], concurrency)
    phase("write", t)
    shutil.rmtree(dirs.root, ignore_errors=True)
    return summary
