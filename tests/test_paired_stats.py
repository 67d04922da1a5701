"""The paired statistics the closed-loop tables report (benchmarks/paired_stats.py)."""

from __future__ import annotations

import numpy as np

import benchmarks.paired_stats as ps


def test_paired_t_uses_the_sample_sd():
    assert np.isclose(ps.paired_t(np.array([1.0, 2.0, 3.0])), 2 * np.sqrt(3))
    assert ps.paired_t(np.array([-0.5, -0.5])) == -np.inf
    assert ps.paired_t(np.zeros(4)) == 0.0
    assert np.isnan(ps.paired_t(np.array([1.0])))


def test_sign_flip_p_counts_the_patterns_that_reach_the_observed_mean():
    # of the 8 sign patterns of (1, 2, 3) only all-plus and all-minus reach |mean| = 2
    assert ps.sign_flip_p(np.array([1.0, 2.0, 3.0])) == 0.25
    # (3, -1): patterns (3,-1) (-3,1) reach |mean| 1, and (3,1) (-3,-1) reach 2: all 4
    assert ps.sign_flip_p(np.array([3.0, -1.0])) == 1.0
    assert ps.sign_flip_p(np.zeros(5)) == 1.0
    assert ps.sign_flip_p(-np.ones(10)) == 2 / 2**10


def test_sign_flip_monte_carlo_agrees_with_the_exact_count(monkeypatch):
    d = np.random.default_rng(3).normal(-0.3, 1.0, 12)
    exact = ps.sign_flip_p(d)
    monkeypatch.setattr(ps, "EXACT_UP_TO", 4)
    sampled = ps.sign_flip_p(d, samples=100_000, seed=1)
    assert 0.02 < exact < 0.98  # a case where the two could disagree
    assert abs(sampled - exact) < 0.01


def test_selection_paired_reads_a_draw_range_and_the_latest_ranking():
    from benchmarks.selection_paired import paired_table

    losses = {
        # an old ranking of "agent" on draw 0, superseded by a later run's (appended after it)
        "agent|old|0|0.5": 9.0,
        "agent|new|0|0.5": 1.0, "agent|new|1|0.5": 1.0, "agent|new|2|0.5": 3.0,
        "base|s|0|0.5": 2.0, "base|s|1|0.5": 2.0, "base|s|2|0.5": 2.0,
    }
    (row,) = paired_table(losses, "agent", range(0, 2))
    assert row[:5] == ("0.5", "base", -1.0, 2, 2)
    (row,) = paired_table(losses, "agent", range(1, 3))  # draws 1 and 2 only: -1 and +1
    assert row[2] == 0.0 and row[3] == 1 and row[4] == 2


def test_fixed_upweight_repeats_the_top_share_and_follows_the_selection_tie_order():
    from benchmarks.selection_natural import top_share_weights
    from policies.baselines import select_by_score

    scores = np.array([0.1, 0.9, 0.5, 0.9, -1.0])
    # top 2 of 5 (0.4): the two 0.9s; among equal scores the lower index ranks first
    assert top_share_weights(scores, 0.4, 2).tolist() == [1, 2, 1, 2, 1]
    assert top_share_weights(scores, 0.2, 3).tolist() == [1, 3, 1, 1, 1]
    assert top_share_weights(scores, 1.0, 2).tolist() == [2] * 5
    assert top_share_weights(scores, 0.0, 2).tolist() == [1] * 5
    # repeated documents are the first the budget selects: with each twice, a budget of 4
    # one-token documents holds the top two
    w = top_share_weights(scores, 1.0, 2)
    assert select_by_score(scores, w, 4).tolist() == [False, True, False, True, False]
