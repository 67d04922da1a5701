"""Gopher repetition rules (Rae et al. 2021, table A1), as datatrove 0.10.1 defines them.

Signals (float32, null for rows not alive): gopher_dup_para_frac, gopher_dup_para_char_frac,
gopher_dup_line_frac, gopher_dup_line_char_frac, gopher_top_{n}gram_char_frac (n in
max_top_ngram_char_frac) and gopher_dup_{n}gram_char_frac (n in max_dup_ngram_char_frac).
Reasons, in datatrove's order: empty_text, dup_para_frac_too_high,
dup_para_char_frac_too_high, dup_line_frac_too_high, dup_line_char_frac_too_high,
top_{n}gram_char_frac_too_high, dup_{n}gram_char_frac_too_high.

Definitions (datatrove's): paragraphs = text.strip() split on \\n{2,}; lines = text split on
\\n+; "duplicate" = equal to an earlier element of the same doc, counted with its length;
character fractions divide by len(text). top n-gram = the most frequent word n-gram (ties:
first seen) times its length joined with spaces. dup n-gram chars: see WordNgrams.dup_ngram_chars
(coverage mask instead of datatrove's greedy skip-ahead walk).
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

from curator.config import GopherRepetitionConfig
from curator.stages.text_columns import (
    SharedWords,
    WordNgrams,
    alive_text,
    char_lengths,
    dup_counts,
    list_lengths,
    list_parents,
    safe_ratio,
    scatter,
    split_on,
)
from curator.step import apply_drops, first_reason, set_column


class GopherRepetition:
    name = "gopher_repetition"

    def __init__(self, cfg: GopherRepetitionConfig, words: SharedWords | None = None):
        self.cfg = cfg
        self.words = words or SharedWords()  # shared by the steps of one pipeline

    def __call__(self, table: pa.Table) -> pa.Table:
        alive, text = alive_text(table)
        n = len(text)
        cfg = self.cfg
        n_chars = char_lengths(text)
        signals: dict[str, pa.Array] = {}
        limits: list[tuple[str, str, float]] = []  # (signal, reason, max)

        paras = split_on(pc.utf8_trim_whitespace(text), r"\n{2,}", regex=True)
        para_dup, para_dup_chars = dup_counts(pc.list_flatten(paras), list_parents(paras), n)
        signals["gopher_dup_para_frac"] = safe_ratio(para_dup, list_lengths(paras))
        signals["gopher_dup_para_char_frac"] = safe_ratio(para_dup_chars, n_chars)
        lines = split_on(text, r"\n+", regex=True)
        line_dup, line_dup_chars = dup_counts(pc.list_flatten(lines), list_parents(lines), n)
        signals["gopher_dup_line_frac"] = safe_ratio(line_dup, list_lengths(lines))
        signals["gopher_dup_line_char_frac"] = safe_ratio(line_dup_chars, n_chars)
        for unit in ("para", "line"):
            limits.append(
                (
                    f"gopher_dup_{unit}_frac",
                    f"dup_{unit}_frac_too_high",
                    getattr(cfg, f"max_dup_{unit}_frac"),
                )
            )
            limits.append(
                (
                    f"gopher_dup_{unit}_char_frac",
                    f"dup_{unit}_char_frac_too_high",
                    getattr(cfg, f"max_dup_{unit}_char_frac"),
                )
            )

        ngrams = WordNgrams(self.words(table, alive, text))
        for k, max_frac in sorted(cfg.max_top_ngram_char_frac.items()):
            name = f"gopher_top_{k}gram_char_frac"
            signals[name] = safe_ratio(ngrams.top_ngram_chars(k), n_chars)
            limits.append((name, f"top_{k}gram_char_frac_too_high", max_frac))
        for k, max_frac in sorted(cfg.max_dup_ngram_char_frac.items()):
            name = f"gopher_dup_{k}gram_char_frac"
            signals[name] = safe_ratio(ngrams.dup_ngram_chars(k), n_chars)
            limits.append((name, f"dup_{k}gram_char_frac_too_high", max_frac))

        empty = scatter(pa.array(n_chars == 0), alive, pa.bool_())
        conditions = [("empty_text", empty)]
        for signal, reason, max_frac in limits:
            value = scatter(signals[signal], alive, pa.float64())
            conditions.append((reason, pc.greater(value, max_frac)))
        for name, values in signals.items():
            table = set_column(table, name, scatter(values, alive, pa.float32()))
        return apply_drops(table, first_reason(conditions, table.num_rows))
