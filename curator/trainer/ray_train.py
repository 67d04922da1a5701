"""Data-parallel training through Ray Train's TorchTrainer (gloo on CPU, nccl on GPU).

Ray Train starts `workers` processes and the torch.distributed process group; each worker runs
the ordinary `train()` loop with its rank, reading its own disjoint batches (batch i of rank r
is a pure function of i, r) from one memory-mapped token file (rank 0 converts a RUN's shards
once), and DistributedDataParallel averages gradients, once per optimizer step.
Every worker writes `OUT/worker_<rank>.json` (its summary, with a weight digest), so callers can
check that all workers ran and ended with identical weights.
"""

from __future__ import annotations

import json
from pathlib import Path

from curator.trainer.config import TrainConfig


def _worker_loop(config: dict) -> None:
    # heavy imports inside the worker process (house style 10)
    import ray.train
    import ray.train.torch
    import torch

    from connectors.fs import write_text_atomic
    from curator.trainer.train import train

    cfg = TrainConfig.model_validate(config["cfg"])
    ctx = ray.train.get_context()
    rank, world = ctx.get_world_rank(), ctx.get_world_size()
    device = ray.train.torch.get_device() if cfg.use_gpu else torch.device("cpu")
    summary = train(cfg, rank=rank, world=world, device=device)
    write_text_atomic(json.dumps(summary), Path(cfg.out_dir) / f"worker_{rank}.json")
    keep = ("rank", "world", "steps", "final_loss", "heldout_loss", "tokens_per_s", "param_digest")
    ray.train.report({k: summary[k] for k in keep})


def train_distributed(cfg: TrainConfig) -> dict:
    """Run `cfg.workers` data-parallel workers on the Ray cluster (RAY_ADDRESS or local).

    Returns rank 0's summary plus `workers`: every worker's summary.
    """
    from ray.train import RunConfig, ScalingConfig
    from ray.train.torch import TorchConfig, TorchTrainer

    from curator.config import RayConfig
    from curator.ray_runtime import ensure_ray

    if cfg.workers < 1:
        raise ValueError("train_distributed needs workers >= 1; use train() for in-process runs")
    if cfg.precision == "fp16" and not cfg.use_gpu:
        # the workers would refuse it too (engine.check_precision), after Ray started
        raise ValueError(
            "precision=fp16 needs CUDA (GradScaler) but use_gpu=false puts the workers on CPU; "
            "set precision=bf16 or precision=fp32, or use_gpu=true"
        )
    ensure_ray(RayConfig())  # RAY_ADDRESS, else an embedded cluster on free ports
    out = Path(cfg.out_dir).resolve()
    cfg = cfg.model_copy(update={"out_dir": str(out)})
    trainer = TorchTrainer(
        _worker_loop,
        train_loop_config={"cfg": cfg.model_dump(mode="json")},
        torch_config=TorchConfig(backend="nccl" if cfg.use_gpu else "gloo"),
        scaling_config=ScalingConfig(
            num_workers=cfg.workers,
            use_gpu=cfg.use_gpu,
            resources_per_worker=None if cfg.use_gpu else {"CPU": 1},
        ),
        run_config=RunConfig(name="train", storage_path=str(out / "ray")),
    )
    result = trainer.fit()
    if result.error is not None:
        raise result.error
    workers = [json.loads((out / f"worker_{r}.json").read_text()) for r in range(cfg.workers)]
    return {**workers[0], "workers": workers}
