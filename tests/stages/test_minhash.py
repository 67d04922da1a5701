"""MinHash signatures: shingling, invariances, estimator accuracy and the LSH S-curve."""

from __future__ import annotations

import math
import random

import numpy as np
import pyarrow as pa
import pytest

from curator.config import DedupConfig
from curator.stages.minhash import (
    MinHashSignature,
    band_hashes,
    minhash_signatures,
    permutations,
    shingle_hashes,
    simplified_words,
)


def table(texts: list[str | None], decisions: list[str] | None = None) -> pa.Table:
    return pa.table(
        {"text": texts, "decision": decisions or ["kept"] * len(texts)},
        schema=pa.schema([("text", pa.string()), ("decision", pa.string())]),
    )


def words(rng: random.Random, n: int) -> list[str]:
    # A 10^9 vocabulary: repeated words (and so repeated shingles) are practically absent.
    return [f"w{rng.randrange(10**9)}" for _ in range(n)]


def shingle_set(ws: list[str], k: int) -> set[tuple[str, ...]]:
    if len(ws) < k:
        return {tuple(ws)}
    return {tuple(ws[i : i + k]) for i in range(len(ws) - k + 1)}


def test_simplified_words_lowercase_strip_punctuation_split_whitespace():
    got = simplified_words(pa.array(["Hello, World!  Don't\tstop\n-- e-mail", "", None, "..."]))
    assert got.to_list() == [["hello", "world", "dont", "stop", "email"], [], [], []]


def test_columns_types_and_nulls_for_rows_not_alive():
    cfg = DedupConfig(bands=4, rows=3, threshold=0.5)
    texts = ["one two three four five six", "x", None, "gone"]
    out = MinHashSignature(cfg)(table(texts, ["kept", "kept", "kept", "dropped"]))
    bands = out.column("minhash_bands")
    sig = out.column("minhash_sig")
    assert bands.type == pa.list_(pa.uint64()) and sig.type == pa.list_(pa.uint32())
    assert [b is None for b in bands.to_pylist()] == [False, False, False, True]
    assert [len(b) for b in bands.to_pylist()[:3]] == [4, 4, 4]
    assert [len(s) for s in sig.to_pylist()[:3]] == [12, 12, 12]
    assert "minhash_sig" not in MinHashSignature(DedupConfig())(table(["a b"])).column_names


def test_case_punctuation_and_spacing_do_not_change_signature():
    step = MinHashSignature(DedupConfig())
    out = step(
        table(
            [
                "The quick brown fox jumps over the lazy dog today",
                "the QUICK brown fox, jumps   over the lazy dog -- today!",
                "the quick brown fox jumps over the lazy cat today",
            ]
        )
    )
    b = out.column("minhash_bands").to_pylist()
    assert b[0] == b[1]
    assert b[0] != b[2]


def test_signature_does_not_depend_on_batch_composition():
    rng = random.Random(0)
    texts = [" ".join(words(rng, n)) for n in [0, 1, 3, 4, 5, 6, 50, 400, 2]]
    step = MinHashSignature(DedupConfig())
    together = step(table(texts)).column("minhash_bands").to_pylist()
    alone = [step(table([t])).column("minhash_bands").to_pylist()[0] for t in texts]
    assert together == alone


def test_short_and_wordless_docs_are_one_shingle():
    hashes, starts = shingle_hashes(pa.array(["a b", "", "!!", "a b c d e f"]), 5, seed=1)
    counts = np.diff(np.append(starts, hashes.shape[0]))
    assert counts.tolist() == [1, 1, 1, 2]
    assert hashes.max() < 2**32
    # Two word-less docs with different raw text are not made equal by simplification.
    assert hashes[1] != hashes[2]


def test_shingle_count_matches_distinct_ngrams():
    rng = random.Random(1)
    ws = words(rng, 30)
    hashes, starts = shingle_hashes(pa.array([" ".join(ws)]), 4, seed=3)
    assert len(np.unique(hashes)) == len(shingle_set(ws, 4)) == 27


