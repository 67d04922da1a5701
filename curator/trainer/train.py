"""The training loop, top to bottom (nanoGPT style): data -> model -> resume -> steps -> summary.

Each step: eval/checkpoint -> `engine.scheduled_step` (lr from the schedule, forward/backward
over micro-batches, DDP gradient all-reduce with the last one, clip, AdamW) -> log. The pieces
live in engine.py and fit.py, so the RL agent and the closed loop train through the same code.

The host waits for the device only where a number is needed: at log steps (one transfer for
the losses of every step since the last one), evals and checkpoints.

Progress goes to this module's logger only (`step N/M: train X, val Y, tok/s Z, ETA mm:ss`):
library callers (the closed loop, tests, Ray Train workers) stay silent unless they configure
logging; `curator train` shows it on the console (curator/trainer/cli.py, `--quiet` to silence).
The end of a run writes OUT/summary.json and OUT/loss.png (train and held-out loss).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from pathlib import Path

import torch

from connectors.fs import atomic_open, write_text_atomic
from curator.trainer.checkpoint import latest_checkpoint, load_checkpoint, save_checkpoint
from curator.trainer.config import TrainConfig
from curator.trainer.data import TokenStream, load_corpus, split
from curator.trainer.engine import (
    build_model,
    build_optimizer,
    check_precision,
    evaluate,
    param_digest,
    resolve_device,
    scheduled_step,
)
from curator.trainer.fit import step_batch
from curator.trainer.wrap import wrap_model

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
    check_precision(cfg.precision, device)  # fp16 without CUDA: refused before any work
    out = Path(cfg.out_dir)
    lead = rank == 0

    # data: memory-mapped (a RUN's shards converted once by rank 0), the same deterministic
    # split on every worker, streams that are views of it; batch i is a pure function of i
    cache = cfg.data.cache_dir or out / "token_cache"
    corpus = load_corpus(cfg.data.path, cache, rank, world)
    train_docs, held_docs = split(corpus, cfg.data.heldout_frac, cfg.data.heldout_seed)
    seq_len = cfg.model.seq_len
    train_stream = TokenStream(train_docs.runs(), seq_len, cfg.data.order, cfg.seed)
    held_stream = TokenStream(held_docs.runs(), seq_len) if held_docs.n_docs else None

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
    # compiled and/or DDP (world > 1); `model` itself is what checkpoints and digests see
    run = wrap_model(model, cfg, device, world)

    losses: dict[int, float] = {}
    evals: dict[int, float] = {}
    unread: dict[int, torch.Tensor] = {}  # steps' losses still on the device

    def heldout(step: int) -> float | None:
        if held_stream is None or not lead:
            return None
        dense = step < cfg.dsa.dense_warmup_steps  # measure the attention we are training
        evals[step] = evaluate(
            run.eval, held_stream, cfg.batch_size, cfg.eval_batches, cfg.precision, dense
        )
        return evals[step]

    t0, tokens = time.perf_counter(), 0
    for step in range(start, total):
        # eval before the step, so step 0 records the untrained baseline
        if step % cfg.eval_interval == 0:
            heldout(step)
        every = cfg.checkpoint_interval
        if lead and every and step > start and step % every == 0:
            save_checkpoint(out, step, model, optimizer, scaler, keep=cfg.keep_checkpoints)

        micro = step_batch(train_stream, step, cfg, device, rank, world)
        stats = scheduled_step(run.train, optimizer, micro, cfg, step, total, scaler=scaler)
        unread[step] = stats.loss_t
        tokens += stats.tokens * world

        # log: every log_interval steps, every eval step (so each val shows) and the last step
        if step % cfg.log_interval == 0 or step in evals or step == total - 1:
            # the one wait for the device: every unread loss and this step's numbers at once
            *values, kl, norm = torch.stack([*unread.values(), stats.indexer_loss_t,
                                             stats.grad_norm_t]).tolist()
            losses.update(zip(unread, values, strict=True))
            unread.clear()
            spent = time.perf_counter() - t0
            line = {
                "step": step,
                "loss": losses[step],
                "heldout_loss": evals.get(step),  # of the weights this step's loss saw
                "indexer_kl": kl,
                "grad_norm": norm,
                "lr": stats.lr,
                "dense": step < cfg.dsa.dense_warmup_steps,
                "tokens_per_s": tokens / spent,
                # the mean step time so far, evals and checkpoints included, for the steps left
                "eta_s": spent / (step + 1 - start) * (total - step - 1),
            }
            if lead:
                log.info(progress_line(line, total))
            if report is not None:
                report(line)

    elapsed = time.perf_counter() - t0
    final_heldout = heldout(total)
    if lead and final_heldout is not None:
        rate = tokens / elapsed if elapsed > 0 else 0.0
        last = {"step": total, "heldout_loss": final_heldout, "tokens_per_s": rate, "eta_s": 0.0}
        log.info(progress_line(last, total))
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
        if losses:
            from curator.plots import loss_plot

            title = f"{out.name}: train and held-out loss"
            png = loss_plot(losses, evals, cfg.tokens_per_step(world), title)
            with atomic_open(out / "loss.png") as f:
                f.write(png)
            log.info("wrote %s and %s", out / "summary.json", out / "loss.png")
    return summary


def clock(seconds: float) -> str:
    """mm:ss, or h:mm:ss from an hour on."""
    m, s = divmod(int(round(seconds)), 60)
    h, m = divmod(m, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m:02d}:{s:02d}"


def progress_line(line: dict, total: int) -> str:
    """nanoGPT-style console line of one log record:
    `step N/M: train X, val Y, tok/s Z, ETA mm:ss | lr L, indexer kl K` (val at eval steps)."""
    parts = []
    if line.get("loss") is not None:
        parts.append(f"train {line['loss']:.4f}")
    if line.get("heldout_loss") is not None:
        parts.append(f"val {line['heldout_loss']:.4f}")
    parts += [f"tok/s {line['tokens_per_s']:.0f}", f"ETA {clock(line['eta_s'])}"]
    text = f"step {line['step']}/{total}: " + ", ".join(parts)
    if "lr" in line:
        text += f" | lr {line['lr']:.2e}, indexer kl {line['indexer_kl']:.4f}"
    return text
