"""The loop's candidate pool: built, curated into RUN/, and loaded as aligned arrays.

The pool (policies/pool.py: clean text, real junk, labelled corruptions; or, with
`pool.source: inputs`, the user's own crawl documents unlabelled and `agent.target` as the clean
text, policies/natural.py) is written as
`RUN/loop/pool/pool.jsonl` with an `id` per document and curated by `run_curate` into the loop's
RUN directory: normalization and dedup (and, with `curate_rules`, the heuristic rules), a
sentencepiece tokenizer trained on the kept text, token shards, manifest and catalog. The loop's
candidates are the kept documents of that run; the run's funnel, manifest and catalog are the
report's first sections. Labels stay beside the pool (`labels.parquet`, null for a natural
pool), for evaluation only. The clean held-out documents are split: the first half is the
validation text the agent's reward is measured on, the second half the test text every arm's
reported loss is measured on (`heldout.split` and `heldout.max_doc_chars` shape and order them
when the pool is written, so heldout.json holds exactly the texts of both halves). A natural
pool also keeps its target's fitting part (`target.json`: what the round-0 agent's target model
and reference LM are fitted on), disjoint from both halves.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from connectors.fs import atomic_open, write_parquet_atomic
from curator.config import (
    CurateConfig,
    CurriculumConfig,
    InputSpec,
    LanguageConfig,
    QualityConfig,
    TokenizerConfig,
)
from curator.loop.config import LoopConfig, LoopHeldoutConfig
from curator.rundir import RunDir
from policies.pool import clip_text


@dataclass(frozen=True)
class LoopPool:
    """Kept documents of the loop's curated run, aligned by row."""

    doc_ids: pa.Array  # string: the pool's own ids (pool-NNNNNN), unique within the pool
    texts: pa.Array  # string: the pool's raw text (what policies are trained and scored on)
    tokens: pa.ListArray  # list<uint32>: token ids under RUN/tokenizer.model, EOS appended
    labels: pa.Array  # "clean" or the junk kind, null for a natural pool; evaluation only
    validation_texts: list[str]  # clean held-out documents for rewards ...
    validation: np.ndarray  # ... and their token stream
    target_texts: list[str]  # a natural pool's target fitting part ([] for a labelled pool)
    test: np.ndarray  # clean held-out token stream for reported losses
    vocab_size: int
    eos_id: int
    word_start: np.ndarray  # bool per token id: its piece begins a word (word_starts)

    @property
    def n_tokens(self) -> np.ndarray:
        return pc.list_value_length(self.tokens).to_numpy(zero_copy_only=False).astype(np.int64)

    def docs(self, idx: np.ndarray) -> list[np.ndarray]:
        """Token ids (int64) of the documents at `idx`, one array each."""
        sub = self.tokens.take(pa.array(idx, pa.int64()))
        flat = sub.flatten().to_numpy(zero_copy_only=False).astype(np.int64)
        lengths = pc.list_value_length(sub).to_numpy(zero_copy_only=False)
        return np.split(flat, np.cumsum(lengths)[:-1])

    @property
    def labelled(self) -> bool:
        return self.labels.null_count < len(self.labels)

    @property
    def is_junk(self) -> np.ndarray | None:
        """Junk per document; None for a natural (unlabelled) pool."""
        if not self.labelled:
            return None
        return np.asarray(pc.not_equal(self.labels, "clean").to_numpy(zero_copy_only=False))

    def __len__(self) -> int:
        return len(self.doc_ids)


def pool_dir(run: RunDir) -> Path:
    return run.root / "loop" / "pool"


def curate_config(cfg: LoopConfig, pool_file: Path) -> CurateConfig:
    rules = cfg.curate_rules
    quality = QualityConfig()
    if not rules:
        quality = QualityConfig.model_validate(
            {
                k: {"enabled": False}
                for k in ("gopher_quality", "gopher_repetition", "c4", "fineweb")
            }
        )
    return CurateConfig(
        inputs=[InputSpec(path=str(pool_file), id_field="id")],
        output=cfg.output,
        language=LanguageConfig(enabled=rules),
        quality=quality,
        dedup=cfg.dedup,
        tokenizer=TokenizerConfig(vocab_size=cfg.vocab_size),
        curriculum=CurriculumConfig(score="compression_ratio", n_stages=cfg.n_stages),
        ray=cfg.ray,
        quiet=cfg.quiet,
    )


