"""Gopher quality rules (Rae et al. 2021, appendix A), as datatrove 0.10.1 implements them.

Signals (null for rows not alive): gopher_n_words (int32: tokens with a non-punctuation char),
gopher_mean_word_length (float32, over those words), gopher_symbol_word_ratio (float32: the
larger of '#' and ellipsis counts over all tokens), gopher_bullet_lines_ratio,
gopher_ellipsis_lines_ratio, gopher_alpha_words_ratio (float32) and gopher_n_stop_words (int32:
distinct stop words present). Reasons, checked in datatrove's order: too_few_words,
too_many_words, mean_word_length_too_short, mean_word_length_too_long,
symbol_word_ratio_too_high, bullet_lines_ratio_too_high, ellipsis_lines_ratio_too_high,
alpha_words_ratio_too_low, too_few_stop_words.

Like datatrove, a token counts as a word for n_words / mean length only if it has a character
outside datatrove's PUNCTUATION_SET, while the symbol, alpha and stop-word rules use all tokens
(punctuation tokens included), and stop words match case-sensitively.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from curator.config import GopherQualityConfig
from curator.stages.text_columns import (
    PUNCTUATION,
    SharedWords,
    alive_text,
    char_class,
    char_lengths,
    list_lengths,
    list_parents,
    per_doc_count,
    per_doc_sum,
    safe_ratio,
    scatter,
    splitlines,
)
from curator.step import apply_drops, first_reason, set_column

_NOT_PUNCT = char_class(PUNCTUATION, negate=True)


class GopherQuality:
    name = "gopher_quality"

    def __init__(self, cfg: GopherQualityConfig, words: SharedWords | None = None):
        self.cfg = cfg
        self.words = words or SharedWords()  # shared by the steps of one pipeline
        self.stop_words = pa.array(sorted(set(cfg.stop_words)), pa.string())

    def __call__(self, table: pa.Table) -> pa.Table:
        alive, text = alive_text(table)
        n = len(text)
        cfg = self.cfg
        words = self.words(table, alive, text)
        flat = pc.list_flatten(words)
        parents = list_parents(words)
        n_tokens = list_lengths(words)
        is_word = pc.match_substring_regex(flat, _NOT_PUNCT).to_numpy(zero_copy_only=False)
        n_words = per_doc_count(is_word, parents, n)
        word_chars = per_doc_sum(char_lengths(flat) * is_word, parents, n)
        mean_len = safe_ratio(word_chars, n_words)

        n_hash = pc.count_substring(text, "#").to_numpy()
        n_ellipsis = (pc.count_substring(text, "...") + pc.count_substring(text, "…")).to_numpy()
        symbol_ratio = safe_ratio(np.maximum(n_hash, n_ellipsis), n_tokens)

        lines = splitlines(text)
        line_parents = list_parents(lines)
        n_lines = list_lengths(lines)
        flat_lines = pc.list_flatten(lines)
        left = pc.utf8_ltrim_whitespace(flat_lines)
        right = pc.utf8_rtrim_whitespace(flat_lines)
        bullet = pc.or_(pc.starts_with(left, "•"), pc.starts_with(left, "-"))
        ellipsis = pc.or_(pc.ends_with(right, "..."), pc.ends_with(right, "…"))
        bullet_ratio = safe_ratio(per_doc_count(bullet, line_parents, n), n_lines)
        ellipsis_ratio = safe_ratio(per_doc_count(ellipsis, line_parents, n), n_lines)

        has_alpha = pc.match_substring_regex(flat, r"\pL")
        alpha_ratio = safe_ratio(per_doc_count(has_alpha, parents, n), n_tokens)

        stop_idx = pc.index_in(flat, value_set=self.stop_words).to_numpy(zero_copy_only=False)
        is_stop = ~np.isnan(stop_idx.astype(np.float64))
        stop_key = parents[is_stop] * len(self.stop_words) + stop_idx[is_stop].astype(np.int64)
        distinct_stop = np.bincount(
            np.unique(stop_key) // max(len(self.stop_words), 1), minlength=n
        ).astype(np.int64)

        cols = {
            "gopher_n_words": scatter(n_words, alive, pa.int32()),
            "gopher_mean_word_length": scatter(mean_len, alive, pa.float32()),
            "gopher_symbol_word_ratio": scatter(symbol_ratio, alive, pa.float32()),
            "gopher_bullet_lines_ratio": scatter(bullet_ratio, alive, pa.float32()),
            "gopher_ellipsis_lines_ratio": scatter(ellipsis_ratio, alive, pa.float32()),
            "gopher_alpha_words_ratio": scatter(alpha_ratio, alive, pa.float32()),
            "gopher_n_stop_words": scatter(distinct_stop, alive, pa.int32()),
        }
        for name, col in cols.items():
            table = set_column(table, name, col)
        # Thresholds compare the float64 values (the float32 columns are for storage only).
        f64 = {
            "n_words": scatter(n_words, alive, pa.int64()),
            "mean": scatter(mean_len, alive, pa.float64()),
            "symbol": scatter(symbol_ratio, alive, pa.float64()),
            "bullet": scatter(bullet_ratio, alive, pa.float64()),
            "ellipsis": scatter(ellipsis_ratio, alive, pa.float64()),
            "alpha": scatter(alpha_ratio, alive, pa.float64()),
            "stop": scatter(distinct_stop, alive, pa.int64()),
        }
        conditions = [
            ("too_few_words", pc.less(f64["n_words"], cfg.min_words)),
            ("too_many_words", pc.greater(f64["n_words"], cfg.max_words)),
            ("mean_word_length_too_short", pc.less(f64["mean"], cfg.min_mean_word_length)),
            ("mean_word_length_too_long", pc.greater(f64["mean"], cfg.max_mean_word_length)),
            ("symbol_word_ratio_too_high", pc.greater(f64["symbol"], cfg.max_symbol_word_ratio)),
            ("bullet_lines_ratio_too_high", pc.greater(f64["bullet"], cfg.max_bullet_lines_ratio)),
            (
                "ellipsis_lines_ratio_too_high",
                pc.greater(f64["ellipsis"], cfg.max_ellipsis_lines_ratio),
            ),
            ("alpha_words_ratio_too_low", pc.less(f64["alpha"], cfg.min_alpha_words_ratio)),
            ("too_few_stop_words", pc.less(f64["stop"], cfg.min_stop_words)),
        ]
        return apply_drops(table, first_reason(conditions, table.num_rows))
