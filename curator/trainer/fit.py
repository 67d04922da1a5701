"""Train a model for a few steps on an in-memory token array: the trainer as its callers use it.

The quality agent's learner (policies/reward.py), the closed loop's units and trial rounds
(curator/loop) and the selection benchmark all train the same way: a selection's tokens, cut or
repeated to exactly the steps they pay for, read as seq_len windows (shuffled with a seed, or in
reading order for a curriculum), batched on the model's own device, stepped by
`engine.train_steps` on a schedule that may span a longer run. `fit_tokens` is that recipe;
`step_stream` + `fit_stream` are its halves for a caller that trains one stream in pieces
(the loop evaluates between them). `train.py` is the full loop: it builds its batches with the
same `step_batch` and steps with the same `engine.scheduled_step` that `train_steps` calls.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from curator.trainer.config import TrainConfig
from curator.trainer.data import TokenStream

if TYPE_CHECKING:  # torch loads lazily: cycle_to serves the count-LM proxy learner too
    import torch

    from curator.trainer.engine import Batch, StepStats


def cycle_to(tokens: np.ndarray, n: int) -> np.ndarray:
    """The first n tokens of `tokens` repeated as often as needed (empty stays empty)."""
    if len(tokens) == 0 or len(tokens) >= n:
        return tokens[:n]
    return np.tile(tokens, -(-n // len(tokens)))[:n]


def step_batch(
    stream: TokenStream, step: int, cfg: TrainConfig, device: torch.device,
    rank: int = 0, world: int = 1,
) -> list[Batch]:
    """The micro-batches of optimizer step `step` (grad_accum of them), on `device`."""
    from curator.trainer.engine import to_batch

    return [
        to_batch(stream.batch(step * cfg.grad_accum + m, cfg.batch_size, rank, world), device)
        for m in range(cfg.grad_accum)
    ]


def step_stream(
    tokens: np.ndarray, cfg: TrainConfig, n_steps: int, order: str = "shuffled", seed: int = 0
) -> TokenStream | None:
    """Windows over exactly `n_steps` steps' tokens (+1 for the last target): a longer
    selection is cut, a shorter one repeats (keeping too little means seeing it again).
    None when there is nothing to read (an empty selection trains nothing)."""
    t = cycle_to(np.asarray(tokens, np.int64), n_steps * cfg.tokens_per_step() + 1)
    if len(t) <= cfg.model.seq_len:
        return None
    return TokenStream(t, cfg.model.seq_len, order=order, seed=seed)


def model_device(model: torch.nn.Module) -> torch.device:
    return next(model.parameters()).device


def fit_stream(
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    stream: TokenStream,
    cfg: TrainConfig,
    steps: range,
    *,
    total_steps: int,
    start_step: int = 0,
    lr_scale: Sequence[float] | None = None,
) -> list[StepStats]:
    """Optimizer steps on the stream's step batches `steps` (e.g. range(lo, hi) of a round);
    `start_step` is the schedule step of the first of them, `total_steps` where the LR is fully
    decayed, `lr_scale[i]` multiplies the i-th step's LR."""
    from curator.trainer.engine import train_steps

    device = model_device(model)
    batches = (step_batch(stream, i, cfg, device) for i in steps)
    return train_steps(model, optimizer, batches, cfg, total_steps, start_step=start_step,
                       lr_scale=lr_scale)


def fit_tokens(
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    tokens: np.ndarray,
    cfg: TrainConfig,
    n_steps: int,
    *,
    total_steps: int,
    start_step: int = 0,
    seed: int = 0,
    order: str = "shuffled",
    lr_scale: Sequence[float] | None = None,
) -> list[StepStats]:
    """`n_steps` optimizer steps on exactly n_steps * tokens_per_step tokens of `tokens`
    (cut or repeated), read in `order` ("shuffled" by `seed`, or "curriculum" = as given)."""
    stream = step_stream(tokens, cfg, n_steps, order, seed)
    if stream is None:
        return []
    return fit_stream(model, optimizer, stream, cfg, range(n_steps), total_steps=total_steps,
                      start_step=start_step, lr_scale=lr_scale)