def write_pool(cfg: LoopConfig, run: RunDir) -> Path:
    """Build the pool and write pool.jsonl + labels.parquet + heldout.json (once)."""
    from policies.env import load_pool

    out = pool_dir(run)
    pool_file = out / "pool.jsonl"
    if (out / "heldout.json").exists():
        return pool_file
    pool = load_pool(cfg.pool, cfg.agent.target, cfg.agent.target_fit_fraction)
    ids = pa.array([f"pool-{i:06d}" for i in range(len(pool))], pa.string())
    labels = pool.labels if pool.labels is not None else pa.nulls(len(pool), pa.string())
    with atomic_open(pool_file, "w") as f:
        for doc_id, text in zip(ids.to_pylist(), pool.texts.to_pylist(), strict=True):
            f.write(json.dumps({"id": doc_id, "text": text}) + "\n")
    write_parquet_atomic(
        pa.table({"doc_id": ids, "label": labels, "text": pool.texts}), out / "labels.parquet"
    )
    with atomic_open(out / "target.json", "w") as f:
        json.dump(pool.target, f)
    with atomic_open(out / "heldout.json", "w") as f:  # written last: the pool is complete
        json.dump(heldout_texts(pool.heldout, cfg.heldout, cfg.pool.seed), f)
    return pool_file


def heldout_texts(texts: list[str], cfg: LoopHeldoutConfig, seed: int) -> list[str]:
    """The held-out documents in the order whose first half is validation and second half test
    (`load_loop_pool`), each cut to `cfg.max_doc_chars` at a whitespace when that is set."""
    if cfg.max_doc_chars:
        texts = [clip_text(t, cfg.max_doc_chars) for t in texts]
    if cfg.split == "shuffled":
        order = np.random.default_rng([seed, 0x4E1D]).permutation(len(texts))
        texts = [texts[i] for i in order]
    return texts


def curate_pool(cfg: LoopConfig) -> RunDir:
    """Write the pool and curate it into the loop's RUN directory (resumes like any curate)."""
    from curator.executor import run_curate

    run = RunDir.at(cfg.output)
    pool_file = write_pool(cfg, run)
    run_curate(curate_config(cfg, pool_file))
    return run


def load_loop_pool(run: RunDir) -> LoopPool:
    """Kept documents of the curated run joined with the pool's text and labels by the pool's
    ids (pool-NNNNNN: pool.jsonl's `id`, which the run carries as `input_id`)."""
    import sentencepiece as spm

    from curator.trainer.data import shard_files

    kept = pa.concat_tables(
        pq.read_table(f, columns=["input_id", "tokens"]) for f in shard_files(run.root)
    )
    # sorted by pool id: the pool's order does not depend on the shard layout
    kept = kept.take(pc.sort_indices(kept, sort_keys=[("input_id", "ascending")]))
    doc_ids = kept["input_id"].combine_chunks()
    labels = pq.read_table(pool_dir(run) / "labels.parquet")
    pos = pc.index_in(doc_ids, value_set=labels["doc_id"])
    if pos.null_count:
        raise RuntimeError(f"{run.root}: kept documents missing from the pool's labels.parquet")
    meta = labels.take(pos)
    sp = spm.SentencePieceProcessor(model_file=str(run.tokenizer))
    heldout = json.loads((pool_dir(run) / "heldout.json").read_text())
    target_file = pool_dir(run) / "target.json"
    target = json.loads(target_file.read_text()) if target_file.exists() else []
    half = len(heldout) // 2

    def stream(texts: list[str]) -> np.ndarray:
        return np.concatenate(sp.EncodeAsNumpy(texts, add_eos=True)).astype(np.int64)

    return LoopPool(
        doc_ids=doc_ids,
        texts=meta["text"].combine_chunks(),
        tokens=kept["tokens"].combine_chunks(),
        labels=meta["label"].combine_chunks(),
        validation_texts=heldout[:half],
        validation=stream(heldout[:half]),
        target_texts=target,
        test=stream(heldout[half:]),
        vocab_size=sp.get_piece_size(),
        eos_id=int(sp.eos_id()),
        word_start=word_starts(sp),
    )


def word_starts(sp: Any) -> np.ndarray:
    """Per token id: does its piece begin a word? Sentencepiece marks a preceding space with
    \u2581; the run's tokenizer keeps newlines and tabs as pieces of their own (no \u2581 on
    the word after them), so a piece that starts with one begins a word too."""
    return np.array([
        sp.id_to_piece(i)[:1] in ("\u2581", "\n", "\t") or sp.is_control(i)
        for i in range(sp.get_piece_size())
    ])
