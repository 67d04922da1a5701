import numpy as np
import pyarrow as pa

from policies.baselines import (
    clean_first_scores,
    dsir_scores,
    heuristic_scores,
    ngram_classifier_scores,
    perplexity_band_scores,
    select_by_score,
)
from policies.pool import char_soup

REF = [f"the farmer walked to the market with his son number {i} and sold the grain"
       for i in range(20)]


def test_select_by_score_fills_budget_in_score_order():
    scores = np.array([0.1, 0.9, 0.5, 0.7])
    tokens = np.array([10, 10, 10, 10])
    assert select_by_score(scores, tokens, 20).tolist() == [False, True, False, True]
    # the document that crosses the budget is taken (budget is a floor, as in training)
    assert select_by_score(scores, tokens, 21).sum() == 3


def test_clean_first_puts_clean_first():
    junk = np.array([True, False, True, False])
    s = clean_first_scores(junk, 0)
    assert s[~junk].min() > s[junk].max()


def test_dsir_and_classifier_prefer_target_like_docs():
    rng = np.random.default_rng(0)
    pool = pa.array(REF[:5] + [char_soup(REF[0] * 2, rng) for _ in range(5)], pa.string())
    ref = pa.array(REF[5:], pa.string())
    for scores in (dsir_scores(pool, ref, dim=512), ngram_classifier_scores(pool, ref, dim=512)):
        assert scores[:5].min() > scores[5:].max()


def test_perplexity_band_penalizes_both_tails():
    s = perplexity_band_scores(np.array([1.0, 4.0, 9.0, np.nan]), np.array([3.5, 4.0, 4.5]))
    assert s[1] > s[0] and s[1] > s[2] and s[3] < s[0]


def test_heuristic_counts_rule_families():
    good = ("The old man and the sea is a story that has been told to many children. " * 8)
    s = heuristic_scores(pa.array([good, "#### $$$ !!!"], pa.string()))
    assert s[0] > s[1]
