"""Ray Train data parallel for real: 2 CPU workers, gloo, DDP-synchronized gradients."""

from __future__ import annotations

import math
from pathlib import Path

import torch
from safetensors.torch import load_file
from tiny_data import tiny_config

from curator.trainer.checkpoint import latest_checkpoint
from curator.trainer.config import TrainConfig
from curator.trainer.ray_train import train_distributed
from curator.trainer.train import train


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
    # rank 0 converted the RUN's shards once; both ranks memory-mapped that one file
    assert len(list((tmp_path / "out" / "token_cache").glob("shards-*"))) == 1


def test_two_workers_equal_one_worker_with_twice_the_batch(
    ray_cluster, run_dir: Path, tmp_path: Path
) -> None:
    """2 workers x batch 2 read exactly the rows 1 worker x batch 4 reads (and, with
    accumulation 2, per micro-batch too), and DDP averages what one big batch averages: the
    same weights after 4 steps, to fp32 rounding. Dense fp32 model; AdamW eps 1e-5 for the
    reason test_engine's accumulation test gives (near-zero gradients amplify rounding)."""
    common = {"grad_accum": 2, "dsa": {"enabled": False}, "eval_interval": 100,
              "max_tokens": 4 * 4 * 2 * 128, "optim": {"lr": 3e-3, "warmup_frac": 0.1,
                                                       "eps": 1e-5}}
    two = TrainConfig.model_validate(
        tiny_config(run_dir, tmp_path / "two", workers=2, batch_size=2, **common)
    )
    one = TrainConfig.model_validate(tiny_config(run_dir, tmp_path / "one", batch_size=4,
                                                 **common))
    assert two.total_steps(2) == one.total_steps(1) == 4
    dist = train_distributed(two)
    single = train(one)
    weights = [load_file(str(latest_checkpoint(tmp_path / d) / "model.safetensors"))
               for d in ("two", "one")]
    for name, a in weights[0].items():
        torch.testing.assert_close(a, weights[1][name], rtol=1e-5, atol=1e-6, msg=name)
    # rank 0's losses are of its half batch; the mean of both ranks' is the big batch's
    halves = [w["losses"] for w in dist["workers"]]
    for step, loss in single["losses"].items():
        assert math.isclose((halves[0][str(step)] + halves[1][str(step)]) / 2, loss,
                            rel_tol=1e-5)
