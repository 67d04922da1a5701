"""Curriculum schedules as data, and the document order that follows one.

A schedule is a list of phases over the fraction of training tokens; each phase has a mix (the
token share of each stage, easy -> hard). Built in:

- `phases`: the design notes' three phases, for 3 stages: tokens [0, 0.3) at 0.7/0.2/0.1,
  [0.3, 0.7) at 0.2/0.5/0.3, [0.7, 1] at 0.1/0.3/0.6 (easy/medium/hard).
- `linear`: 10 phases whose mix moves linearly from easy-heavy (weights K, K-1, ..., 1) to
  hard-heavy (1, 2, ..., K), for any number of stages K.
- `step`: K equal phases, phase k all stage k (easy, then medium, then hard).
- `uniform`: one phase whose mix is the stages' own token shares: a plain global shuffle, the
  control arm.
- any YAML file `{phases: [{until: 0.3, mix: [0.7, 0.2, 0.1]}, ...]}`.

When a stage runs out of documents (`on_exhausted`):
- `truncate` (default): the token budget is scaled down to the largest one every stage can
  supply at the schedule's mix, so the order follows the schedule exactly; the documents that
  do not fit are left out of the export (their tokens are reported per stage).
- `fill`: every document is used; from the phase in which a stage runs out, its share goes to
  the stages that still have documents, in proportion to their mix (or to what they have left
  when their mix is 0). The schedule is followed exactly up to that phase.

Placement: within each stage, documents are shuffled (seeded) and laid along that stage's
cumulative token targets; a document belongs to the phase its token midpoint falls in, so each
phase gets its target to within one document. Then each phase is shuffled as a whole.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import Field, model_validator

from curator.config import ConfigError, Section, load_model

OnExhausted = Literal["truncate", "fill"]
BUILTIN = ("phases", "linear", "step", "uniform")


class Phase(Section):
    until: float = Field(gt=0, le=1, description="End of the phase as a fraction of tokens.")
    mix: list[float] | None = Field(
        None, description="Token share per stage (easy first); null = the stages' own shares."
    )


class Schedule(Section):
    """Phases in token order; the last ends at 1.0."""

    name: str = Field("custom", description="Name shown in exports and the report.")
    phases: list[Phase] = Field(min_length=1, description="Phases in order.")

    @model_validator(mode="after")
    def _ordered(self) -> Schedule:
        ends = [p.until for p in self.phases]
        if any(b <= a for a, b in zip(ends, ends[1:], strict=False)) or ends[-1] != 1.0:
            raise ValueError(f"phase ends {ends} must increase strictly and end at 1.0")
        for p in self.phases:
            if p.mix is not None and (min(p.mix) < 0 or sum(p.mix) <= 0):
                raise ValueError(f"mix {p.mix} needs non-negative shares with a positive sum")
        return self

    @property
    def widths(self) -> np.ndarray:
        return np.diff([0.0] + [p.until for p in self.phases])

    def mixes(self, available: np.ndarray) -> np.ndarray:
        """(phases, stages) normalized mix; a null mix takes the stages' available shares."""
        k = len(available)
        rows = []
        for p in self.phases:
            m = np.asarray(p.mix if p.mix is not None else available, dtype=np.float64)
            if len(m) != k:
                raise ConfigError(
                    f"schedule {self.name!r} has a mix of {len(m)} stages but the run has {k}; "
                    "use linear/step/uniform (any stage count) or a schedule with "
                    f"{k} shares per phase"
                )
            rows.append(m / m.sum() if m.sum() > 0 else np.full(k, 1.0 / k))
        return np.array(rows)


def builtin_schedule(name: str, n_stages: int) -> Schedule:
    k = n_stages
    if name == "phases":
        if k != 3:
            raise ConfigError(
                f"schedule 'phases' is written for 3 stages (easy/medium/hard), the run has {k}; "
                "use linear, step or uniform"
            )
        phases = [(0.3, [0.7, 0.2, 0.1]), (0.7, [0.2, 0.5, 0.3]), (1.0, [0.1, 0.3, 0.6])]
    elif name == "linear":
        easy, hard = np.arange(k, 0, -1.0), np.arange(1.0, k + 1)
        easy, hard = easy / easy.sum(), hard / hard.sum()
        n = 10
        phases = [
            ((i + 1) / n, ((1 - t) * easy + t * hard).tolist())
            for i, t in enumerate((np.arange(n) + 0.5) / n)
        ]
    elif name == "step":
        phases = [((i + 1) / k, np.eye(k)[i].tolist()) for i in range(k)]
    elif name == "uniform":
        phases = [(1.0, None)]
    else:
        raise ConfigError(f"unknown schedule {name!r}; use one of {BUILTIN} or a YAML file")
    return Schedule(name=name, phases=[Phase(until=u, mix=m) for u, m in phases])


