import numpy as np
import pytest

from policies.pool import (
    CLEAN,
    CORRUPTIONS,
    Sources,
    build_pool,
    chunk_lines,
    cipher_language,
    near_duplicate,
    token_shuffle,
)

CLEAN_DOCS = [f"Document {i} says the quick brown fox jumps over the lazy dog.\nLine two of {i}."
              for i in range(200)]


@pytest.mark.parametrize("noise", [0.0, 0.25, 0.5])
def test_noise_share_and_labels(noise):
    pool = build_pool(Sources(CLEAN_DOCS), n_docs=100, noise=noise, seed=1, heldout_docs=20)
    labels = np.array(pool.labels.to_pylist())
    assert len(pool) == 100
    assert (labels != CLEAN).mean() == pytest.approx(noise)
    if noise:
        assert set(labels[labels != CLEAN]) == set(CORRUPTIONS)


def test_heldout_never_in_pool():
    pool = build_pool(Sources(CLEAN_DOCS), n_docs=100, noise=0.5, seed=2, heldout_docs=30)
    assert len(pool.heldout) == 30
    assert not set(pool.heldout) & set(pool.texts.to_pylist())


def test_real_junk_kinds_are_used():
    src = Sources(CLEAN_DOCS, {"warc_spam": ["BUY NOW cheap pills " * 10]})
    pool = build_pool(src, n_docs=60, noise=0.5, seed=0, heldout_docs=10)
    labels = pool.labels.to_pylist()
    assert "warc_spam" in labels
    assert pool.texts.to_pylist()[labels.index("warc_spam")].startswith("BUY NOW")


def test_too_small_source_raises():
    with pytest.raises(ValueError, match="cannot fill"):
        build_pool(Sources(CLEAN_DOCS[:10]), n_docs=100, noise=0.0)


def test_corruptions_change_text_but_keep_words():
    rng = np.random.default_rng(0)
    text = CLEAN_DOCS[0]
    shuffled = token_shuffle(text, rng)
    assert sorted(shuffled.split()) == sorted(text.split()) and shuffled != text
    assert cipher_language(text, rng) != text
    assert len(cipher_language(text, rng)) == len(text)
    assert near_duplicate(" ".join([text] * 5), rng) != " ".join([text] * 5)


def test_chunk_lines():
    text = "\n".join(f"line {i} " + "x" * 30 for i in range(65))
    docs = chunk_lines(text, lines_per_doc=30, min_chars=200)
    assert len(docs) == 2  # the 5-line tail (~190 chars) is under min_chars
    assert docs[0].count("\n") == 29
