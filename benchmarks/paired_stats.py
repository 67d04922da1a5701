"""Significance of paired differences: with 5-10 pairs the sd alone does not say whether a mean
difference is real, so the tables report the paired t statistic (sample sd) and an exact
sign-flip randomization p-value, which assumes nothing about the shape of the differences."""

from __future__ import annotations

import itertools

import numpy as np

EXACT_UP_TO = 16  # 2^16 sign patterns; beyond that a seeded Monte Carlo of them


def paired_t(d: np.ndarray) -> float:
    """Mean over its standard error with the sample sd; nan for fewer than 2 pairs, +-inf when
    every difference is the same nonzero value."""
    d = np.asarray(d, np.float64)
    if len(d) < 2:
        return float("nan")
    se = d.std(ddof=1) / np.sqrt(len(d))
    if se == 0:
        return 0.0 if d.mean() == 0 else float(np.copysign(np.inf, d.mean()))
    return float(d.mean() / se)


def sign_flip_p(d: np.ndarray, samples: int = 200_000, seed: int = 0) -> float:
    """Two-sided p of the mean difference under "each pair's sign is a coin flip" (the paired
    randomization test): the share of sign patterns whose |mean| reaches the observed one."""
    d = np.asarray(d, np.float64)
    if not len(d):
        return float("nan")
    if len(d) <= EXACT_UP_TO:
        signs = np.array(list(itertools.product((1.0, -1.0), repeat=len(d))))
    else:
        signs = np.random.default_rng(seed).choice((1.0, -1.0), size=(samples, len(d)))
    observed = abs(d.mean())
    means = np.abs(signs @ d) / len(d)
    return float(np.mean(means >= observed - 1e-12 * max(observed, 1.0)))


def auc(scores: np.ndarray, positive: np.ndarray) -> float:
    """ROC AUC of `positive` rows ranked above the rest by `scores` (ties by position)."""
    order = np.argsort(scores, kind="stable")
    ranks = np.empty(len(scores))
    ranks[order] = np.arange(1, len(scores) + 1)
    n_pos, n_neg = positive.sum(), (~positive).sum()
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))
