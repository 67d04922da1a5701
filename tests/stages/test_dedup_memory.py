"""In-memory near-duplicate removal: which documents are flagged as copies, and why."""

from __future__ import annotations

import random

import numpy as np
import pyarrow as pa

from curator.config import DedupConfig
from curator.stages.dedup_memory import (
    SELECTION_DEDUP,
    component_labels,
    near_duplicate_copies,
)
from policies.pool import near_duplicate as pool_near_duplicate
from tests.corpus import real_paragraphs


def test_components_follow_chains_to_their_smallest_member():
    # 5-3, 3-1 chain into one component {1, 3, 5}; {2, 4}; 0 and 6 alone
    edges = np.array([[5, 3], [3, 1], [4, 2]])
    assert component_labels(7, edges).tolist() == [0, 1, 2, 1, 2, 1, 6]
    assert component_labels(3, np.zeros((0, 2), np.int64)).tolist() == [0, 1, 2]


def test_later_copies_of_a_text_are_flagged_and_the_first_kept():
    paras = real_paragraphs()[:40]
    rng = np.random.default_rng(0)
    # the pool's own corruption: 1 word in 30 replaced by another word of the text
    copies = [pool_near_duplicate(paras[i], rng) for i in (3, 7)]
    texts = paras + copies + [paras[11]]  # two near copies and one exact copy, at the end
    flags = near_duplicate_copies(pa.array(texts, pa.string()))
    assert flags.tolist() == [False] * 40 + [True, True, True]


def test_order_decides_which_copy_survives():
    paras = real_paragraphs()[:10]
    copy = pool_near_duplicate(paras[2], np.random.default_rng(1))
    flags = near_duplicate_copies([copy, *paras])
    assert not flags[0] and flags[3] and flags.sum() == 1


def test_threshold_rejects_bucket_collisions_of_different_texts():
    paras = real_paragraphs()[:30]
    rnd = random.Random(0)
    # documents that share one long passage and differ elsewhere: a band may collide, but
    # their Jaccard is ~0.3, far under the 0.6 check
    shared = paras[0]
    texts = [f"{shared} {p}" for p in paras[1:4]] + [f"{p} {shared}" for p in paras[4:7]]
    rnd.shuffle(texts)
    strict = near_duplicate_copies(texts, SELECTION_DEDUP)
    loose = near_duplicate_copies(texts, DedupConfig(shingle_size=3, bands=40, rows=2))
    assert not strict.any()
    assert loose.any()  # without the check, the shared passage alone links them


def test_empty_and_short_inputs_are_exact_copies_of_their_first():
    assert near_duplicate_copies([]).shape == (0,)
    flags = near_duplicate_copies(["", "", "one two three four", "one two", "one two"])
    assert flags.tolist() == [False, True, False, False, True]
