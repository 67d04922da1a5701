"""Gopher repetition rules: one doc per drop reason, pass-through, clean doc, n-gram helpers."""

from __future__ import annotations

import pyarrow as pa
import pytest

from curator.config import GopherRepetitionConfig
from curator.schema import DROPPED, KEPT
from curator.schema import doc_table as docs
from curator.stages.gopher_repetition import GopherRepetition
from curator.stages.text_columns import WordNgrams

S1 = "The farmers who settled near the river built houses of stone and wood."
S2 = "Merchants arrived later to trade goods in a square at the center of town."
S3 = "Children attended a school that every family in the valley helped to fund."
LONG = " ".join([S1, S2, S3])


def reason_of(text: str) -> str | None:
    out = GopherRepetition(GopherRepetitionConfig())(docs([text]))
    return out.column("reason")[0].as_py()


def test_clean_doc_passes() -> None:
    out = GopherRepetition(GopherRepetitionConfig())(docs(["\n".join([S1, S2, S3])]))
    assert out.column("decision").to_pylist() == [KEPT]
    assert out.column("gopher_dup_5gram_char_frac")[0].as_py() == 0.0
    assert out.column("gopher_top_2gram_char_frac").type == pa.float32()


@pytest.mark.parametrize(
    ("reason", "text"),
    [
        ("empty_text", ""),
        ("dup_para_frac_too_high", f"{S1}\n\n{S1}"),
        ("dup_para_char_frac_too_high", f"{LONG}\n\nA.\n\nB.\n\nC.\n\n{LONG}"),
        ("dup_line_frac_too_high", f"{S1}\n{S1}\n{S2}"),
        ("dup_line_char_frac_too_high", f"{LONG}\nA.\nB.\nC.\n{LONG}"),
        ("top_2gram_char_frac_too_high", " ".join(["big dog"] * 30)),
        ("dup_5gram_char_frac_too_high", f"{S1} {S2} {S3} {S1}"),
    ],
)
def test_each_reason(reason: str, text: str) -> None:
    assert reason_of(text) == reason


def test_ngram_counts_match_datatrove_definitions() -> None:
    words = pa.array([["a", "b", "a", "b", "a", "b", "c"], ["x", "y"]])
    ng = WordNgrams(words)
    # most common 2-gram "a b" x3 -> len("a b") * 3 = 9; doc 2: "x y" once -> 3
    assert ng.top_ngram_chars(2).tolist() == [9, 3]
    # 3-grams: "a b a" at 0 and 2 overlap: repeats start at 2 (aba) and 3 (bab) -> words 2..5
    assert ng.dup_ngram_chars(3).tolist() == [4, 0]


def test_non_alive_rows_pass_through() -> None:
    out = GopherRepetition(GopherRepetitionConfig())(docs(["", f"{S1}\n{S1}"], [DROPPED, DROPPED]))
    assert out.column("reason").to_pylist() == [None, None]
    assert out.column("gopher_dup_line_frac").null_count == 2


def _reference_top(words: list[str], n: int) -> int:
    """datatrove's find_top_duplicate: Counter over n-grams, first seen wins ties."""
    from collections import Counter

    grams = [" ".join(words[i:i + n]) for i in range(len(words) - n + 1)]
    if not grams:
        return 0
    gram, count = Counter(grams).most_common(1)[0]
    return len(gram) * count


def _reference_dup(words: list[str], n: int) -> int:
    """Chars of words covered by an n-gram seen earlier in the doc (the coverage mask)."""
    seen, covered = set(), [False] * len(words)
    for i in range(len(words) - n + 1):
        gram = tuple(words[i:i + n])
        if gram in seen:
            covered[i:i + n] = [True] * n
        seen.add(gram)
    return sum(len(w) for w, c in zip(words, covered, strict=True) if c)


def test_pruned_ngram_passes_equal_a_plain_count_on_random_repetitive_docs() -> None:
    """top (2..4) then dup (5..10), as the step calls them: each pass after the first looks
    only at the previous pass's repeated n-grams; the numbers must equal a full count."""
    import random

    rng = random.Random(7)
    vocab = [f"w{i}" for i in range(12)] + ["a", "bb", "ccc"]
    docs_words = []
    for _ in range(60):
        doc = [rng.choice(vocab) for _ in range(rng.randint(0, 80))]
        if doc and rng.random() < 0.5:  # a repeated passage
            lo = rng.randrange(len(doc))
            doc += doc[lo:lo + rng.randint(1, 15)]
        docs_words.append(doc)
    ng = WordNgrams(pa.array(docs_words, pa.list_(pa.string())))
    for n in (2, 3, 4):
        assert ng.top_ngram_chars(n).tolist() == [_reference_top(w, n) for w in docs_words], n
    for n in range(5, 11):
        assert ng.dup_ngram_chars(n).tolist() == [_reference_dup(w, n) for w in docs_words], n
    fresh = WordNgrams(pa.array(docs_words, pa.list_(pa.string())))  # no earlier pass to prune by
    assert fresh.dup_ngram_chars(7).tolist() == [_reference_dup(w, 7) for w in docs_words]


def test_shared_words_are_reused_only_for_the_same_text_and_a_subset_of_rows() -> None:
    import numpy as np
    import pyarrow.compute as pc

    from curator.stages.text_columns import SharedWords, alive_text, split_words
    from curator.step import set_column

    texts = [f"{S1} {i}" for i in range(5)]
    table = docs(texts)
    shared = SharedWords()
    alive, text = alive_text(table)
    first = shared(table, alive, text)
    assert first.equals(split_words(text))
    # fewer rows alive, same text column: the cached lists of those rows
    dropped = set_column(table, "decision", pa.array([KEPT, DROPPED, KEPT, DROPPED, KEPT]))
    alive2, text2 = alive_text(dropped)
    assert shared(dropped, alive2, text2).to_pylist() == [first[i].as_py() for i in (0, 2, 4)]
    assert shared._words is first  # not split again
    # the text rewritten (C4): split again
    rewritten = set_column(dropped, "text", pc.utf8_upper(dropped.column("text")))
    alive3, text3 = alive_text(rewritten)
    assert shared(rewritten, alive3, text3).equals(split_words(text3))
    assert np.array_equal(shared._rows, alive3)
