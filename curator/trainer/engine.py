"""The trainer as a library: build, one optimizer step, held-out loss, per-document loss.

`train.py` is the readable loop over these; the RL quality agent calls them directly, thousands
of times, on small budgets: `build_model` + `build_optimizer`, `train_steps` over its own
batches with `lr_at` fully decayed at the end of its budget, then `evaluate` /
`per_document_loss`. Every optimizer step of every caller goes through `scheduled_step`.

No step waits for the device: losses, the indexer KL and the grad norm stay device tensors in
`StepStats` until someone reads them as floats, so a CUDA run queues step after step while the
host prepares the next batches. Data parallel is DistributedDataParallel and compile is
torch.compile for fixed shapes, both applied by `wrap.wrap_model`.
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
from curator.trainer.wrap import ddp_of, is_compiled, unwrap

Batch = tuple[Tensor, Tensor]  # (x, y) int64 (B, T); y == -1 is ignored


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device=cuda but no CUDA device is visible; set device=cpu or auto")
    return torch.device(name)


def check_precision(precision: str, device: torch.device) -> None:
    """fp16 needs CUDA: its GradScaler is disabled elsewhere, so fp16 on CPU would silently
    train without loss scaling (underflowing gradients). Refused before any work."""
    if precision == "fp16" and torch.device(device).type != "cuda":
        raise ValueError(
            f"precision=fp16 needs a CUDA device (GradScaler) but training runs on "
            f"{torch.device(device)} (no CUDA device is visible, or device=cpu); "
            "set precision=bf16 or precision=fp32"
        )


def build_model(cfg: TrainConfig, vocab_size: int, device: torch.device | str = "cpu") -> GPT:
    """Seeded init (same on every worker); flex sparse path where it runs (dsa.kernel)."""
    device = torch.device(device)
    check_precision(cfg.precision, device)
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
    """One optimizer step. Loss, KL and grad norm are 0-dim fp32 device tensors: reading one
    as a float waits for the device, so a loop reads them only when it logs (`loss`,
    `floats()`, or `step_floats` for many steps in one transfer)."""

    loss_t: Tensor  # mean LM loss over the step's micro-batches
    indexer_loss_t: Tensor  # mean indexer KL (0 without an indexer)
    grad_norm_t: Tensor  # model (not indexer) grad norm before clipping
    lr: float
    tokens: int

    @property
    def loss(self) -> float:
        return float(self.loss_t)

    @property
    def indexer_loss(self) -> float:
        return float(self.indexer_loss_t)

    @property
    def grad_norm(self) -> float:
        return float(self.grad_norm_t)

    def floats(self) -> dict[str, float]:
        """All numbers of the step as Python floats, in one device-to-host transfer."""
        loss, kl, norm = torch.stack([self.loss_t, self.indexer_loss_t, self.grad_norm_t]).tolist()
        return {"loss": loss, "indexer_loss": kl, "grad_norm": norm, "lr": self.lr,
                "tokens": self.tokens}


def step_floats(stats: Sequence[StepStats], name: str = "loss") -> list[float]:
    """`name` ("loss", "indexer_loss", "grad_norm") of every step, in one transfer."""
    if not stats:
        return []
    return torch.stack([getattr(s, f"{name}_t") for s in stats]).tolist()


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
) -> StepStats:
    """One optimizer step over `micro_batches` (gradient accumulation), with clip and AdamW.

    The LM loss trains the model; the indexer KL trains only the indexer (detached input), so
    one backward of their sum keeps both isolated. Grad norms are clipped separately per group.
    A DDP-wrapped `model` averages gradients over ranks once, in the last micro-batch's
    backward. Nothing here waits for the device (fp16's GradScaler aside: its step checks for
    inf on the host).
    """
    for group in optimizer.param_groups:
        group["lr"] = lr
    device = micro_batches[0][0].device
    n = len(micro_batches)
    ddp = ddp_of(model)
    lm = torch.zeros((), device=device)
    kl = torch.zeros((), device=device)
    for i, (x, y) in enumerate(micro_batches):
        # DDP: only the last backward all-reduces (the others accumulate locally)
        sync = ddp is None or i == n - 1
        with contextlib.nullcontext() if sync else ddp.no_sync():
            with autocast(device, precision):
                out = model(x, y, dense=dense)
            total = out.loss / n
            if out.indexer_loss is not None:
                total = total + indexer_loss_weight * out.indexer_loss / n
                kl += out.indexer_loss.detach().float() / n
            (scaler.scale(total) if scaler is not None else total).backward()
        lm += out.loss.detach().float() / n
    if scaler is not None:
        scaler.unscale_(optimizer)
    base = unwrap(model)
    params = [p for p in base.model_parameters() if p.grad is not None]
    clip = grad_clip if grad_clip > 0 else float("inf")
    grad_norm = torch.nn.utils.clip_grad_norm_(params, clip).detach()
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
    return StepStats(lm, kl, grad_norm.float(), lr, tokens)


def scheduled_step(
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    micro_batches: Sequence[Batch],
    cfg: TrainConfig,
    step: int,
    total_steps: int,
    *,
    scaler: torch.amp.GradScaler | None = None,
    lr_scale: float = 1.0,
) -> StepStats:
    """Optimizer step number `step` of a run fully decayed at `total_steps`, as `cfg` says:
    its LR (times `lr_scale`), dense attention during the warm-up, precision, clip, KL weight.
    The one place a step's settings come from, for train.py and every library caller."""
    return train_step(
        model,
        optimizer,
        micro_batches,
        lr=lr_at(step, total_steps, cfg.optim) * lr_scale,
        # dense warm-up: full attention while the indexer learns to imitate it (KL)
        dense=step < cfg.dsa.dense_warmup_steps,
        precision=cfg.precision,
        grad_clip=cfg.optim.grad_clip,
        indexer_loss_weight=cfg.dsa.indexer_loss_weight,
        scaler=scaler,
    )


