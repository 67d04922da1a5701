"""Rebuild the shipped default policy (policies/default/policy.safetensors) from data any
machine has, offline:

    .venv/bin/python -m policies.train_default [--steps 3000] [--output PATH]

1. clean text: curator.demo_corpus (pydoc_data topics + installed packages' descriptions),
   chunked into ~20-line documents;
2. a sentencepiece BPE tokenizer (2k pieces) trained on that clean text (embedded in the
   checkpoint, so features are computed the same way everywhere);
3. a pool at 50% noise whose junk is the labelled corruptions of policies/pool.py
   (token-shuffled, repeated lines, character soup, cipher "language", near-duplicates);
4. REINFORCE in the proxy environment (hashed-bigram LM learner) for `--steps` steps.
The result depends only on the installed packages (which set the demo text) and the seeds.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path
from typing import Any

from curator.config import TokenizerConfig
from curator.tokenizer_train import train_tokenizer
from policies import reinforce
from policies.checkpoint import DEFAULT_POLICY
from policies.config import AgentConfig, EnvConfig, PoolConfig
from policies.pool import build_pool, demo_sources


def build_tokenizer(texts: list[str], vocab_size: int = 2048) -> bytes:
    with tempfile.TemporaryDirectory(prefix="curator-policy-") as tmp:
        path = train_tokenizer(texts, TokenizerConfig(vocab_size=vocab_size, seed=0),
                               Path(tmp) / "tokenizer.model")
        return path.read_bytes()


def train_default(output: str | Path = DEFAULT_POLICY, steps: int = 3000, n_docs: int = 1200,
                  seed: int = 0) -> dict[str, Any]:
    sources = demo_sources()
    tokenizer = build_tokenizer(sources.clean)
    pool_cfg = PoolConfig(source="demo", n_docs=n_docs, noise=0.5, heldout_docs=60, seed=seed)
    pool = build_pool(sources, pool_cfg.n_docs, pool_cfg.noise, seed, pool_cfg.heldout_docs)
    cfg = AgentConfig(
        algorithm="reinforce", output=str(output), total_steps=steps, seed=seed,
        log_path=str(Path(tempfile.gettempdir()) / "curator-default-policy-metrics.jsonl"),
        env=EnvConfig(learner="proxy", docs_per_step=32, step_tokens=4096, episode_steps=16),
        pool=pool_cfg,
    )
    return reinforce.main(cfg, pool=pool, tokenizer=tokenizer)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="Rebuild the shipped default policy.")
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--output", default=str(DEFAULT_POLICY))
    ns = parser.parse_args()
    summary = train_default(ns.output, ns.steps)
    print({k: v for k, v in summary.items() if k != "episodic_returns"})
