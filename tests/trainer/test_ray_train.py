"""Ray Train data parallel for real: 2 CPU workers, gloo, synchronized gradients."""

from __future__ import annotations

import math
from pathlib import Path

from tiny_data import tiny_config

from curator.trainer.config import TrainConfig
from curator.trainer.ray_train import train_distributed


def test_two_gloo_workers_train_in_sync(ray_cluster, run_dir: Path, tmp_path: Path) -> None:
    cfg = TrainConfig.model_validate(
        tiny_config(
            run_dir, tmp_path / "out", workers=2, max_tokens=4 * 2 * 4 * 128, eval_interval=100
        )
    )
    summary = train_distributed(cfg)
    workers = summary["workers"]
    assert sorted(w["rank"] for w in workers) == [0, 1]
    assert all(w["world"] == 2 and w["steps"] == 4 for w in workers)
    assert all(math.isfinite(w["final_loss"]) for w in workers)
    # each rank saw different batches, so equal weights after AdamW steps need synced gradients
    assert workers[0]["losses"] != workers[1]["losses"]
    assert workers[0]["param_digest"] == workers[1]["param_digest"]
    assert math.isfinite(summary["heldout_loss"])
    assert (tmp_path / "out" / "summary.json").exists()
