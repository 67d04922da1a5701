"""Normalize: NFC, control characters, whitespace, n_chars; non-alive rows untouched."""

from __future__ import annotations

import random
import sys
import unicodedata

import numpy as np
import polars as pl

from curator.config import NormalizeConfig
from curator.schema import DROPPED, KEPT
from curator.schema import doc_table as docs
from curator.stages.normalize import _SPACES_NOT_ASCII, Normalize, rewrite_rules
from curator.stages.regex_rewrite import rust_pattern


def norm(text: str, **cfg: bool) -> str:
    return Normalize(NormalizeConfig(**cfg))(docs([text])).column("text")[0].as_py()


def test_nfc_composes_accents() -> None:
    assert norm("cafe\u0301") == "caf\u00e9"


def test_control_chars_removed_but_tab_and_newline_kept() -> None:
    assert norm("a\x00b\x07c\td\ne\x1bf\u200bg", collapse_whitespace=False) == "abc\td\nefg"


def test_line_ends_and_whitespace() -> None:
    text = "  Title\r\n\r\n\r\n\r\nBody  with\u00a0\tspaces  \rnext line \n\n\n"
    assert norm(text) == "Title\n\nBody with spaces\nnext line"


def test_n_chars_recomputed_and_dead_rows_untouched() -> None:
    table = docs(["  a  b  ", "  x  ", None], [KEPT, DROPPED, "quarantined"])
    out = Normalize(NormalizeConfig())(table)
    assert out.column("text").to_pylist() == ["a b", "  x  ", None]
    assert out.column("n_chars").to_pylist() == [3, 5, 0]
    assert out.column("decision").to_pylist() == [KEPT, DROPPED, "quarantined"]


def test_space_list_is_unicode_zs_without_the_ascii_space() -> None:
    """The explicit class stands for `[\\p{Zs}\\t]` minus " "; a Unicode update that adds a
    space separator must fail here, not silently leave it uncollapsed."""
    chars = [chr(c) for c in range(sys.maxunicode + 1) if not 0xD800 <= c <= 0xDFFF]
    zs = {c for c in chars if unicodedata.category(c) == "Zs"}
    listed = pl.Series(chars).str.contains(rust_pattern(f"^[{_SPACES_NOT_ASCII}]$"))
    assert {chars[i] for i in np.flatnonzero(listed.to_numpy())} == (zs - {" "}) | {"\t"}


def test_whitespace_rules_match_the_plain_formulation() -> None:
    """The rules that match only where text changes give what the plain rules (`[\\p{Zs}\\t]+`
    -> " ", then `" ?\\n ?"` -> "\\n") give, on random runs of every kind of space and break."""
    rng = random.Random(7)
    alphabet = [" ", " ", "\t", "\u00a0", "\u2009", "\u3000", "\n", "\n", "a", "b", "c"]
    texts = ["".join(rng.choice(alphabet) for _ in range(rng.randrange(0, 40)))
             for _ in range(5000)]
    plain = (pl.Series(texts)
             .str.replace_all(r"[\p{Zs}\t]+", " ")
             .str.replace_all(r" ?\n ?", "\n"))
    ours = pl.Series(texts)
    for pattern, replacement in rewrite_rules(NormalizeConfig(strip_control=False))[1:3]:
        ours = ours.str.replace_all(rust_pattern(pattern), replacement)
    assert ours.to_list() == plain.to_list()
