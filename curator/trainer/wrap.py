"""How the trainer runs a model: torch.compile for fixed shapes, DistributedDataParallel for data
parallel, and the way back to the plain GPT under either wrapper (`unwrap`)."""

from __future__ import annotations

from typing import NamedTuple

import torch

from curator.trainer.config import TrainConfig
from curator.trainer.model import GPT


def unwrap(model: torch.nn.Module) -> GPT:
    """The plain module under torch.compile (`_orig_mod`) and DDP (`.module`), in any order."""
    from torch.nn.parallel import DistributedDataParallel

    while True:
        if hasattr(model, "_orig_mod"):
            model = model._orig_mod
        elif isinstance(model, DistributedDataParallel):
            model = model.module
        else:
            return model  # type: ignore[return-value]


def is_compiled(model: torch.nn.Module) -> bool:
    """Whether torch.compile wraps `model` (directly, or the module under DDP)."""
    from torch.nn.parallel import DistributedDataParallel

    while True:
        if hasattr(model, "_orig_mod"):
            return True
        if not isinstance(model, DistributedDataParallel):
            return False
        model = model.module


def ddp_of(model: torch.nn.Module) -> torch.nn.parallel.DistributedDataParallel | None:
    """The DDP module in `model` (under torch.compile or bare), or None without DDP."""
    from torch.nn.parallel import DistributedDataParallel

    while not isinstance(model, DistributedDataParallel):
        if not hasattr(model, "_orig_mod"):
            return None
        model = model._orig_mod
    return model


def needs_find_unused(cfg: TrainConfig) -> bool:
    """Whether some parameter can end a backward without a gradient, which DDP must be told.

    The indexer learns only from its KL, and `DSAttention.indexer_kl` is a constant zero (no
    graph) when fewer than two whole key blocks fit: always in dense steps when
    seq_len < 2 * block_size (sparse steps pad up to whole blocks, so they may still reach two).
    Then DDP must look for unused parameters after every backward (a graph walk, so only in
    that case); otherwise the indexer's gradient buckets never become ready and DDP's next
    forward fails ("Expected to have finished reduction in the prior iteration"). Every other
    parameter is used by every forward (a parameter made conditional later must join here)."""
    return cfg.dsa.enabled and cfg.model.seq_len < 2 * cfg.dsa.block_size


class Runner(NamedTuple):
    """How one model runs: `train` for optimizer steps (compiled and/or DDP), `eval` for
    rank-local evaluation (compiled, never DDP: no collectives while one rank evaluates)."""

    train: torch.nn.Module
    eval: torch.nn.Module


def wrap_model(model: GPT, cfg: TrainConfig, device: torch.device, world: int = 1) -> Runner:
    """torch.compile (cfg.compile) and, when world > 1, DistributedDataParallel over the
    process group Ray Train started (gloo on CPU, nccl on GPU).

    DDP broadcasts rank 0's weights when it wraps (seeded init agrees already; a resumed
    checkpoint too) and all-reduces gradients in buckets while backward still runs; the step
    skips that for all but the last micro-batch (`no_sync`), so accumulation communicates once
    per optimizer step. The compiled DDP module (compile outside) lets dynamo split graphs at
    bucket boundaries to keep that overlap; evaluation compiles the bare model. The optimizer
    and checkpoints keep using `model` itself: DDP shares its parameters."""
    if world <= 1:
        fwd = compile_static(model) if cfg.compile else model
        return Runner(fwd, fwd)
    ddp = data_parallel(model, cfg, device)
    if not cfg.compile:
        return Runner(ddp, model)
    return Runner(compile_static(ddp), compile_static(model))


def compile_static(module: torch.nn.Module) -> torch.nn.Module:
    """torch.compile for fixed shapes: every call the trainer makes has one (training windows,
    evaluate's batches, per_document_loss padded to (batch, seq_len)). dynamic=False keeps
    the fast static graphs and makes a shape change a visible recompile (tests/trainer/
    test_compile.py forbids any after warm-up) instead of a silent switch to a dynamic graph."""
    return torch.compile(module, dynamic=False)


def data_parallel(
    model: GPT, cfg: TrainConfig, device: torch.device
) -> torch.nn.parallel.DistributedDataParallel:
    """`model` under DDP in the default process group (which must be initialized)."""
    from torch.nn.parallel import DistributedDataParallel

    cuda = device.type == "cuda"
    return DistributedDataParallel(
        model,
        device_ids=[device.index if device.index is not None else torch.cuda.current_device()]
        if cuda
        else None,
        find_unused_parameters=needs_find_unused(cfg),
        broadcast_buffers=False,  # the model has no buffers that training changes
    )
