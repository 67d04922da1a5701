"""Tiny real-text data for trainer tests: a RUN directory (sentencepiece + SHARD_SCHEMA shards).

Text is Python's own help topics (`pydoc_data.topics`), present on every machine with Python.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from curator.schema import SHARD_SCHEMA

VOCAB = 512


def help_paragraphs() -> list[str]:
    from pydoc_data.topics import topics

    paras = [p.strip() for key in sorted(topics) for p in topics[key].split("\n\n")]
    return [p for p in paras if len(p) > 40]


def tiny_run(root: Path, vocab: int = VOCAB) -> Path:
    """RUN/tokenizer.model + RUN/shards/stage={0,1}/part-*.parquet, tokens with EOS appended."""
    import sentencepiece as spm

    root.mkdir(parents=True, exist_ok=True)
    texts = help_paragraphs()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(texts),
        model_prefix=str(root / "tokenizer"),
        vocab_size=vocab,
        model_type="bpe",
        eos_id=1,
        bos_id=-1,
        pad_id=-1,
        unk_id=0,
        num_threads=1,
        max_sentence_length=100000,
        minloglevel=2,
    )
    (root / "tokenizer.vocab").unlink()
    sp = spm.SentencePieceProcessor(model_file=str(root / "tokenizer.model"))
    ids = sp.encode(texts)
    eos = sp.eos_id()
    tokens = [t + [eos] for t in ids]
    n = len(texts)
    table = pa.table(
        {
            "doc_id": [f"help-{i:05d}" for i in range(n)],
            "input_id": pa.nulls(n, pa.string()),
            "source": ["pydoc_data.topics"] * n,
            "tokens": pa.array(tokens, pa.list_(pa.uint32())),
            "n_tokens": pa.array([len(t) for t in tokens], pa.int64()),
            "quality_score": pa.nulls(n, pa.float32()),
            "difficulty": pa.nulls(n, pa.float32()),
            "stage": pa.array(np.arange(n) * 2 // n, pa.int32()),
            "sample_weight": pa.array(np.ones(n, np.int32)),
        },
        schema=SHARD_SCHEMA,
    )
    # stage 1 written first and with more parts, so reading order is really exercised
    cut = n // 2
    parts = {
        1: [table.slice(cut, (n - cut) // 2), table.slice(cut + (n - cut) // 2)],
        0: [table.slice(0, cut // 2), table.slice(cut // 2, cut - cut // 2)],
    }
    for stage, chunks in parts.items():
        d = root / "shards" / f"stage={stage}"
        d.mkdir(parents=True)
        for j, chunk in enumerate(chunks):
            pq.write_table(chunk, d / f"part-{j:05d}.parquet")
    return root


def tiny_config(data: str | Path, out: str | Path, **overrides: object) -> dict:
    """~0.2M-param CPU config as a dict (apply overrides on top; nested keys with dicts)."""
    cfg: dict = {
        "data": {"path": str(data), "heldout_frac": 0.05},
        "model": {"seq_len": 128, "n_layer": 2, "n_head": 4, "d_model": 64},
        "dsa": {
            "block_size": 16,
            "top_k_blocks": 2,
            "window_blocks": 1,
            "sink_blocks": 1,
            "indexer_heads": 2,
            "indexer_dim": 16,
            "dense_warmup_steps": 3,
        },
        "optim": {"lr": 3e-3, "warmup_frac": 0.1},
        "out_dir": str(out),
        "max_tokens": 8 * 4 * 128,
        "batch_size": 4,
        "precision": "fp32",
        "device": "cpu",
        "eval_interval": 4,
        "eval_batches": 2,
        "log_interval": 1,
    }
    for key, value in overrides.items():
        if isinstance(value, dict):
            cfg[key] = {**cfg.get(key, {}), **value}
        else:
            cfg[key] = value
    return cfg
