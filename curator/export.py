"""`curator export`: a finished RUN's kept documents, in the order a curriculum schedule gives.

Formats (OUT/ is the `output` folder):
- `parquet`: OUT/part-00000.parquet, ... in reading order (file name, then row), columns
  doc_id, input_id (the input's own id, to join back to the user's data), source, tokens
  (list<uint32>), n_tokens, quality_score, difficulty, stage, sample_weight (the agent's
  upweight, 1 otherwise; carried, not applied: a loader repeats or weighs), the input metadata
  the manifest holds (INPUT_METADATA: url, date, metadata, lang, lang_score, where present),
  phase, position; with `with_text`, also `text` (joined as for jsonl, below). Plain files with no
  partition folders, so polars, DuckDB, pyarrow.dataset and
  `datasets.load_dataset("parquet", data_files=...)` read them as is.
- `jsonl`: OUT/part-00000.jsonl, ... one JSON object per document with `text` and the same
  metadata minus tokens. The text is the run's normalized text (the exact string that was
  tokenized) joined by doc_id from RUN/_work/pass1. When the run's _work/ has been deleted the
  text is decoded from the tokens instead: exact for the tokenizer curate trains (it round-trips
  every normalized text, curator/tokenizer_train.py), but a `tokenizer.model_path` model may
  normalize text (NFKC, whitespace) and then not give it back.
- `bin`: OUT/tokens.bin + tokens.idx + header.json + doc_ids.parquet (connectors/bin.py), which
  `curator.trainer.data.load_corpus(OUT)` and nanoGPT-style `np.memmap` loaders read. A flat
  token file has no column for a weight, so it is applied: a document with sample_weight w is
  written w times in a row at its place (w entries in tokens.idx and doc_ids.parquet), and
  header.json says so (`sample_weight_applied`, `n_distinct_docs`).
By default (`on_exhausted="fill"`) every kept document is placed; `truncate` follows the schedule
exactly and leaves out what does not fit (curator/schedules.py).
OUT/_export.json (written last: a folder with it is complete) records the schedule, the tokens
per phase and stage (target and actual), the tokens and documents kept, placed and left out; its
leading underscore makes folder readers such as pyarrow.dataset skip it (Spark's `_SUCCESS`
convention).

Memory: the order is held as arrays over kept documents (a few int64 per document). Documents
flow through a bucketed external shuffle: pass A streams the shards and appends each row to the
bucket of its output position (buckets are consecutive `bucket_tokens` spans of the output);
pass B loads one bucket at a time, sorts it and writes it. So at most one bucket is in memory.
"""

from __future__ import annotations

import json
import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from pydantic import Field

from connectors.fs import atomic_open, write_parquet_atomic, write_text_atomic
from curator.config import ConfigError, Section
from curator.rundir import RunDir
from curator.schedules import OnExhausted, Plan, load_schedule, plan_order
from curator.schema import INPUT_METADATA, SAMPLE_WEIGHT, sample_weights
from curator.trainer.data import shard_files

ExportFormat = Literal["parquet", "jsonl", "bin", "megatron"]
TOKEN_FORMATS = ("bin", "megatron")  # tokens only, sample weights applied by repetition
MEGATRON_PREFIX = "tokens"
META = ["doc_id", "input_id", "source", "n_tokens", "quality_score", "difficulty", "stage"]
# read where a shard has it (runs curated before it existed have not) and always written
WEIGHTED_META = [*META, SAMPLE_WEIGHT]
OUR_FILES = (
    "part-*.parquet",
    "part-*.jsonl",
    "tokens.bin",
    "tokens.idx",
    "header.json",
    "doc_ids.parquet",
    "_export.json",
)