def train_steps(
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    batches: Iterable[Sequence[Batch]],
    cfg: TrainConfig,
    total_steps: int,
    start_step: int = 0,
    scaler: torch.amp.GradScaler | None = None,
    lr_scale: Sequence[float] | None = None,
) -> list[StepStats]:
    """Run one step per item of `batches` on the cfg schedule (decayed at `total_steps`);
    `lr_scale[i]` multiplies the i-th step's LR (e.g. a loop trial's anneal to zero)."""
    return [
        scheduled_step(
            model, optimizer, micro, cfg, start_step + i, total_steps, scaler=scaler,
            lr_scale=1.0 if lr_scale is None else float(lr_scale[i]),
        )
        for i, micro in enumerate(batches)
    ]


def to_batch(xy: tuple[np.ndarray, np.ndarray], device: torch.device) -> Batch:
    """numpy (x, y) on `device`. To CUDA through pinned memory: a copy from pageable memory
    would first wait for the stream to drain, a host sync per micro-batch."""
    x, y = (torch.from_numpy(a) for a in xy)
    if device.type == "cuda":
        x, y = x.pin_memory(), y.pin_memory()
    return x.to(device, non_blocking=True), y.to(device, non_blocking=True)


@torch.no_grad()
def evaluate(
    model: torch.nn.Module,
    heldout: TokenStream,
    batch_size: int,
    max_batches: int,
    precision: str = "fp32",
    dense: bool = False,
) -> float:
    """Mean next-token loss (nats) over the first windows of the held-out stream.

    Every batch has the same (batch_size, seq_len) shape (the stream wraps around past its
    end), so a compiled model never sees a new shape."""
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

    On CUDA (flex attention compiles for one shape) and for a torch.compile'd model every
    batch is padded to (batch_size, seq_len): padding rows and columns have target -1 and add 0.
    """
    device = next(model.parameters()).device
    T = unwrap(model).cfg.seq_len
    fixed = device.type == "cuda" or is_compiled(model)
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
        # a fixed shape where it compiles; elsewhere only the batch's longest window
        width = T + 1 if fixed else int(w_len[w].max())
        rows = batch_size if fixed else len(w)
        span = np.arange(width)
        lens = np.zeros(rows, np.int64)
        lens[: len(w)] = w_len[w]
        first_tok = np.zeros(rows, np.int64)
        first_tok[: len(w)] = starts[doc[w]] + begin[w]
        valid = span[None, :] < lens[:, None]
        idx = np.where(valid, first_tok[:, None] + span, 0)
        tok = np.where(valid, flat[idx], 0)
        tgt = np.where(valid[:, 1:], tok[:, 1:], -1)
        x, y = to_batch((tok[:, :-1], tgt), device)
        with autocast(device, precision):
            loss = model(x, y, dense=dense, reduction="none").loss
        sums[w] = loss.float().sum(-1)[: len(w)].cpu().numpy()
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
