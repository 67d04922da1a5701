"""Selection baselines the agent is measured against. Every function returns one score per
document, higher = select first; `select_by_score` turns scores into an equal-token selection.

- random: uniform scores (the paired counterfactual of the environment).
- heuristic: how many of the backbone's rule families (Gopher repetition, Gopher quality, C4,
  FineWeb, English language id) a document passes, each run on its own; the English score breaks
  ties.
- perplexity band (CCNet style): distance of a document's loss under the small model from the
  median loss of clean reference documents under the same model (too high = junk, too low =
  repetitive).
- n-gram classifier (fastText / DCLM style): logistic regression on hashed word uni+bigrams,
  clean reference documents (1) vs the pool (0); score = logit.
- DSIR (Xie et al. 2023): log importance weight of a document under hashed n-gram bag models of
  the target (clean reference) and raw (pool) distributions, averaged per n-gram so that long
  documents are not preferred under an equal-token budget.
- clean-first random: knows the corruption labels; every clean document in random order, then
  every junk one. A reference for evaluation only -- not an upper bound: which clean documents
  come first is chance, and a ranking among clean text can beat it.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from curator.config import LanguageConfig, QualityConfig
from curator.stages.language import LanguageId
from curator.step import alive_mask
from policies.features import alive_table, as_string_array, rule_steps
from policies.ngrams import ngram_counts
from policies.target import dsir_logratio, dsir_weights, fit_classifier, tfidf_rows


def random_scores(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).random(n)


def heuristic_scores(texts: pa.Array | pa.ChunkedArray,
                     quality: QualityConfig | None = None) -> np.ndarray:
    texts = as_string_array(texts)
    base = alive_table(texts)
    passed = np.zeros(len(texts))
    for step in rule_steps(quality or QualityConfig()):
        passed += alive_mask(step(base)).to_numpy(zero_copy_only=False)
    lang = LanguageId(LanguageConfig(keep=["en"]))(base)
    passed += alive_mask(lang).to_numpy(zero_copy_only=False)
    en_score = np.where(lang.column("lang").to_numpy(zero_copy_only=False) == "en",
                        np.nan_to_num(lang.column("lang_score").to_numpy(zero_copy_only=False)
                                      .astype(np.float64)), 0.0)
    return passed + 0.5 * en_score


def perplexity_band_scores(doc_losses: np.ndarray, reference_losses: np.ndarray) -> np.ndarray:
    center = float(np.nanmedian(reference_losses))
    return -np.abs(np.nan_to_num(doc_losses, nan=1e6) - center)


def ngram_classifier_scores(pool_texts: pa.Array, reference_texts: pa.Array, dim: int = 4096,
                            steps: int = 300, seed: int = 0) -> np.ndarray:
    """Logistic regression (L2, Adam) on hashed n-grams: reference = positive, pool = negative."""
    pool_x = tfidf_rows(ngram_counts(pool_texts, dim))
    ref_x = tfidf_rows(ngram_counts(reference_texts, dim))
    w, b = fit_classifier(ref_x, pool_x, steps, seed)
    return (pool_x @ w + b).astype(np.float64)


def dsir_scores(pool_texts: pa.Array, target_texts: pa.Array, dim: int = 10_000,
                alpha: float = 1.0) -> np.ndarray:
    raw = ngram_counts(pool_texts, dim)
    target = ngram_counts(target_texts, dim).sum(axis=0)
    return dsir_weights(raw, dsir_logratio(raw.sum(axis=0), target, alpha)).astype(np.float64)


CLEAN_FIRST = "clean-first random (knows labels)"


def clean_first_scores(is_junk: np.ndarray, seed: int) -> np.ndarray:
    """Clean documents above junk, random order within each (labels, evaluation only)."""
    return (~np.asarray(is_junk, bool)).astype(np.float64) + 0.5 * random_scores(
        len(is_junk), seed)


def select_by_score(scores: np.ndarray, n_tokens: np.ndarray, budget: int) -> np.ndarray:
    """Bool mask: highest scores first until `budget` tokens are taken (ties: lower index)."""
    order = np.argsort(-np.asarray(scores, np.float64), kind="stable")
    cum = np.cumsum(np.asarray(n_tokens)[order])
    take = order[: int(np.searchsorted(cum, budget, side="left")) + 1]
    mask = np.zeros(len(scores), bool)
    mask[take] = True
    return mask
