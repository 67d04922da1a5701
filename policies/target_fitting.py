"""Fitting the target-aware models (classifier + DSIR, reference LM) an agent config asks for,
and the cross-fitted features of the agent's own pool.

A policy is trained on its pool's features but scores documents no model has been fitted on.
A target model fitted with the pool as its negatives gives the pool in-sample values: on the
natural setup's training half the classifier logit averages -3.8 in-sample against -3.2
out-of-fold, and a pool document that is also target text would get a memorized logit.
`cross_fitted_features` gives every pool document the features of models fitted without it
(K folds), so what the agent learns from has the distribution of what it will score.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from policies.config import AgentConfig
from policies.features import FeatureExtractor, FeatureSpec
from policies.pool import Pool
from policies.reference import ReferenceLM
from policies.target import TargetModel

FittedTarget = tuple[TargetModel | None, ReferenceLM | None]


def target_members(pool: Pool) -> np.ndarray:
    """Which pool documents are also the pool's fit text (bool per document). Only a pool with
    a fit split of its own (`Pool.target`, natural pools) can hold its fit text by design; a
    labelled pool fits on its reward's held-out text, and a copy of that in the pool is a
    duplicate among the sources, treated as before (all False)."""
    if not pool.target:
        return np.zeros(len(pool), bool)
    member = pc.is_in(pool.texts, value_set=pa.array(pool.target, pa.string()))
    return member.to_numpy(zero_copy_only=False)


def fit_target_models(cfg: AgentConfig, pool: Pool, tokenizer: bytes,
                      held_out: np.ndarray | None = None) -> FittedTarget:
    """The target model and reference LM `cfg` asks for, fitted on the pool's fit text
    (`Pool.fit_text`: for a natural pool disjoint from the reward's text) against the pool.

    A pool document that is also fit text is never a negative. `held_out` (bool per pool
    document): documents to fit without, neither as negatives nor as fit text (a fold of
    `cross_fitted_features`)."""
    out = np.zeros(len(pool), bool) if held_out is None else np.asarray(held_out, bool)
    negatives = pool.texts.filter(pa.array(~target_members(pool) & ~out))
    fit_text = pa.array(pool.fit_text, pa.string())
    fit_text = fit_text.filter(pc.invert(pc.is_in(fit_text,
                                                  value_set=pool.texts.filter(pa.array(out)))))
    target = (TargetModel.fit(negatives, fit_text, cfg.target_dim, seed=cfg.seed)
              if cfg.target_dim else None)
    reference = None
    if cfg.reference_model:
        plain = FeatureExtractor(tokenizer, FeatureSpec(sketch_dim=1))
        docs = plain.tokenize(plain.prepare(fit_text))
        reference = ReferenceLM.fit(docs, plain.sp.get_piece_size(), cfg.reference_steps,
                                    cfg.seed)
    return target, reference


def fold_ids(n: int, folds: int, seed: int) -> np.ndarray:
    """A seeded assignment of n documents to `folds` folds of (nearly) equal size."""
    return np.random.default_rng(seed).permutation(n) % folds


def cross_fitted_features(cfg: AgentConfig, pool: Pool, tokenizer: bytes,
                          spec: FeatureSpec) -> np.ndarray:
    """Raw feature rows of the pool, each document's from models fitted without its fold
    (`cfg.crossfit_folds` folds; the same extractor, so every column but the fitted ones is
    what the serving models give)."""
    folds = fold_ids(len(pool), cfg.crossfit_folds, cfg.seed)
    raw = np.zeros((len(pool), spec.dim), np.float32)
    for k in range(cfg.crossfit_folds):
        held = folds == k
        target, reference = fit_target_models(cfg, pool, tokenizer, held_out=held)
        extractor = FeatureExtractor(tokenizer, spec, target=target, reference=reference)
        raw[held] = extractor(pool.texts.filter(pa.array(held)))
    return raw
