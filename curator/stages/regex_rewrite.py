"""Chains of regex rewrites over a string column, written in RE2 syntax, run by polars.

The rule steps state their patterns in RE2 (Arrow's regex engine, used for matching and
splitting). For a chain of global replacements polars' engine (Rust's `regex` crate) is faster:
on the whole-pipeline benchmark's 25 MB corpus the word split's chain took 1.9 CPU-s instead
of 3.2 and normalization's 0.5 instead of 0.9, with identical output. The two engines differ
in syntax only where this module translates:
- RE2's `\\s` is ASCII whitespace `[\\t\\n\\f\\r ]`; Rust's is Unicode whitespace. Translated to
  the explicit class, so NBSP stays inside a token as before.
- Replacement backreferences: RE2 `\\1`, Rust `${1}`; a literal `$` doubles in Rust.
- `\\d \\w \\b` (and their negations, and `\\S`) are Unicode-aware in Rust but ASCII in RE2:
  refused, so a new pattern cannot silently change meaning.
Unicode classes (`\\pL`) come from each engine's own Unicode tables; a character new in one
version could still be classed differently. tests/stages/test_regex_rewrite.py checks the two
engines agree on mixed text built to hit the differences (Unicode spaces, clitics, punctuation
runs, backreferences); the 25 MB benchmark corpus gave identical words and normalized text.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence

import polars as pl
import pyarrow as pa

_RE2_SPACE = r"\t\n\f\r "
_UNICODE_AWARE_IN_RUST = set("dDwWbBS")


@functools.lru_cache(maxsize=256)
def rust_pattern(pattern: str) -> str:
    """An RE2 pattern -> the same pattern for Rust's regex crate."""
    out: list[str] = []
    depth = 0  # inside a character class
    i = 0
    while i < len(pattern):
        c = pattern[i]
        if c == "\\" and i + 1 < len(pattern):
            nxt = pattern[i + 1]
            if nxt == "s":
                out.append(_RE2_SPACE if depth else f"[{_RE2_SPACE}]")
            elif nxt in _UNICODE_AWARE_IN_RUST:
                raise ValueError(
                    f"regex {pattern!r}: \\{nxt} means different things in RE2 and Rust's regex; "
                    "spell the character class out"
                )
            else:
                out.append(pattern[i : i + 2])
            i += 2
            continue
        if c == "[":
            depth += 1
        elif c == "]" and depth:
            depth -= 1
        out.append(c)
        i += 1
    return "".join(out)


@functools.lru_cache(maxsize=256)
def rust_replacement(replacement: str) -> str:
    """An RE2 replacement (`\\1`, `\\\\`) -> Rust's (`${1}`, `$$` for a literal dollar)."""

    def one(m: re.Match[str]) -> str:
        tok = m.group(0)
        if tok == "$":
            return "$$"
        if tok == "\\\\":
            return "\\"
        return "${" + tok[1] + "}"

    return re.sub(r"\\\d|\\\\|\$", one, replacement)


def rewrite_all(text: pa.Array | pa.ChunkedArray, rules: Sequence[tuple[str, str]]) -> pa.Array:
    """Apply each (RE2 pattern, RE2 replacement) as a global replace, in order; returns a
    string array (nulls stay null). One conversion to polars and back for the whole chain."""
    if isinstance(text, pa.ChunkedArray):
        text = text.combine_chunks() if text.num_chunks else pa.array([], pa.string())
    if not rules or len(text) == 0:
        return text.cast(pa.string())
    series = pl.from_arrow(text)
    assert isinstance(series, pl.Series)
    for pattern, replacement in rules:
        series = series.str.replace_all(rust_pattern(pattern), rust_replacement(replacement))
    return series.to_arrow().cast(pa.string())
