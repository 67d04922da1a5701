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
