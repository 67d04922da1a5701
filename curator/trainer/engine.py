"""The trainer as a library: build, one optimizer step, held-out loss, per-document loss.

`train.py` is the readable loop over these; the RL quality agent calls them directly, thousands
of times, on small budgets: `build_model` + `build_optimizer`, `train_steps` over its own
batches with `lr_at` fully decayed at the end of its budget, then `evaluate` /
`per_document_loss`.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from curator.trainer.config import OptimConfig, TrainConfig
from curator.trainer.data import TokenStream
from curator.trainer.dsa import use_flex
from curator.trainer.model import GPT

Batch = tuple[Tensor, Tensor]  # (x, y) int64 (B, T); y == -1 is ignored


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device=cuda but no CUDA device is visible; set device=cpu or auto")
    return torch.device(name)


def build_model(cfg: TrainConfig, vocab_size: int, device: torch.device | str = "cpu") -> GPT:
    """Seeded init (same on every worker); flex sparse path where it runs (dsa.kernel)."""
    device = torch.device(device)
    mcfg = cfg.model
    if mcfg.vocab_size is None:
        mcfg = mcfg.model_copy(update={"vocab_size": vocab_size})
    elif mcfg.vocab_size < vocab_size:
        raise ValueError(
            f"model.vocab_size={mcfg.vocab_size} < data vocabulary {vocab_size}; "
            "set model.vocab_size to null to take it from the data"
        )
    torch.manual_seed(cfg.seed)
    model = GPT(mcfg, cfg.dsa).to(device)
    model.set_flex(use_flex(cfg.dsa.kernel, cfg.dsa.block_size, device.type))
    return model


def build_optimizer(
    model: GPT, optim: OptimConfig, device: torch.device | str = "cpu"
) -> torch.optim.AdamW:
    """AdamW on fp32 master weights; decay matrices only (not norms, not the tied embedding)."""
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    decay = [p for n, p in named if p.dim() >= 2 and n != "embed.weight"]
    rest = [p for n, p in named if not (p.dim() >= 2 and n != "embed.weight")]
    groups = [
        {"params": decay, "weight_decay": optim.weight_decay},
        {"params": rest, "weight_decay": 0.0},
    ]
    return torch.optim.AdamW(
        groups,
        lr=optim.lr,
        betas=(optim.beta1, optim.beta2),
        eps=optim.eps,
        fused=torch.device(device).type == "cuda",
    )


def lr_at(step: int, total_steps: int, optim: OptimConfig) -> float:
    """Linear warmup, then cosine or WSD down to min_lr exactly at the last step of the budget."""
    warmup = int(optim.warmup_frac * total_steps)
    if step < warmup:
        return optim.lr * (step + 1) / warmup
    floor = optim.lr * optim.min_lr_ratio
    last = max(total_steps - 1, 1)
    if optim.schedule == "wsd":
        decay_start = max(warmup, total_steps - max(1, int(optim.decay_frac * total_steps)))
        if step < decay_start:
            return optim.lr
        frac = min(1.0, (step - decay_start) / max(1, last - decay_start))
        return optim.lr - (optim.lr - floor) * frac
    frac = min(1.0, (step - warmup) / max(1, last - warmup))
    return floor + 0.5 * (optim.lr - floor) * (1 + math.cos(math.pi * frac))


def autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    """bf16/fp16 autocast around forward passes; params and optimizer state stay fp32."""
    if precision == "fp32":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device.type, dtype=dtype)


@dataclass(frozen=True)
class StepStats:
    loss: float
    indexer_loss: float
    grad_norm: float
    lr: float
    tokens: int


def sync_gradients(model: torch.nn.Module, world: int) -> None:
    """All-reduce (mean) every gradient in one flat buffer: one collective per step."""
    import torch.distributed as dist

    grads = [p.grad for p in model.parameters() if p.grad is not None]
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat)
    flat /= world
    for g, part in zip(grads, flat.split([g.numel() for g in grads]), strict=True):
        g.copy_(part.view_as(g))


def broadcast_parameters(model: torch.nn.Module) -> None:
    """Rank 0's weights everywhere (seeded init should already agree; this makes it certain)."""
    import torch.distributed as dist

    for p in model.parameters():
        dist.broadcast(p.data, src=0)


def train_step(
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    micro_batches: Sequence[Batch],
    *,
    lr: float,
    dense: bool,
    precision: str = "fp32",
    grad_clip: float = 1.0,
    indexer_loss_weight: float = 1.0,
    scaler: torch.amp.GradScaler | None = None,
    world: int = 1,
) -> StepStats:
    """One optimizer step over `micro_batches` (gradient accumulation), with clip and AdamW.

    The LM loss trains the model; the indexer KL trains only the indexer (detached input), so
    one backward of their sum keeps both isolated. Grad norms are clipped separately per group.
    """
    for group in optimizer.param_groups:
        group["lr"] = lr
    device = micro_batches[0][0].device
    n = len(micro_batches)
    lm_sum = kl_sum = 0.0
    for x, y in micro_batches:
        with autocast(device, precision):
            out = model(x, y, dense=dense)
        total = out.loss / n
        if out.indexer_loss is not None:
            total = total + indexer_loss_weight * out.indexer_loss / n
            kl_sum += out.indexer_loss.item() / n
        (scaler.scale(total) if scaler is not None else total).backward()
        lm_sum += out.loss.item() / n
    if world > 1:
        sync_gradients(model, world)
    if scaler is not None:
        scaler.unscale_(optimizer)
    base = model._orig_mod if hasattr(model, "_orig_mod") else model
    params = [p for p in base.model_parameters() if p.grad is not None]
    clip = grad_clip if grad_clip > 0 else float("inf")
    grad_norm = torch.nn.utils.clip_grad_norm_(params, clip).item()
    indexer = [p for p in base.indexer_parameters() if p.grad is not None]
    if indexer:
        torch.nn.utils.clip_grad_norm_(indexer, clip)
    if scaler is not None:
        scaler.step(optimizer)
        scaler.update()
    else:
        optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    tokens = sum(int(x.numel()) for x, _ in micro_batches)
    return StepStats(lm_sum, kl_sum, grad_norm, lr, tokens)


