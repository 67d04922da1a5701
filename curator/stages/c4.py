"""C4 rules (Raffel et al. 2020) as datatrove 0.10.1's C4QualityFilter applies them.

Line level (each line stripped; checked in this order, a line failing one is removed): a word
longer than `max_word_length`; wiki citations ([1], [edit], [citation needed]) are cut; no
terminal punctuation (. ? ! " ') or ending in '...'; fewer than `min_words_per_line` words
(counted before the citation cut, as datatrove does); mentions 'javascript'; cookie / terms-of-use
policy phrases. Document level, looking only at lines that survived the checks before them:
'lorem ipsum' -> `lorem_ipsum`, a '{' -> `curly_bracket` (whichever line comes first decides,
as datatrove returns at the first), fewer than `min_sentences` sentences over the kept lines ->
`too_few_sentences`. Not in C4: more than `max_removed_char_fraction` of the document's
characters in removed lines -> `too_many_lines_removed`. The line rules were written for lines
of extracted HTML; on text hard-wrapped mid-sentence (books, plain-text mail, man pages) they
delete most lines, and the rewrite would ship what is left, fragments of sentences, as a
document. Nav menus and cookie banners are many short lines, so on web text the removed
fraction by characters stays low where the fraction by lines does not.

Decision: with `rewrite_text` (default, as C4 and datatrove do) a document that passes has its
text replaced by its kept lines joined with "\\n", and `n_chars` recomputed; dedup and the
tokenizer then see the cleaned text (no nav menus, cookie banners, "Share this" lines). Dropped
documents keep their original text for the manifest. `rewrite_text: false` turns C4 into a pure
document filter (same drop decisions, text untouched).

Signals: c4_n_sentences (int32), c4_n_lines_removed (int32), c4_removed_char_fraction (float32:
characters of removed lines over characters of all lines, each line stripped; null for a blank
document). Sentence counting differs from
datatrove (spaCy's sentencizer): a sentence ends at a run of . ! ? (plus closing quotes and
brackets) followed by whitespace, so "Mr. Smith" counts two sentences where spaCy counts one;
only documents with about 5 sentences can flip.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from curator.config import C4Config
from curator.stages.text_columns import (
    alive_text,
    char_lengths,
    list_lengths,
    list_parents,
    per_doc_count,
    per_doc_sum,
    safe_ratio,
    scatter,
    splitlines,
)
from curator.step import alive_mask, apply_drops, first_reason, set_column

_CITATION = r"\[\d*\]|\[edit\]|\[citation needed\]"
_TERMINAL = r"[.?!\"']$"
_POLICY = [
    "terms of use",
    "privacy policy",
    "cookie policy",
    "uses cookies",
    "use of cookies",
    "use cookies",
]
_SENTENCE_END = r"[.!?]+[\"'”’)\]]*\s+[^\s.!?]"


class C4Quality:
    name = "c4"

    def __init__(self, cfg: C4Config):
        self.cfg = cfg

    def __call__(self, table: pa.Table) -> pa.Table:
        alive, text = alive_text(table)
        n = len(text)
        cfg = self.cfg
        lines = splitlines(text)
        parents = list_parents(lines)
        line = pc.utf8_trim_whitespace(pc.list_flatten(lines))
        words = pc.utf8_split_whitespace(line)
        line_chars = char_lengths(line)  # before the citation cut: what the source held
        n_words = np.where(line_chars == 0, 0, list_lengths(words))

        reach = np.ones(len(line), dtype=bool)  # line still in the running
        if cfg.max_word_length > 0:
            long_word = pc.greater(pc.utf8_length(pc.list_flatten(words)), cfg.max_word_length)
            reach &= per_doc_count(long_word, list_parents(words), len(line)) == 0
        if cfg.remove_citations:
            line = pc.replace_substring_regex(line, pattern=_CITATION, replacement="")
        if cfg.drop_lines_without_terminal_punct:
            ok = pc.and_(
                pc.match_substring_regex(line, _TERMINAL), pc.invert(pc.ends_with(line, "..."))
            )
            reach &= _np(ok)
        reach &= n_words >= cfg.min_words_per_line
        lower = pc.utf8_lower(line)
        lorem_hit = (
            reach & _np(pc.match_substring(lower, "lorem ipsum"))
            if cfg.drop_lorem_ipsum
            else np.zeros(len(line), bool)
        )
        if cfg.drop_javascript:
            reach &= ~_np(pc.match_substring(lower, "javascript"))
        curly_hit = (
            reach & _np(pc.match_substring(line, "{"))
            if cfg.drop_curly_bracket
            else np.zeros(len(line), bool)
        )
        if cfg.drop_policy:
            policy = np.zeros(len(line), dtype=bool)
            for phrase in _POLICY:
                policy |= _np(pc.match_substring(lower, phrase))
            reach &= ~policy
        kept = reach

        # first lorem/curly line decides which doc-level reason applies
        idx = np.arange(len(line))
        first_lorem = _first_index(idx[lorem_hit], parents[lorem_hit], n)
        first_curly = _first_index(idx[curly_hit], parents[curly_hit], n)
        sentences = pc.count_substring_regex(line, _SENTENCE_END).to_numpy() + 1
        n_sentences = per_doc_sum(sentences * kept, parents, n).astype(np.int64)
        n_removed = per_doc_count(~kept, parents, n)
        removed_frac = safe_ratio(
            per_doc_sum(line_chars * ~kept, parents, n), per_doc_sum(line_chars, parents, n)
        )

        lorem = first_lorem < first_curly
        curly = first_curly < first_lorem
        few = n_sentences < cfg.min_sentences
        table = set_column(table, "c4_n_sentences", scatter(n_sentences, alive, pa.int32()))
        table = set_column(table, "c4_n_lines_removed", scatter(n_removed, alive, pa.int32()))
        table = set_column(
            table, "c4_removed_char_fraction", scatter(removed_frac, alive, pa.float32())
        )
        # compared in float64 (the float32 column is for storage); C4's own reasons first, so
        # funnels that had them keep them
        removed = scatter(removed_frac, alive, pa.float64())
        gutted = pc.greater(removed, cfg.max_removed_char_fraction)
        conditions = [
            ("lorem_ipsum", scatter(lorem, alive, pa.bool_())),
            ("curly_bracket", scatter(curly, alive, pa.bool_())),
            ("too_few_sentences", scatter(few, alive, pa.bool_())),
            ("too_many_lines_removed", gutted),
        ]
        table = apply_drops(table, first_reason(conditions, table.num_rows))
        if cfg.rewrite_text:
            table = self._rewrite(table, alive, line, kept, parents, n)
        return table

    @staticmethod
    def _rewrite(
        table: pa.Table,
        alive: np.ndarray,
        line: pa.Array,
        kept: np.ndarray,
        parents: np.ndarray,
        n: int,
    ) -> pa.Table:
        """Alive survivors get their kept lines, joined with \\n, as text."""
        counts = np.bincount(parents[kept], minlength=n)
        offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int32)
        kept_lines = pa.ListArray.from_arrays(pa.array(offsets), pc.filter(line, pa.array(kept)))
        new_text = pc.utf8_trim_whitespace(pc.binary_join(kept_lines, "\n"))
        still = alive_mask(table)  # alive after this step's drops
        new_full = scatter(new_text, alive, pa.string())
        text = pc.if_else(still, new_full, table.column("text"))
        table = set_column(table, "text", text)
        n_chars = pc.if_else(still, pc.utf8_length(text).cast(pa.int64()), table.column("n_chars"))
        return set_column(table, "n_chars", n_chars)


def _np(mask: pa.Array | pa.ChunkedArray) -> np.ndarray:
    return np.asarray(pc.fill_null(mask, False).to_numpy(zero_copy_only=False), dtype=bool)


def _first_index(idx: np.ndarray, parents: np.ndarray, n: int) -> np.ndarray:
    """Smallest line index per doc among hits; a large sentinel where a doc has none."""
    first = np.full(n, np.iinfo(np.int64).max, dtype=np.int64)
    np.minimum.at(first, parents, idx)
    return first