class ExportConfig(Section):
    """An export of a finished run (`curator export`, `python -m jobs.export`)."""

    run: str = Field(description="Finished RUN directory to export.")
    output: str = Field(description="Folder to write the export to.")
    format: ExportFormat = Field(
        "parquet", description="parquet, jsonl, bin (flat tokens.bin + int64 offsets, nanoGPT "
        "style) or megatron (tokens.bin + tokens.idx in Megatron's MMIDIDX indexed-dataset "
        "format: `IndexedDataset(OUTPUT/tokens)`).")
    schedule: str = Field(
        "phases", description="phases, linear, step, uniform, or a schedule YAML file."
    )
    seed: int = Field(0, description="Seed of the within-stage and within-phase shuffles.")
    on_exhausted: OnExhausted = Field(
        "fill",
        description="When a stage runs out: 'fill' places every kept document, giving an "
        "exhausted stage's share to the nearest stage(s) that still have documents; "
        "'truncate' scales the budget so the schedule holds exactly and leaves out the "
        "documents that do not fit (reported as left_out_docs/left_out_tokens).",
    )
    with_text: bool = Field(
        False,
        description="parquet: add a `text` column (the run's normalized text, as jsonl "
        "carries). jsonl always has it; bin has no text.",
    )
    difficulty: Literal["run", "model_loss"] = Field(
        "run",
        description="'run' = the stages curate assigned; 'model_loss' = re-stage by quantiles "
        "of per-document loss under `checkpoint`.",
    )
    checkpoint: str | None = Field(
        None, description="Trainer checkpoint (step dir or out_dir) for difficulty=model_loss."
    )
    train_config: str | None = Field(
        None, description="TrainConfig YAML the checkpoint was trained with (model shape)."
    )
    bucket_tokens: int = Field(
        32 << 20, gt=0, description="Tokens per shuffle bucket (and per output part file)."
    )
    batch_rows: int = Field(2048, gt=0, description="Rows per read batch in the shuffle.")
    overwrite: bool = Field(False, description="Replace an existing export in `output`.")


@dataclass(frozen=True)
class KeptDocs:
    """Kept documents in shard order: file of each row, row within file, and per-row meta."""

    files: list[Path]
    base: np.ndarray  # first global row of each file
    n_tokens: np.ndarray
    stage: np.ndarray
    n_stages: int
    sample_weight: np.ndarray  # int64 >= 1 per kept document


def _present(shard: Path, names: list[str]) -> list[str]:
    """`names` that `shard` holds (`sample_weight` is absent in runs older than it)."""
    have = set(pq.read_schema(shard).names)
    return [n for n in names if n in have]


def with_weight(table: pa.Table) -> pa.Table:
    """`table` with `sample_weight` (1 where the shard had none) as its last column, so every
    batch has one column order whether or not its shard carried weights."""
    weight = sample_weights(table)
    if SAMPLE_WEIGHT in table.column_names:
        table = table.drop_columns([SAMPLE_WEIGHT])
    return table.append_column(SAMPLE_WEIGHT, weight)


def kept_documents(run: RunDir) -> KeptDocs:
    files = shard_files(run.root)
    n_tok, stage, weight, counts = [], [], [], []
    for f in files:
        t = pq.read_table(f, columns=_present(f, ["n_tokens", "stage", SAMPLE_WEIGHT]))
        n_tok.append(t["n_tokens"].to_numpy())
        stage.append(pc.fill_null(t["stage"], 0).to_numpy())
        weight.append(sample_weights(t).to_numpy())
        counts.append(t.num_rows)
    marker = run.read_marker("curriculum")
    stages = np.concatenate(stage).astype(np.int64) if stage else np.zeros(0, np.int64)
    n_stages = marker["n_stages"] if marker else int(stages.max(initial=0)) + 1
    base = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    weights = np.concatenate(weight).astype(np.int64) if weight else np.zeros(0, np.int64)
    return KeptDocs(files, base, np.concatenate(n_tok).astype(np.int64), stages, n_stages,
                    weights)


def _prepare_output(cfg: ExportConfig) -> Path:
    out = Path(cfg.output)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"output: {out} is a file, not a folder; give --output a folder")
    ours = [p for pattern in OUR_FILES for p in out.glob(pattern)] if out.exists() else []
    if ours and not cfg.overwrite:
        raise ConfigError(
            f"output {out} already holds an export ({ours[0].name}); pass --overwrite or a new "
            "--output"
        )
    for p in ours:
        p.unlink()
    out.mkdir(parents=True, exist_ok=True)
    return out


