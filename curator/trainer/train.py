"""The training loop, top to bottom (nanoGPT style): data -> model -> resume -> steps -> summary.

Each step: lr from the schedule -> eval/checkpoint -> forward/backward over micro-batches ->
gradient sync (data parallel) -> clip -> AdamW -> log. The pieces live in engine.py, so the RL
agent can call them without this loop.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from pathlib import Path

import torch

from connectors.fs import write_text_atomic
from curator.trainer.checkpoint import latest_checkpoint, load_checkpoint, save_checkpoint
from curator.trainer.config import TrainConfig
from curator.trainer.data import TokenStream, load_corpus, split
from curator.trainer.engine import (
    broadcast_parameters,
    build_model,
    build_optimizer,
    evaluate,
    lr_at,
    param_digest,
    resolve_device,
    to_batch,
    train_step,
)

log = logging.getLogger(__name__)


def train(
    cfg: TrainConfig,
    rank: int = 0,
    world: int = 1,
    device: torch.device | None = None,
    report: Callable[[dict], None] | None = None,
) -> dict:
    """Train to the token budget; rank 0 evaluates, checkpoints and writes summary.json."""
    device = device or resolve_device(cfg.device)
    out = Path(cfg.out_dir)
    lead = rank == 0

    # data: the same deterministic split on every worker; batch i is a pure function of i
    corpus = load_corpus(cfg.data.path)
    train_docs, held_docs = split(corpus, cfg.data.heldout_frac, cfg.data.heldout_seed)
    seq_len = cfg.model.seq_len
    train_stream = TokenStream(train_docs.tokens, seq_len, cfg.data.order, cfg.seed)
    held_stream = TokenStream(held_docs.tokens, seq_len) if held_docs.n_docs else None

    # model + optimizer (fp32 master weights; autocast only wraps forward passes)
    model = build_model(cfg, corpus.vocab_size, device)
    optimizer = build_optimizer(model, cfg.optim, device)
    scaler = torch.amp.GradScaler("cuda") if cfg.precision == "fp16" else None
    total = cfg.total_steps(world)

    # resume: weights, AdamW moments and the step; the data position follows from the step
    start = 0
    ckpt = latest_checkpoint(out) if cfg.resume else None
    if ckpt is not None:
        start = load_checkpoint(ckpt, model, optimizer, scaler)
        log.info("resumed from %s at step %d", ckpt, start)
    if world > 1:
        broadcast_parameters(model)
    fwd = torch.compile(model) if cfg.compile else model

    losses: dict[int, float] = {}
    evals: dict[int, float] = {}

    def heldout(step: int) -> float | None:
        if held_stream is None or not lead:
            return None
        dense = step < cfg.dsa.dense_warmup_steps  # measure the attention we are training
        evals[step] = evaluate(
            fwd, held_stream, cfg.batch_size, cfg.eval_batches, cfg.precision, dense
        )
        return evals[step]

    t0, tokens = time.perf_counter(), 0
    for step in range(start, total):
        lr = lr_at(step, total, cfg.optim)
        # eval before the step, so step 0 records the untrained baseline
        if step % cfg.eval_interval == 0:
            heldout(step)
        every = cfg.checkpoint_interval
        if lead and every and step > start and step % every == 0:
            save_checkpoint(out, step, model, optimizer, scaler, keep=cfg.keep_checkpoints)

        # dense warm-up: full attention while the indexer learns to imitate it (KL)
        dense = step < cfg.dsa.dense_warmup_steps
        micro = [
            to_batch(
                train_stream.batch(step * cfg.grad_accum + m, cfg.batch_size, rank, world), device
            )
            for m in range(cfg.grad_accum)
        ]
        stats = train_step(
            fwd,
            optimizer,
            micro,
            lr=lr,
            dense=dense,
            precision=cfg.precision,
            grad_clip=cfg.optim.grad_clip,
            indexer_loss_weight=cfg.dsa.indexer_loss_weight,
            scaler=scaler,
            world=world,
        )
        losses[step] = stats.loss
        tokens += stats.tokens * world

        if step % cfg.log_interval == 0 or step == total - 1:
            rate = tokens / (time.perf_counter() - t0)
            line = {
                "step": step,
                "loss": stats.loss,
                "indexer_kl": stats.indexer_loss,
                "grad_norm": stats.grad_norm,
                "lr": lr,
                "dense": dense,
                "tokens_per_s": rate,
            }
            if lead:
                log.info(
                    "step %d/%d loss %.4f kl %.4f lr %.2e %.0f tok/s",
                    step,
                    total,
                    stats.loss,
                    stats.indexer_loss,
                    lr,
                    rate,
                )
            if report is not None:
                report(line)

    elapsed = time.perf_counter() - t0
    final_heldout = heldout(total)
    if lead and total > start:
        save_checkpoint(out, total, model, optimizer, scaler, keep=cfg.keep_checkpoints)
    summary = {
        "rank": rank,
        "world": world,
        "steps": total,
        "start_step": start,
        "tokens": tokens,
        "tokens_per_s": tokens / elapsed if elapsed > 0 else None,
        "n_params": model.num_params(),
        "final_loss": losses[max(losses)] if losses else None,
        "heldout_loss": final_heldout,
        "losses": losses,
        "heldout": evals,
        "param_digest": param_digest(model),
        "device": str(device),
    }
    if lead:
        write_text_atomic(json.dumps(summary, indent=1), out / "summary.json")
    return summary
