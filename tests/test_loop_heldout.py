"""The loop's held-out documents: how they become the validation and test halves."""

from __future__ import annotations

import pytest

from curator.config import ConfigError
from curator.loop.config import LoopHeldoutConfig, load_loop_config
from curator.loop.pool import heldout_texts
from policies.pool import clip_text

DOCS = [f"document {i} " + "word " * (10 * i) for i in range(12)]


def test_halves_keeps_the_pools_order_and_whole_documents():
    assert heldout_texts(DOCS, LoopHeldoutConfig(), seed=3) == DOCS


def test_shuffled_is_a_seeded_permutation_of_whole_documents():
    cfg = LoopHeldoutConfig(split="shuffled")
    a, b, other = (heldout_texts(DOCS, cfg, seed=s) for s in (3, 3, 4))
    assert sorted(a) == sorted(DOCS) and a != DOCS
    assert a == b  # a resumed or re-run loop splits the same way
    assert other != a  # the pool's seed draws the split
    # validation (first half) and test (second half) are disjoint sets of documents
    half = len(a) // 2
    assert not set(a[:half]) & set(a[half:])


def test_max_doc_chars_cuts_every_document_at_a_word_boundary():
    cfg = LoopHeldoutConfig(max_doc_chars=40)
    out = heldout_texts(DOCS, cfg, seed=0)
    for doc, clipped in zip(DOCS, out, strict=True):
        assert len(clipped) <= 40 and doc.startswith(clipped)
        if len(doc) > 40:
            # the cut ends a word: the next character of the original is whitespace
            assert doc[len(clipped)].isspace()
        else:
            assert clipped == doc


def test_clip_text_without_whitespace_cuts_hard():
    assert clip_text("x" * 50, 10) == "x" * 10
    assert clip_text("a\nbbbbbbbbbb", 5) == "a"
    assert clip_text("short", 10) == "short"


def test_bad_heldout_settings_name_the_field(tmp_path):
    with pytest.raises(ConfigError, match="heldout"):
        load_loop_config(None, [f"output={tmp_path}", "heldout.split=by_source"])
    with pytest.raises(ConfigError, match="heldout.max_doc_chars"):
        load_loop_config(None, [f"output={tmp_path}", "heldout.max_doc_chars=-1"])
    # the update's environment reads the loop's own validation half: one knob cuts it
    with pytest.raises(ConfigError, match="heldout.max_doc_chars"):
        load_loop_config(None, [f"output={tmp_path}", "update.env.heldout_doc_chars=4000"])
    cfg = load_loop_config(None, [f"output={tmp_path}", "update.env.trainer_eval_windows=sampled"])
    assert cfg.update.env.trainer_eval_windows == "sampled"
