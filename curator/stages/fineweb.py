"""FineWeb quality rules (Penedo et al. 2024) as datatrove 0.10.1's FineWebQualityFilter.

Over the non-blank lines of text.split("\\n"): the fraction ending in terminal punctuation
(datatrove's TERMINAL_PUNCTUATION set) must reach `min_line_punct_ratio`; the fraction of lines
of at most `short_line_chars` chars must not exceed `max_short_line_ratio`; chars of lines that
repeat an earlier line over the text's non-newline chars must not exceed `max_char_dup_ratio`;
newlines per word token must not exceed `max_newline_word_ratio` (list-like pages).

Signals (float32): fineweb_line_punct_ratio, fineweb_short_line_ratio, fineweb_char_dup_ratio,
fineweb_newline_word_ratio. Reasons: empty_text, line_punct_ratio_too_low,
short_line_ratio_too_high, char_dup_ratio_too_high, newline_word_ratio_too_high.
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

from curator.config import FineWebConfig
from curator.stages.text_columns import (
    TERMINAL_PUNCTUATION,
    SharedWords,
    alive_text,
    char_class,
    char_lengths,
    dup_counts,
    list_lengths,
    list_parents,
    per_doc_count,
    safe_ratio,
    scatter,
    split_on,
)
from curator.step import apply_drops, first_reason, set_column

_ENDS_TERMINAL = char_class(TERMINAL_PUNCTUATION) + "$"


class FineWebQuality:
    name = "fineweb"

    def __init__(self, cfg: FineWebConfig, words: SharedWords | None = None):
        self.cfg = cfg
        self.words = words or SharedWords()  # shared by the steps of one pipeline

    def __call__(self, table: pa.Table) -> pa.Table:
        alive, text = alive_text(table)
        n = len(text)
        cfg = self.cfg
        lines = split_on(text, "\n")
        flat = pc.list_flatten(lines)
        nonblank = pc.not_equal(pc.utf8_trim_whitespace(flat), "")
        line = pc.filter(flat, nonblank)
        parents = list_parents(lines)[nonblank.to_numpy(zero_copy_only=False)]
        n_lines = per_doc_count(nonblank, list_parents(lines), n)

        punct = safe_ratio(
            per_doc_count(pc.match_substring_regex(line, _ENDS_TERMINAL), parents, n), n_lines
        )
        short = pc.less_equal(pc.utf8_length(line), cfg.short_line_chars)
        short_ratio = safe_ratio(per_doc_count(short, parents, n), n_lines)
        _, dup_chars = dup_counts(line, parents, n)
        n_newlines = pc.count_substring(text, "\n").to_numpy()
        char_dup = safe_ratio(dup_chars, char_lengths(text) - n_newlines)
        newline_ratio = safe_ratio(n_newlines, list_lengths(self.words(table, alive, text)))

        signals = {
            "fineweb_line_punct_ratio": punct,
            "fineweb_short_line_ratio": short_ratio,
            "fineweb_char_dup_ratio": char_dup,
            "fineweb_newline_word_ratio": newline_ratio,
        }
        for name, values in signals.items():
            table = set_column(table, name, scatter(values, alive, pa.float32()))
        f64 = {k: scatter(v, alive, pa.float64()) for k, v in signals.items()}
        conditions = [
            ("empty_text", scatter(pa.array(n_lines == 0), alive, pa.bool_())),
            (
                "line_punct_ratio_too_low",
                pc.less(f64["fineweb_line_punct_ratio"], cfg.min_line_punct_ratio),
            ),
            (
                "short_line_ratio_too_high",
                pc.greater(f64["fineweb_short_line_ratio"], cfg.max_short_line_ratio),
            ),
            (
                "char_dup_ratio_too_high",
                pc.greater(f64["fineweb_char_dup_ratio"], cfg.max_char_dup_ratio),
            ),
            (
                "newline_word_ratio_too_high",
                pc.greater(f64["fineweb_newline_word_ratio"], cfg.max_newline_word_ratio),
            ),
        ]
        return apply_drops(table, first_reason(conditions, table.num_rows))
