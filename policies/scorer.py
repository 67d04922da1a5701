"""The quality agent as a curate stage: a callable class for Ray Data `map_batches`.

`PolicyScorer(policy)` loads the policy once per actor (`None`/'default' = the shipped policy,
'heuristic' = rule-family score, else a checkpoint path) and adds `quality_score` (float32, the
policy's keep logit: higher = better, sigmoid(score) = keep probability, unbounded; the
rule-family count for 'heuristic'; null for rows not alive) to each Arrow batch. With
`threshold` or `keep_fraction` it also drops the alive rows that fall short, with reason
`agent_low_score`; without either it only scores (the pass structure decides). It also adds
`sample_weight` (int32): for rows still kept after its cut, the policy's `upweight_factor` where
its upweight head says upweight (sigmoid(up logit) > 0.5), else 1 (always 1 for a policy without
that head, and for the heuristic); null for rows not kept. Inference is one batched forward pass
on CPU, single-threaded: Ray runs one scorer per core.

Features come from the text alone, through the same `FeatureExtractor.__call__` as in training
and `curator score`: inside `curator curate` that is the text the run will keep (normalized,
after C4's line removal), so a document whose lines C4 removes is scored as it will be exported.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from curator.stages.text_columns import scatter
from curator.step import alive_mask, apply_drops, set_column

AGENT_REASON = "agent_low_score"
HEURISTIC = "heuristic"


class PolicyScorer:
    name = "agent"

    def __init__(self, policy: str | None = None, threshold: float | None = None,
                 keep_fraction: float | None = None, with_features: bool = False) -> None:
        import torch

        from policies.checkpoint import DEFAULT_POLICY, load_policy

        if threshold is not None and keep_fraction is not None:
            raise ValueError("set threshold or keep_fraction, not both")
        if keep_fraction is not None and not 0 < keep_fraction <= 1:
            raise ValueError(f"keep_fraction={keep_fraction} must be in (0, 1]")
        torch.set_num_threads(1)
        self.threshold, self.keep_fraction = threshold, keep_fraction
        self.with_features = with_features
        self.heuristic = policy == HEURISTIC
        self.policy = None
        if not self.heuristic:
            self.policy = load_policy(DEFAULT_POLICY if policy in (None, "default") else policy)
            if self.policy.spec.model_features:
                raise ValueError(f"policy {policy} needs per-document trainer losses "
                                 "(model_features); the scorer stage cannot provide them")
            self.extractor = self.policy.feature_extractor()

    @property
    def feature_names(self) -> list[str]:
        return [] if self.policy is None else self.policy.spec.names

    def score_texts(self, texts: pa.Array) -> tuple[np.ndarray, np.ndarray | None]:
        """(scores float32, raw features or None) for a string array."""

        if self.heuristic:
            from policies.baselines import heuristic_scores

            return heuristic_scores(texts).astype(np.float32), None
        assert self.policy is not None
        raw = self.extractor(texts)
        return self.score_features(raw), raw

    def score_features(self, raw: np.ndarray) -> np.ndarray:
        """Scores (float32) of raw feature rows, as this policy's extractor computes them."""
        import torch

        assert self.policy is not None, "the heuristic scorer has no features"
        x = torch.from_numpy(self.policy.norm(raw))
        return self.policy.net.score(x).numpy().astype(np.float32)

    def __call__(self, table: pa.Table) -> pa.Table:
        alive = alive_mask(table).to_numpy(zero_copy_only=False)
        alive_rows = table.filter(pa.array(alive))
        scores, raw = self.score_texts(alive_rows.column("text"))
        table = set_column(table, "quality_score", scatter(scores, alive, pa.float32()))
        if self.with_features and raw is not None:
            for j, name in enumerate(self.feature_names):
                table = set_column(table, f"feat_{name}", scatter(raw[:, j], alive, pa.float32()))
        cut = self._cutoff(scores)
        if cut is not None:
            low = pc.less(table.column("quality_score"), pa.scalar(cut, pa.float32()))
            reason = pc.if_else(pc.fill_null(low, False), pa.scalar(AGENT_REASON),
                                pa.nulls(table.num_rows, pa.string()))
            table = apply_drops(table, reason)
        weight = scatter(self.sample_weights(raw, len(scores)), alive, pa.int32())
        # a weight is a sampling weight of kept documents: the cut's drops have none
        weight = pc.if_else(alive_mask(table), weight, pa.scalar(None, pa.int32()))
        return set_column(table, "sample_weight", weight)

    def sample_weights(self, raw: np.ndarray | None, n: int) -> np.ndarray:
        """Per scored row: `upweight_factor` where the upweight head's logit > 0, else 1."""
        if self.policy is None or not self.policy.net.upweight or raw is None:
            return np.ones(n, np.int32)
        import torch

        with torch.no_grad():
            up = self.policy.net.up_logits(torch.from_numpy(self.policy.norm(raw))).numpy()
        return np.where(up > 0, self.policy.upweight_factor, 1).astype(np.int32)

    def _cutoff(self, scores: np.ndarray) -> float | None:
        if self.threshold is not None:
            return float(self.threshold)
        if self.keep_fraction is None or len(scores) == 0:
            return None
        # keep the top ceil(f * n) of this batch: cutoff = the smallest kept score
        n_keep = int(np.ceil(self.keep_fraction * len(scores)))
        return float(np.sort(scores)[::-1][n_keep - 1])