def _unit_index(shard: Path) -> int:
    return int(shard.stem.split("-")[1])  # shards/stage=k/part-<unit>.parquet


def _text_batches(
    run: RunDir, shard: Path, batch_rows: int, with_tokens: bool
) -> Iterator[tuple[np.ndarray, pa.Table]]:
    """(rows within `shard`, table with META [+ tokens] + text) joined by doc_id from the unit's
    pass-1 file; the shard file's columns are held (one unit and stage), its text streams."""
    columns = _present(shard, WEIGHTED_META) + (["tokens"] if with_tokens else [])
    pass1 = run.pass1(_unit_index(shard))
    if not pass1.exists():
        yield from _decoded_batches(run, shard, batch_rows, columns)
        return
    meta = pq.read_table(shard, columns=columns)
    for rb in pq.ParquetFile(pass1).iter_batches(batch_size=batch_rows, columns=["doc_id", "text"]):
        pos = pc.index_in(rb.column(0), value_set=meta["doc_id"])
        hit = pc.is_valid(pos)
        rows = pc.filter(pos, hit).to_numpy(zero_copy_only=False).astype(np.int64)
        if len(rows):
            text = pc.filter(rb.column(1), hit).cast(pa.string())  # one schema for every file
            yield rows, meta.take(rows).append_column("text", text)


def _decoded_batches(
    run: RunDir, shard: Path, batch_rows: int, columns: list[str]
) -> Iterator[tuple[np.ndarray, pa.Table]]:
    from curator.run_tokenizer import open_run_tokenizer

    tokenizer = open_run_tokenizer(run.root)
    start = 0
    read = _present(shard, WEIGHTED_META) + ["tokens"]
    for rb in pq.ParquetFile(shard).iter_batches(batch_size=batch_rows, columns=read):
        table = pa.Table.from_batches([rb])
        # One batched decode call per read batch; the EOS that ends each document is not text.
        text = tokenizer.decode(table["tokens"].to_pylist())
        rows = np.arange(start, start + table.num_rows)
        start += table.num_rows
        yield rows, table.select(columns).append_column("text", pa.array(text, pa.string()))


def metadata_schema(run: RunDir) -> pa.Schema:
    """The INPUT_METADATA columns any manifest part holds: one schema for every output file,
    even when units differ (an input without urls, language id turned off)."""
    found: dict[str, pa.Field] = {}
    for part in sorted(run.manifest.glob("part-*.parquet")):
        for field in pq.read_schema(part):
            if field.name in INPUT_METADATA and field.name not in found:
                found[field.name] = field.with_nullable(True)
    return pa.schema([found[n] for n in INPUT_METADATA if n in found])


def _shard_metadata(run: RunDir, shard: Path, schema: pa.Schema) -> pa.Table | None:
    """`schema`'s columns for each row of `shard`, joined by doc_id from its unit's manifest
    part (null where the unit lacks a column)."""
    if not len(schema):
        return None
    ids = pq.read_table(shard, columns=["doc_id"])["doc_id"]
    part = run.manifest_part(_unit_index(shard))
    have = [n for n in schema.names if n in pq.read_schema(part).names] if part.exists() else []
    manifest = pq.read_table(part, columns=["doc_id", *have]) if have else None
    pos = pc.index_in(ids, value_set=manifest["doc_id"]) if manifest is not None else None
    columns = [
        manifest[f.name].take(pos).cast(f.type)
        if manifest is not None and f.name in have
        else pa.nulls(len(ids), f.type)
        for f in schema
    ]
    return pa.Table.from_arrays(columns, schema=schema)


def _token_batches(shard: Path, batch_rows: int) -> Iterator[tuple[np.ndarray, pa.Table]]:
    start = 0
    read = _present(shard, WEIGHTED_META) + ["tokens"]
    for rb in pq.ParquetFile(shard).iter_batches(batch_size=batch_rows, columns=read):
        rows = np.arange(start, start + rb.num_rows)
        start += rb.num_rows
        yield rows, pa.Table.from_batches([rb])


