"""A trial round: what one ranking's next selection would do to the loop arm's model, measured.

The loop update (curator/loop/update.py) proposes a new policy from noisy REINFORCE rewards.
Before the loop adopts it, both the current and the proposed policy select the next round's
documents from what the arm has left (the same `select_round` rule as the units), the arm's
checkpoint trains one round on each selection (same seed, same batch order rule, the loop's LR
schedule continued), and the validation half of the held-out text judges. The test half, which
every arm's reported loss uses, is never read here. The selection in the trial is read in a
seeded random order, not the curriculum's: what is compared is which documents, not their order.

Choices are compared with common random numbers: every pool document gets one seeded random key
per (seed, round), and a trial reads its selection in key order, so the documents two choices
share keep their relative order and the comparison sees their difference, not two unrelated
shuffles. The validation loss is over every validation window, not the first `eval_batches`.
With `update.trial_orders` > 1 each choice trains once per reading order (order k's keys are a
seeded draw of their own, the same k for every choice) and its trial loss is the mean: the
order's share of a trial difference's noise shrinks as 1/sqrt(orders).

A trial looks one round ahead by default. With `update.trial_horizon=end` it plays the rest of
the loop instead: every round left selects by the same ranking from what the rounds before it
left and trains on the loop's own LR schedule, so an update after round 0 of three is judged by
the loss the loop would end with. (Stop 33's trial-judged ES run: updates adopted after the
last-but-one round ended lower in 5 of 5 seeds, those adopted after round 0 higher in 4 of 4 --
one annealed round is a faithful stand-in only for the real last round.)
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from curator.loop.config import LoopConfig
from curator.loop.pool import LoopPool
from curator.loop.select import select_round
from curator.loop.unit import build_trainer, latest, round_windows, train_range

if TYPE_CHECKING:
    import torch

    from curator.trainer.config import TrainConfig
    from curator.trainer.model import GPT


def trial_loss(
    cfg: LoopConfig,
    pool: LoopPool,
    seed: int,
    rnd: int,
    model_dir: Path,
    scores: np.ndarray,
    remaining: np.ndarray,
    orders: Sequence[int] | None = None,
) -> float:
    """Validation loss after training on the selections `scores` make (`rollout_model`: the
    next round, or with `update.trial_horizon=end` every round left), the mean over reading
    `orders`, by default the first `update.trial_orders`.

    `scores`: one per pool document (only `remaining` ones are read); `model_dir`: the arm's
    checkpoint after round `rnd`.
    """
    from curator.trainer.data import TokenStream
    from curator.trainer.engine import evaluate

    validation = TokenStream(pool.validation, cfg.model.seq_len)
    batch = 2 * cfg.model.batch_size
    losses = [
        evaluate(rollout_model(cfg, pool, seed, rnd, model_dir, scores, remaining, order),
                 validation, batch, -(-validation.n_windows // batch))
        for order in (range(cfg.update.trial_orders) if orders is None else orders)
    ]
    return float(np.mean(losses))


def trial_order(
    n_pool: int, seed: int, rnd: int, chosen: np.ndarray, order: int = 0
) -> np.ndarray:
    """`chosen` (pool indices) sorted by one seeded random key per pool document: the reading
    order `order` of a trial, shared by every choice's selection of the same (seed, round)."""
    key_seed = seed * 1000 + rnd + 1
    # order 0 keeps the single-order trial's keys, so a one-order trial is unchanged
    rng = np.random.default_rng(key_seed if order == 0 else [key_seed, order])
    keys = rng.random(n_pool)
    return chosen[np.argsort(keys[chosen], kind="stable")]


def trial_model(
    cfg: LoopConfig,
    pool: LoopPool,
    seed: int,
    rnd: int,
    model_dir: Path,
    chosen: np.ndarray,
    order: int = 0,
) -> GPT:
    """The arm's checkpoint after round `rnd`, trained one more round on the documents
    `chosen` (pool indices) in the order of their seeded random keys (reading order `order`)."""
    tcfg, model, optimizer = build_trainer(cfg, pool.vocab_size, seed, latest(model_dir))
    _train_round(cfg, pool, seed, rnd + 1, tcfg, model, optimizer, chosen, order, anneal=True)
    return model


def rollout_model(
    cfg: LoopConfig,
    pool: LoopPool,
    seed: int,
    rnd: int,
    model_dir: Path,
    scores: np.ndarray,
    remaining: np.ndarray,
    order: int = 0,
) -> GPT:
    """The arm's checkpoint after round `rnd`, trained on the selections `scores` make: the
    next round (`update.trial_horizon=next`), or every round left (`end`), each selecting from
    what the rounds before it left, on the loop's own LR schedule; the last round is annealed
    (`update.trial_anneal`). With horizon next this is `trial_model` on the next selection."""
    last = rnd + 1 if cfg.update.trial_horizon == "next" else cfg.rounds - 1
    tcfg, model, optimizer = build_trainer(cfg, pool.vocab_size, seed, latest(model_dir))
    left = remaining.copy()
    for r in range(rnd + 1, last + 1):
        chosen = select_round(scores, pool.n_tokens, left, cfg.round_tokens)
        left[chosen] = False
        _train_round(cfg, pool, seed, r, tcfg, model, optimizer, chosen, order,
                     anneal=r == last)
    return model


def _train_round(
    cfg: LoopConfig,
    pool: LoopPool,
    seed: int,
    rnd: int,
    tcfg: TrainConfig,
    model: GPT,
    optimizer: torch.optim.AdamW,
    chosen: np.ndarray,
    order: int,
    anneal: bool,
) -> None:
    """Train round `rnd` of the loop's schedule on `chosen` in the trial's reading `order`."""
    docs = pool.docs(trial_order(len(pool), seed, rnd - 1, chosen, order))
    tokens = np.concatenate(docs) if docs else np.zeros(0, np.int64)
    windows = round_windows(cfg, tcfg, tokens)
    n = cfg.steps_per_round
    # annealed: the loop's LR times a linear ramp to zero over the round, so the loss judges
    # what the selection taught, not where the last few high-LR steps happened to leave it
    scale = 1.0 - np.arange(n) / n if anneal and cfg.update.trial_anneal else None
    train_range(cfg, tcfg, model, optimizer, windows, rnd, 0, n, lr_scale=scale)