def train_steps(
    model: GPT,
    optimizer: torch.optim.Optimizer,
    batches: Iterable[Sequence[Batch]],
    cfg: TrainConfig,
    total_steps: int,
    start_step: int = 0,
    scaler: torch.amp.GradScaler | None = None,
    world: int = 1,
    lr_scale: Sequence[float] | None = None,
) -> list[StepStats]:
    """Run one step per item of `batches` on the cfg schedule (decayed at `total_steps`);
    `lr_scale[i]` multiplies the i-th step's LR (e.g. a loop trial's anneal to zero)."""
    stats = []
    for i, micro in enumerate(batches):
        step = start_step + i
        scale = 1.0 if lr_scale is None else float(lr_scale[i])
        stats.append(
            train_step(
                model,
                optimizer,
                micro,
                lr=lr_at(step, total_steps, cfg.optim) * scale,
                dense=step < cfg.dsa.dense_warmup_steps,
                precision=cfg.precision,
                grad_clip=cfg.optim.grad_clip,
                indexer_loss_weight=cfg.dsa.indexer_loss_weight,
                scaler=scaler,
                world=world,
            )
        )
    return stats


def to_batch(xy: tuple[np.ndarray, np.ndarray], device: torch.device) -> Batch:
    x, y = xy
    return (
        torch.from_numpy(x).to(device, non_blocking=True),
        torch.from_numpy(y).to(device, non_blocking=True),
    )


@torch.no_grad()
def evaluate(
    model: torch.nn.Module,
    heldout: TokenStream,
    batch_size: int,
    max_batches: int,
    precision: str = "fp32",
    dense: bool = False,
) -> float:
    """Mean next-token loss (nats) over the first windows of the held-out stream."""
    device = next(model.parameters()).device
    n = min(max_batches, -(-heldout.n_windows // batch_size))
    was_training = model.training
    model.eval()
    losses = []
    for i in range(n):
        x, y = to_batch(heldout.batch(i, batch_size), device)
        with autocast(device, precision):
            losses.append(model(x, y, dense=dense).loss.float())
    model.train(was_training)
    return float(torch.stack(losses).mean())


@torch.no_grad()
def per_document_loss(
    model: GPT,
    docs: Sequence[np.ndarray],
    batch_size: int = 32,
    precision: str = "fp32",
    dense: bool = False,
) -> np.ndarray:
    """Mean next-token loss (nats/token) of each document on its own (no cross-doc context).

    Long documents are cut into seq_len windows (each window's first token predicted from no
    context), windows are sorted by length and padded per batch, and window sums are added back
    per document with bincount. Documents with fewer than 2 tokens get NaN.
    """
    device = next(model.parameters()).device
    T = model.cfg.seq_len
    lengths = np.fromiter((len(d) for d in docs), dtype=np.int64, count=len(docs))
    flat = (
        np.concatenate([np.asarray(d, dtype=np.int64) for d in docs])
        if len(docs)
        else np.zeros(0, np.int64)
    )
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
    n_win = np.maximum(0, -(-(lengths - 1) // T))
    doc = np.repeat(np.arange(len(docs)), n_win)
    first = np.repeat(np.cumsum(n_win) - n_win, n_win)
    begin = (np.arange(len(doc)) - first) * T  # window start within its document
    w_len = np.minimum(T + 1, lengths[doc] - begin)
    order = np.argsort(-w_len, kind="stable")
    sums = np.zeros(len(doc))
    was_training = model.training
    model.eval()
    for i in range(0, len(order), batch_size):
        w = order[i : i + batch_size]
        # CUDA compiles for one shape: pad to seq_len; on CPU only to the batch's longest window
        width = T + 1 if device.type == "cuda" else int(w_len[w].max())
        span = np.arange(width)
        valid = span[None, :] < w_len[w, None]
        idx = np.where(valid, starts[doc[w], None] + begin[w, None] + span, 0)
        tok = np.where(valid, flat[idx], 0)
        tgt = np.where(valid[:, 1:], tok[:, 1:], -1)
        x, y = to_batch((tok[:, :-1], tgt), device)
        with autocast(device, precision):
            loss = model(x, y, dense=dense, reduction="none").loss
        sums[w] = loss.float().sum(-1).cpu().numpy()
    model.train(was_training)
    total = np.bincount(doc, weights=sums, minlength=len(docs))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(lengths >= 2, total / (lengths - 1), np.nan)


def param_digest(model: torch.nn.Module) -> str:
    """sha256 of all parameters' bytes: equal digests = identical weights (DP sync check)."""
    h = hashlib.sha256()
    for name, p in sorted(model.state_dict().items()):
        h.update(name.encode())
        h.update(p.detach().float().cpu().numpy().tobytes())
    return h.hexdigest()