class _Buckets:
    """Append-only Arrow IPC files, one per output bucket (pass A of the external shuffle)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True)
        self.writers: dict[int, tuple] = {}

    def path(self, b: int) -> Path:
        return self.root / f"bucket-{b:06d}.arrow"

    def add(self, bucket: np.ndarray, table: pa.Table) -> None:
        order = np.argsort(bucket, kind="stable")
        bucket, table = bucket[order], table.take(pa.array(order))
        cuts = np.flatnonzero(np.diff(bucket)) + 1
        for lo, hi in zip(np.r_[0, cuts], np.r_[cuts, len(bucket)], strict=True):
            b = int(bucket[lo])
            if b not in self.writers:
                sink = pa.OSFile(str(self.path(b)), "wb")
                self.writers[b] = (sink, pa.ipc.new_stream(sink, table.schema))
            self.writers[b][1].write_table(table.slice(lo, hi - lo))

    def close(self) -> None:
        """Finish every bucket file; safe to call twice (after pass A, and on cleanup)."""
        for sink, writer in self.writers.values():
            writer.close()
            sink.close()
        self.writers.clear()

    def read(self, b: int) -> pa.Table | None:
        if not self.path(b).exists():
            return None
        with pa.memory_map(str(self.path(b))) as src:
            return pa.ipc.open_stream(src).read_all()


def _restage(cfg: ExportConfig, docs: KeptDocs) -> tuple[np.ndarray, np.ndarray, list[float]]:
    from curator.stages.curriculum import model_loss_difficulty, quantile_stages

    if not (cfg.checkpoint and cfg.train_config):
        raise ConfigError("difficulty=model_loss needs --checkpoint and --train-config")
    # staged on the float32 values the export writes: a loss that sits on a quantile cut in
    # float64 can round to the other side of it in float32, and a reader re-staging the written
    # column by the recorded cuts must get the stages the export wrote
    difficulty = model_loss_difficulty(docs.files, cfg.checkpoint, cfg.train_config)
    difficulty = difficulty.astype(np.float32)
    stage, cuts = quantile_stages(difficulty, docs.n_stages)
    return difficulty, stage.astype(np.int64), cuts


def run_export(cfg: ExportConfig) -> dict:
    """Write the export; returns the summary also written to OUT/_export.json."""
    from curator.output_place import check_output_place  # written by this process only

    cfg = cfg.model_copy(update={"output": check_output_place(cfg.output)})
    run = RunDir.at(cfg.run)
    if run.kept_nothing():
        raise ConfigError(run.kept_nothing_message("export"))
    if not run.tokenizer.exists() or not run.shards.is_dir():
        raise ConfigError(f"{run.root} is not a finished curator run (no shards/ or tokenizer)")
    if cfg.with_text and cfg.format in TOKEN_FORMATS:
        raise ConfigError(
            "with_text applies to format=parquet (jsonl always carries text, bin and megatron "
            "have none); drop --with-text or use --format parquet"
        )
    docs = kept_documents(run)
    schedule = load_schedule(cfg.schedule, docs.n_stages)
    out = _prepare_output(cfg)
    restaged = _restage(cfg, docs) if cfg.difficulty == "model_loss" else None
    stage = restaged[1] if restaged else docs.stage
    plan = plan_order(stage, docs.n_tokens, schedule, docs.n_stages, cfg.seed, cfg.on_exhausted)

    position = np.full(len(stage), -1, dtype=np.int64)
    position[plan.order] = np.arange(len(plan.order))
    cum_before = np.cumsum(docs.n_tokens[plan.order]) - docs.n_tokens[plan.order]
    bucket_of_position = cum_before // cfg.bucket_tokens
    n_buckets = int(bucket_of_position[-1]) + 1 if len(plan.order) else 0

    buckets = _Buckets(out / f"_shuffle-{uuid.uuid4().hex[:8]}")
    try:
        _scatter(cfg, run, docs, plan, position, bucket_of_position, restaged, buckets)
        files = _gather(cfg, run, buckets, n_buckets, out)
    finally:
        buckets.close()
        shutil.rmtree(buckets.root, ignore_errors=True)

    summary = {
        "run": str(run.root),
        "format": cfg.format,
        "seed": cfg.seed,
        "on_exhausted": cfg.on_exhausted,
        "with_text": cfg.with_text or cfg.format == "jsonl",
        "difficulty": cfg.difficulty,
        "n_stages": docs.n_stages,
        "files": files,
        **plan.summary(docs.n_tokens, stage),
        # bin writes a document sample_weight times; parquet/jsonl carry the column only
        "sample_weight_applied": cfg.format in TOKEN_FORMATS,
        "weighted_tokens": int((docs.n_tokens * docs.sample_weight)[plan.order].sum()),
    }
    if restaged:
        summary["cuts"] = restaged[2]
    write_text_atomic(json.dumps(summary, indent=1), out / "_export.json")
    return summary


def _scatter(
    cfg: ExportConfig,
    run: RunDir,
    docs: KeptDocs,
    plan: Plan,
    position: np.ndarray,
    bucket_of_position: np.ndarray,
    restaged: tuple[np.ndarray, np.ndarray, list[float]] | None,
    buckets: _Buckets,
) -> None:
    # bin keeps only tokens and doc_id; parquet and jsonl carry the input metadata.
    meta_schema = metadata_schema(run) if cfg.format not in TOKEN_FORMATS else pa.schema([])
    for f, shard in enumerate(docs.files):
        batches = (
            _text_batches(run, shard, cfg.batch_rows, with_tokens=cfg.format == "parquet")
            if cfg.format == "jsonl" or cfg.with_text
            else _token_batches(shard, cfg.batch_rows)
        )
        extra = _shard_metadata(run, shard, meta_schema)
        for rows, table in batches:
            table = with_weight(table)
            if extra is not None:
                taken = extra.take(pa.array(rows))
                for name in taken.column_names:
                    table = table.append_column(name, taken[name])
            g = docs.base[f] + rows
            pos = position[g]
            placed = pos >= 0
            if not placed.any():
                continue
            g, pos = g[placed], pos[placed]
            table = table.filter(pa.array(placed))
            if restaged:
                table = table.set_column(
                    table.schema.get_field_index("difficulty"),
                    "difficulty",
                    pa.array(restaged[0][g]),
                )
                table = table.set_column(
                    table.schema.get_field_index("stage"),
                    "stage",
                    pa.array(restaged[1][g].astype(np.int32)),
                )
            table = table.append_column("phase", pa.array(plan.phase[g].astype(np.int32)))
            table = table.append_column("position", pa.array(pos))
            buckets.add(bucket_of_position[pos], table)
    buckets.close()


def _gather(
    cfg: ExportConfig, run: RunDir, buckets: _Buckets, n_buckets: int, out: Path
) -> list[str]:
    files: list[str] = []
    bin_writer = None
    if cfg.format in TOKEN_FORMATS:
        from connectors.bin import BinWriter
        from curator.run_tokenizer import open_run_tokenizer

        tokenizer = open_run_tokenizer(run.root)
        bin_writer = BinWriter(out, tokenizer.vocab_size, tokenizer.eos_id, weighted=True,
                               layout="megatron" if cfg.format == "megatron" else "flat",
                               prefix=MEGATRON_PREFIX)
    try:
        for b in range(n_buckets):
            table = buckets.read(b)
            if table is None:
                continue
            table = table.take(pc.sort_indices(table["position"]))
            if bin_writer is not None:
                bin_writer.write(table["tokens"], table["doc_id"], repeats=table[SAMPLE_WEIGHT])
            elif cfg.format == "parquet":
                name = f"part-{b:05d}.parquet"
                write_parquet_atomic(table, out / name)
                files.append(name)
            else:
                import polars as pl

                name = f"part-{b:05d}.jsonl"
                with atomic_open(out / name, "wb") as fh:
                    pl.from_arrow(table).write_ndjson(fh)
                files.append(name)
    except BaseException:
        if bin_writer is not None:
            bin_writer.abort()
        raise
    if bin_writer is not None:
        header = bin_writer.close()
        files = [*header["files"], "header.json", "doc_ids.parquet"]
    return files
