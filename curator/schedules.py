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
- `fill` (default): every kept document is used. The schedule is followed exactly until a stage
  runs out; from then on, the share that stage can no longer supply goes to the nearest stage(s)
  that still have documents (hard -> medium, medium -> easy and hard in proportion to their mix),
  so the order stays as close to the schedule's difficulty profile as the data allows.
- `truncate`: the token budget is scaled down to the largest one every stage can supply at the
  schedule's mix, so the order follows the schedule exactly; the documents that do not fit are
  left out of the export (their tokens and count are reported). An explicit choice, since on a
  skewed run it can leave out most of the corpus.

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
    eps = 1e-9 * total
    for p in range(len(widths)):  # phases x stages x stages, never documents
        want = total * widths[p] * mix[p]
        while want.sum() > eps:
            take = np.minimum(want, remaining)
            out[p] += take
            remaining -= take
            want = _to_nearest(want - take, remaining > eps, mix[p], remaining)
    return out


def _to_nearest(
    unmet: np.ndarray, live: np.ndarray, mix: np.ndarray, remaining: np.ndarray
) -> np.ndarray:
    """Move each exhausted stage's unmet tokens to the nearest live stage(s): ties (a stage on
    each side) split in proportion to the phase's mix, or to what they have left when that mix
    is 0. Nothing live: nothing to move (every token is placed)."""
    k = len(unmet)
    want = np.zeros(k)
    if not live.any():
        return want
    stages = np.arange(k)
    for s in np.flatnonzero(unmet > 0):
        dist = np.where(live, np.abs(stages - s), k)
        nearest = dist == dist.min()
        w = mix * nearest
        if w.sum() == 0:
            w = remaining * nearest
        want += unmet[s] * w / w.sum()
    return want


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
        """`docs`/`tokens` placed, `kept_*` given, `left_out_*` = kept - placed."""
        out = n_tokens[self.phase < 0]
        left = np.bincount(stage[self.phase < 0], weights=out, minlength=self.targets.shape[1])
        return {
            "schedule": self.schedule.model_dump(mode="json"),
            "docs": int(len(self.order)),
            "tokens": int(n_tokens[self.order].sum()),
            "kept_docs": int(len(n_tokens)),
            "kept_tokens": int(n_tokens.sum()),
            "left_out_docs": int(len(out)),
            "left_out_tokens": int(out.sum()),
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
    on_exhausted: OnExhausted = "fill",
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
        if on_exhausted == "fill":  # every document is placed, whatever float slack remains
            ph = np.minimum(ph, n_phases - 1)
        phase[rows] = np.where(ph < n_phases, ph, -1)
    placed = np.flatnonzero(phase >= 0)
    shuffle_key = rng.random(len(placed))
    order = placed[np.lexsort((shuffle_key, phase[placed]))]
    actual = np.zeros_like(targets)
    np.add.at(actual, (phase[placed], stage[placed]), n_tokens[placed])
    return Plan(order, phase, targets, actual, schedule)
