"""The polars (Rust regex) rewrite chain gives exactly what Arrow's RE2 chain gave."""

from __future__ import annotations

import random

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from curator.config import NormalizeConfig
from curator.stages.normalize import rewrite_rules
from curator.stages.regex_rewrite import rewrite_all, rust_pattern, rust_replacement
from curator.stages.text_columns import _TOKEN_REWRITES

_NORMALIZE_RULES = rewrite_rules(NormalizeConfig())  # every rule on by default

# Pieces where the engines' defaults differ (Unicode whitespace, vertical tab, NEL), plus
# the constructs the word rules target: clitics, abbreviations, dashes, ellipses, symbols.
_PIECES = [
    "don't", "Don’t", "it's", "they’re", "cannot", "dont", "U.S.", "a.m.", "Mr.", "Dr. No",
    "E.\u00a0McKenney", "x\u2003y", "tab\tsep", "v\x0bt", "nel\x85line", "para\u2029graph",
    "1,000", "3.5", "2-3", "well-known", "a—b", "wait...what", "(quoted)", "\"q\"", "$5",
    "50%", "C:\\path", "a/b", "<tag>", "x=y", "!!!", "?!", "…", "\r\n", "\n\n\n\n", " \n ",
    "\u200bzero", "\ufeffbom", "日本語", "naïve", "ﬁ", "\U0001F600", "\ue001private", "$1 \\1",
]


def _arrow_chain(text: pa.Array, rules: list[tuple[str, str]]) -> pa.Array:
    for pattern, replacement in rules:
        text = pc.replace_substring_regex(text, pattern=pattern, replacement=replacement)
    return text


def _random_docs(n: int, seed: int) -> list[str | None]:
    rng = random.Random(seed)
    seps = [" ", " ", " ", "\n", "\t", "", "\u00a0", "  "]
    docs: list[str | None] = []
    for _ in range(n):
        k = rng.randint(0, 30)
        docs.append("".join(rng.choice(_PIECES) + rng.choice(seps) for _ in range(k)))
    docs[3] = None
    return docs


@pytest.mark.parametrize("rules", [_TOKEN_REWRITES, _NORMALIZE_RULES], ids=["words", "normalize"])
def test_rewrite_chain_equals_arrow_re2_chain(rules: list[tuple[str, str]]) -> None:
    text = pa.array(_random_docs(400, seed=1), pa.string())
    assert rewrite_all(text, rules).equals(_arrow_chain(text, rules))


def test_re2_space_class_is_ascii_whitespace_in_the_translation() -> None:
    # NBSP is not \s in RE2: the edge-punctuation rule must not split "E." before it
    assert rust_pattern(r"(\s|$)") == "([\\t\\n\\f\\r ]|$)"
    assert rust_pattern(r"[^\pL\s\-]") == "[^\\pL\\t\\n\\f\\r \\-]"
    text = pa.array(["E.\u00a0McKenney"])
    rule = [(r"(\pL)(\.)(\s|$)", "\\1 \\2\\3")]
    assert rewrite_all(text, rule).to_pylist() == ["E.\u00a0McKenney"]


def test_replacement_backreferences_and_literal_dollar() -> None:
    assert rust_replacement("\\1 \\2$") == "${1} ${2}$$"
    text = pa.array(["ab"])
    assert rewrite_all(text, [("(a)(b)", "\\2$\\1")]).to_pylist() == ["b$a"]


@pytest.mark.parametrize("cls", ["\\d", "\\w", "\\b", "\\S"])
def test_classes_whose_meaning_differs_are_refused(cls: str) -> None:
    with pytest.raises(ValueError, match="spell the character class out"):
        rust_pattern(f"x{cls}")


def test_empty_and_chunked_inputs() -> None:
    assert rewrite_all(pa.array([], pa.string()), _NORMALIZE_RULES).to_pylist() == []
    chunked = pa.chunked_array([["a\r\nb"], ["c\u2028d"]])
    assert rewrite_all(chunked, _NORMALIZE_RULES).to_pylist() == ["a\nb", "c\nd"]


def test_both_order_punctuation_rule_equals_the_four_one_order_passes() -> None:
    """The word rules split adjacent punctuation with one rule for both orders, run twice;
    the four passes it replaced (each order twice) give the same text on random runs of
    punctuation that mix run characters ('.' '-') with the others."""
    from curator.stages.text_columns import _NOT_RUN, _PUNCT

    one_order = [(rf"({_NOT_RUN})({_PUNCT})", "\\1 \\2")] * 2
    one_order += [(rf"({_PUNCT})({_NOT_RUN})", "\\1 \\2")] * 2
    both = [rule for rule in _TOKEN_REWRITES if rule[1] == "\\1\\3 \\2\\4"]
    assert len(both) == 2
    rng = random.Random(5)
    alphabet = list(".-.-!?,;:()\"'…—$%") + ["a", " ", "\ue001"]
    text = pa.array(["".join(rng.choice(alphabet) for _ in range(rng.randrange(0, 25)))
                     for _ in range(4000)])
    assert rewrite_all(text, both).equals(rewrite_all(text, one_order))
    assert rewrite_all(text, both).equals(_arrow_chain(text, one_order))