def test_signature_is_min_over_shingles_per_permutation():
    hashes = np.array([5, 9, 2, 7, 7], dtype=np.uint64)
    starts = np.array([0, 2, 4])
    a, b = permutations(6, seed=0)
    sig = minhash_signatures(hashes, starts, a, b)
    for doc, (lo, hi) in enumerate([(0, 2), (2, 4), (4, 5)]):
        vals = (a[:, None] * hashes[None, lo:hi] + b[:, None]) >> np.uint64(32)
        assert (sig[doc] == vals.min(axis=1)).all()


def planted_pairs(rng: random.Random, target: float, n_pairs: int, k: int):
    """Pairs (A, B) sharing a common run of words; returns texts and true shingle Jaccard."""
    a_texts, b_texts, jac = [], [], []
    total = 120
    for _ in range(n_pairs):
        # |A|=|B|=n shingles, c common: J = c / (2n - c)  =>  c = 2nJ / (1 + J)
        n = total - k + 1
        c = max(round(2 * n * target / (1 + target)), 0)
        common = words(rng, c + k - 1) if c else []
        extra = total - len(common)
        wa, wb = common + words(rng, extra), common + words(rng, extra)
        sa, sb = shingle_set(wa, k), shingle_set(wb, k)
        a_texts.append(" ".join(wa))
        b_texts.append(" ".join(wb))
        jac.append(len(sa & sb) / len(sa | sb))
    return a_texts, b_texts, np.array(jac)


@pytest.mark.parametrize("target", [0.3, 0.5, 0.7, 0.9])
def test_detection_rate_follows_lsh_s_curve(target):
    cfg = DedupConfig(shingle_size=5, bands=14, rows=8, seed=11)
    step = MinHashSignature(cfg)
    rng = random.Random(int(target * 100))
    n = 600
    a_texts, b_texts, jac = planted_pairs(rng, target, n, cfg.shingle_size)
    sa, sb = step.signatures(pa.array(a_texts)), step.signatures(pa.array(b_texts))
    ba, bb = band_hashes(sa, cfg.bands, cfg.rows), band_hashes(sb, cfg.bands, cfg.rows)
    detected = (ba == bb).any(axis=1)
    # Per pair the probability is the S-curve at its own true Jaccard; the count of detections
    # is Poisson-binomial: compare with its mean within 4 standard deviations (+1 for rounding).
    p = 1 - (1 - jac**cfg.rows) ** cfg.bands
    mean, sd = p.sum(), math.sqrt((p * (1 - p)).sum())
    assert abs(detected.sum() - mean) <= 4 * sd + 1, (target, detected.sum(), mean, sd)
    # The signature agreement is an unbiased estimate of the Jaccard similarity.
    agree = (sa == sb).mean(axis=1)
    se = math.sqrt((jac * (1 - jac)).sum()) / math.sqrt(cfg.num_perm) / n
    assert abs(agree.mean() - jac.mean()) <= 4 * se + 1e-3, (agree.mean(), jac.mean())


def test_unrelated_docs_do_not_collide():
    rng = random.Random(5)
    step = MinHashSignature(DedupConfig())
    bands = band_hashes(
        step.signatures(pa.array([" ".join(words(rng, 80)) for _ in range(400)])), 14, 8
    )
    # No bucket (band, hash) may hold two different unrelated docs.
    keys = {(j, int(h)) for row in bands for j, h in enumerate(row)}
    assert len(keys) == bands.size


def test_seed_changes_permutations():
    a1, _ = permutations(8, seed=1)
    a2, _ = permutations(8, seed=2)
    assert (a1 % 2 == 1).all() and not (a1 == a2).all()


def test_empty_and_all_dead_batches():
    step = MinHashSignature(DedupConfig(threshold=0.5))
    empty = step(table([]))
    assert empty.num_rows == 0 and empty.column("minhash_bands").type == pa.list_(pa.uint64())
    dead = step(table(["a b c", "d e f"], ["dropped", "quarantined"]))
    assert dead.column("minhash_bands").null_count == 2
    assert dead.column("minhash_sig").null_count == 2
