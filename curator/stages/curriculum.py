"""Curriculum stages: a difficulty per kept document and stages by difficulty quantiles.

Pass 1 adds `difficulty` to alive documents (the `Difficulty` step); after dedup the driver
computes the global quantile cut points over the documents that survived (`stage_cuts`, DuckDB,
memory bounded by one float per kept document) and persists them in `RUN/_done/curriculum.json`;
pass 2 routes each kept document to `RUN/shards/stage=<k>/` with `assign_stage`.

Scores (higher = harder):
- `length`: characters of the normalized text.
- `compression_ratio`: zstd-compressed size / raw size of the text. Repetitive, boilerplate text
  compresses well (easy); dense, novel text does not (hard). One zstd call per batch.
- `agent_score`: 1 - sigmoid(quality_score), the agent's drop probability (needs the agent
  stage earlier in pass 1). quality_score is a keep logit, unbounded; 1 - logit would make
  difficulty unbounded too and read a logit as if it were a probability.
- `model_loss`: per-document loss under a trained checkpoint (`model_loss_difficulty`); needs a
  model, so it is used at export time to re-stage a finished run.

A document whose difficulty is null (only possible with `agent_score` when the scorer skipped
it) goes to stage 0.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from curator.config import CurriculumConfig
from curator.step import alive_mask, set_column

STAGE_NAMES_3 = ("easy", "medium", "hard")


def compression_ratio(texts: pa.Array | pa.ChunkedArray, level: int = 3) -> np.ndarray:
    """zstd size / UTF-8 size of each string (float64; empty strings give 0).

    The Arrow string buffer and its offsets are handed to zstd as one segmented buffer, so the
    whole batch is compressed in one C call with no per-document copy.
    """
    import zstandard

    if isinstance(texts, pa.ChunkedArray):
        texts = texts.combine_chunks()
    arr = pc.fill_null(texts, "").cast(pa.large_string())
    n = len(arr)
    if n == 0:
        return np.zeros(0)
    offs = np.frombuffer(arr.buffers()[1], dtype=np.int64)[arr.offset : arr.offset + n + 1]
    raw = np.diff(offs)
    if raw.sum() == 0:
        return np.zeros(n)
    segments = np.stack([offs[:-1], raw], axis=1).astype(np.uint64)
    data = zstandard.BufferWithSegments(arr.buffers()[2], segments.tobytes())
    cctx = zstandard.ZstdCompressor(
        level=level, write_checksum=False, write_content_size=False, write_dict_id=False
    )
    out = cctx.multi_compress_to_buffer(data, threads=1)
    # One len() per result segment: the sizes are not exposed as an array.
    packed = np.fromiter((len(out[i]) for i in range(n)), dtype=np.int64, count=n)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(raw > 0, packed / np.maximum(raw, 1), 0.0)


class Difficulty:
    """Adds `difficulty` (float32) to alive rows from the configured score; null elsewhere."""

    name = "difficulty"

    def __init__(self, cfg: CurriculumConfig) -> None:
        if cfg.score == "none":
            raise ValueError("curriculum.score=none adds no difficulty step; do not build one")
        self.cfg = cfg

    def __call__(self, table: pa.Table) -> pa.Table:
        alive = alive_mask(table)
        n = table.num_rows
        if self.cfg.score == "agent_score":
            if "quality_score" not in table.column_names:
                raise ValueError(
                    "curriculum.score=agent_score but no quality_score column reached the "
                    "difficulty step; enable the agent stage or pick length/compression_ratio"
                )
            # 1 - sigmoid(s) = sigmoid(-s) = 1 / (1 + exp(s)); float32 exp overflows to inf
            # for s > ~88, giving difficulty 0 (certain keep), the limit it should be
            score = pc.cast(table["quality_score"], pa.float32())
            value = pc.divide(pa.scalar(1.0, pa.float32()),
                              pc.add(pa.scalar(1.0, pa.float32()), pc.exp(score)))
        elif self.cfg.score == "length":
            value = pc.utf8_length(pc.fill_null(table["text"], ""))
        else:
            alive_np = alive.to_numpy(zero_copy_only=False)
            ratios = np.zeros(n)
            ratios[alive_np] = compression_ratio(
                pc.filter(table["text"], alive), self.cfg.zstd_level
            )
            value = pa.array(ratios)
        difficulty = pc.if_else(alive, value.cast(pa.float32()), pa.nulls(n, pa.float32()))
        return set_column(table, "difficulty", difficulty)


def stage_cuts(kept_glob: str, dups_glob: str | None, n_stages: int) -> list[float]:
    """The n_stages - 1 quantile cut points of `difficulty` over alive pass-1 rows that are not
    listed as duplicates. Exact (DuckDB sorts out of core if needed), hence deterministic."""
    import duckdb

    if n_stages <= 1:
        return []
    qs = [k / n_stages for k in range(1, n_stages)]
    # Paths go in as parameters, never into the SQL text: a run folder may hold a quote.
    params: list = [qs, kept_glob]
    anti = ""
    if dups_glob is not None:
        anti = "AND doc_id NOT IN (SELECT doc_id FROM read_parquet(?))"
        params.append(dups_glob)
    sql = (
        "SELECT quantile_cont(difficulty::DOUBLE, ?::DOUBLE[]) FROM read_parquet(?) "
        f"WHERE decision = 'kept' AND difficulty IS NOT NULL {anti}"
    )
    with duckdb.connect() as con:
        cuts = con.execute(sql, params).fetchone()[0]
    return [float(c) for c in cuts] if cuts is not None else []


def assign_stage(
    difficulty: pa.Array | pa.ChunkedArray | np.ndarray, cuts: list[float]
) -> np.ndarray:
    """Stage (int32) = number of cut points <= difficulty; ties at a cut go to the harder stage,
    null/NaN to stage 0."""
    if not isinstance(difficulty, np.ndarray):
        difficulty = pc.fill_null(difficulty, np.nan).to_numpy(zero_copy_only=False)
    d = np.asarray(difficulty, dtype=np.float64)
    stage = np.searchsorted(np.asarray(cuts, dtype=np.float64), d, side="right")
    return np.where(np.isnan(d), 0, stage).astype(np.int32)


def quantile_stages(difficulty: np.ndarray, n_stages: int) -> tuple[np.ndarray, list[float]]:
    """Stages by quantile of an in-memory difficulty array (for re-staging at export time)."""
    finite = difficulty[np.isfinite(difficulty)]
    if n_stages <= 1 or finite.size == 0:
        return np.zeros(len(difficulty), np.int32), []
    cuts = np.quantile(finite, [k / n_stages for k in range(1, n_stages)]).tolist()
    return assign_stage(difficulty, cuts), cuts


def model_loss_difficulty(
    shard_paths: list[Path], checkpoint: str | Path, train_config: str | Path, batch_docs: int = 256
) -> np.ndarray:
    """Per-document mean loss (nats/token) under a trained checkpoint, for every row of
    `shard_paths` in order; shards are streamed `batch_docs` documents at a time."""
    import pyarrow.parquet as pq

    from curator.trainer.checkpoint import latest_checkpoint, load_checkpoint
    from curator.trainer.config import load_train_config
    from curator.trainer.engine import build_model, per_document_loss, resolve_device

    cfg = load_train_config(train_config)
    ckpt = Path(checkpoint)
    if not (ckpt / "state.json").exists():
        found = latest_checkpoint(ckpt)
        if found is None:
            raise FileNotFoundError(
                f"{ckpt} is neither a checkpoint (step_<N>/ with state.json) nor a training "
                "out_dir holding checkpoints/; pass --checkpoint to one of them"
            )
        ckpt = found
    device = resolve_device(cfg.device)
    if cfg.model.vocab_size is None:
        raise ValueError(
            f"{train_config}: model.vocab_size is null; set it to the vocabulary the checkpoint "
            "was trained with"
        )
    model = build_model(cfg, cfg.model.vocab_size, device)
    load_checkpoint(ckpt, model)
    out = []
    for path in shard_paths:
        for rb in pq.ParquetFile(path).iter_batches(batch_size=batch_docs, columns=["tokens"]):
            col = rb.column(0)
            flat = col.flatten().to_numpy(zero_copy_only=False)
            docs = np.split(flat, col.offsets.to_numpy()[1:-1]) if len(col) else []
            out.append(per_document_loss(model, docs, precision=cfg.precision))
    return np.concatenate(out) if out else np.zeros(0)