def load_schedule(name_or_path: str, n_stages: int) -> Schedule:
    """A built-in schedule by name, or a Schedule YAML file."""
    if name_or_path in BUILTIN:
        return builtin_schedule(name_or_path, n_stages)
    if not Path(name_or_path).is_file():
        raise ConfigError(
            f"schedule {name_or_path!r} is neither a built-in {BUILTIN} nor a YAML file"
        )
    base = {"name": Path(name_or_path).stem}
    return load_model(Schedule, name_or_path, base=base)  # type: ignore[return-value]


def phase_targets(
    schedule: Schedule, available: np.ndarray, on_exhausted: OnExhausted
) -> np.ndarray:
    """Tokens of each stage in each phase, shape (phases, stages)."""
    available = np.asarray(available, dtype=np.float64)
    total = available.sum()
    mix, widths = schedule.mixes(available), schedule.widths
    if total == 0:
        return np.zeros_like(mix)
    if on_exhausted == "truncate":
        demand = widths @ mix  # fraction of the budget each stage must supply
        need = demand > 0
        budget = min(total, float(np.min(available[need] / demand[need])))
        return budget * widths[:, None] * mix
    out = np.zeros_like(mix)
    remaining = available.copy()
    for p in range(len(widths)):  # phases x stages, never documents
        budget = total * widths[p]
        weights = mix[p].copy()
        while budget > 1e-9 * total and remaining.sum() > 1e-9 * total:
            live = remaining > 1e-9 * total
            w = weights * live
            if w.sum() == 0:
                w = remaining * live
            take = np.minimum(budget * w / w.sum(), remaining)
            out[p] += take
            remaining -= take
            budget -= take.sum()
            weights = w
    return out


@dataclass(frozen=True)
class Plan:
    """The export order: `order` = row positions in reading order, `phase` per row (-1 = left
    out), `targets`/`actual` = tokens per (phase, stage)."""

    order: np.ndarray
    phase: np.ndarray
    targets: np.ndarray
    actual: np.ndarray
    schedule: Schedule

    def summary(self, n_tokens: np.ndarray, stage: np.ndarray) -> dict:
        out = n_tokens[self.phase < 0]
        left = np.bincount(stage[self.phase < 0], weights=out, minlength=self.targets.shape[1])
        return {
            "schedule": self.schedule.model_dump(mode="json"),
            "docs": int(len(self.order)),
            "tokens": int(n_tokens[self.order].sum()),
            "phase_targets": np.round(self.targets).astype(np.int64).tolist(),
            "phase_tokens": self.actual.astype(np.int64).tolist(),
            "left_out_tokens_per_stage": left.astype(np.int64).tolist(),
        }


def plan_order(
    stage: np.ndarray,
    n_tokens: np.ndarray,
    schedule: Schedule,
    n_stages: int,
    seed: int = 0,
    on_exhausted: OnExhausted = "truncate",
) -> Plan:
    """Order documents (given as aligned stage / n_tokens arrays) to follow `schedule`."""
    stage = np.asarray(stage, dtype=np.int64)
    n_tokens = np.asarray(n_tokens, dtype=np.int64)
    available = np.bincount(stage, weights=n_tokens, minlength=n_stages).astype(np.float64)
    targets = phase_targets(schedule, available, on_exhausted)
    n_phases = targets.shape[0]
    rng = np.random.default_rng(seed)
    phase = np.full(len(stage), -1, dtype=np.int64)
    for k in range(n_stages):  # a handful of stages; each is vectorized over its documents
        rows = rng.permutation(np.flatnonzero(stage == k))
        cum = np.cumsum(n_tokens[rows])
        mid = cum - n_tokens[rows] / 2.0
        bounds = np.cumsum(targets[:, k])
        # Tiny slack: float sums of the targets may land a hair under the exact stage total.
        ph = np.searchsorted(bounds * (1 + 1e-12), mid, side="right")
        phase[rows] = np.where(ph < n_phases, ph, -1)
    placed = np.flatnonzero(phase >= 0)
    shuffle_key = rng.random(len(placed))
    order = placed[np.lexsort((shuffle_key, phase[placed]))]
    actual = np.zeros_like(targets)
    np.add.at(actual, (phase[placed], stage[placed]), n_tokens[placed])
    return Plan(order, phase, targets, actual, schedule)
