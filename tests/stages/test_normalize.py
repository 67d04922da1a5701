"""Normalize: NFC, control characters, whitespace, n_chars; non-alive rows untouched."""

from __future__ import annotations

from curator.config import NormalizeConfig
from curator.schema import DROPPED, KEPT
from curator.schema import doc_table as docs
from curator.stages.normalize import Normalize


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
