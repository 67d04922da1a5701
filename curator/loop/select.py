"""Scoring the remaining pool for one arm, and selecting a round's documents under the budget.

Every arm ranks the documents it has not trained on yet and takes the best-ranked ones until
the round's token budget is met (`policies.baselines.select_by_score`, the same rule for every
arm), so arms differ only in their ranking:
- `loop`, `loop_uniform`: the loop agent's current policy (updated after every round);
- `static`: the round-0 policy, never updated;
- `random`: a seeded uniform ranking (new draw per round);
- `heuristic`: the Gopher/C4/FineWeb rule score (`policies.baselines.heuristic_scores`).
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from policies import baselines as bl

POLICY_ARMS = ("loop", "loop_uniform", "static")


def pool_features(policy_path: str, texts: pa.Array) -> np.ndarray:
    """Raw (unnormalized) policy features of the pool. Every loop policy descends from the
    round-0 policy (same tokenizer and feature spec), so the driver computes them once."""
    from policies.checkpoint import load_policy

    return load_policy(policy_path).feature_extractor()(texts)


def arm_scores(
    arm: str,
    texts: pa.Array,
    policy_path: str | None,
    seed: int,
    rnd: int,
    raw_features: np.ndarray | None = None,
) -> np.ndarray:
    """Scores (higher = better) of `texts` for `arm` at round `rnd`; `raw_features`: rows
    aligned with `texts` from `pool_features` (else the features are computed here)."""
    if arm in POLICY_ARMS:
        from policies.scorer import PolicyScorer

        assert policy_path is not None, f"arm {arm} needs a policy"
        scorer = PolicyScorer(policy_path)
        if raw_features is None:
            return scorer.score_texts(texts)[0].astype(np.float64)
        return scorer.score_features(raw_features).astype(np.float64)
    if arm == "random":
        return bl.random_scores(len(texts), seed * 1000 + rnd)
    if arm == "heuristic":
        return bl.heuristic_scores(texts).astype(np.float64)
    raise ValueError(f"unknown arm {arm!r}")


def select_round(
    scores: np.ndarray, n_tokens: np.ndarray, remaining: np.ndarray, budget: int
) -> np.ndarray:
    """Indices (into the pool) of the best-scored remaining documents filling `budget` tokens.

    When fewer tokens remain than the budget, everything remaining is taken (the trainer then
    repeats it: the arm has run out of fresh data, which is part of what is measured).
    """
    idx = np.flatnonzero(remaining)
    if len(idx) == 0:
        return idx
    keep = bl.select_by_score(scores[idx], n_tokens[idx], budget)
    return idx[keep]
