"""Language identification with py3langid's bundled model, batched across documents.

py3langid's `classify` walks a byte-level DFA in a Python loop per byte of one document. Here
the same model arrays (DFA transitions, per-state feature ids, naive-Bayes tables) are driven
for the whole batch at once: one numpy step per byte *position* advances every document's DFA
state together, feature counts are gathered per document, and the naive-Bayes scores come from
one gather-and-sum per block of features. Scores match `LanguageIdentifier(norm_probs=True)
.classify` on the same (truncated) text up to float32 summation order.

Adds `lang` (string) and `lang_score` (float32, the top language's probability); drops alive
rows as `wrong_language` (top language not in `keep`) or `language_score_too_low`.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from curator.config import LanguageConfig
from curator.stages.text_columns import scatter
from curator.step import alive_mask, apply_drops, first_reason, set_column

_SCORE_BLOCK = 32  # documents per scoring matmul (measured: 16-64 alike, 256+ slower)


class LanguageModel:
    """py3langid's bundled model as numpy arrays, classifying many texts per call."""

    def __init__(self) -> None:
        from py3langid.langid import MODEL_FILE, LanguageIdentifier

        ident = LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)
        self.classes = np.array(ident.nb_classes, dtype=object)
        # float32 once (57 MB): gathering float16 rows and converting per batch dominated the time
        self.ptc = np.asarray(ident.nb_ptc, dtype=np.float32)  # (n_features, n_classes)
        self.pc = np.asarray(ident.nb_pc, dtype=np.float32)
        self.nextmove = np.frombuffer(ident.tk_nextmove, dtype=_np_type(ident.tk_nextmove))
        self.rowbase = (
            np.frombuffer(ident.tk_row, dtype=_np_type(ident.tk_row)).astype(np.int64) << 8
        )
        self.output = np.asarray(ident.tk_output, dtype=np.int64)
        self.alias_pairs = list(ident._alias_pairs)  # (first, dupe) columns of one label

    def classify(self, text: pa.Array | pa.ChunkedArray) -> tuple[pa.Array, np.ndarray]:
        """Texts -> (top language code per text, its probability as float32)."""
        text = _combine(text)
        n = len(text)
        if n == 0:
            return pa.array([], pa.string()), np.zeros(0, np.float32)
        # py3langid lowercases all-uppercase input and NFC-normalizes before encoding.
        text = pc.if_else(pc.utf8_is_upper(text), pc.utf8_lower(text), text)
        text = _combine(pc.fill_null(pc.utf8_normalize(text, form="NFC"), ""))
        offsets = np.frombuffer(text.buffers()[1], dtype=np.int32)[
            text.offset : text.offset + n + 1
        ].astype(np.int64)
        data = np.frombuffer(text.buffers()[2], dtype=np.uint8) if text.buffers()[2] else None
        n_bytes = np.diff(offsets)
        docs, feats = self._walk(data, offsets[:-1], n_bytes)
        scores = self._score(docs, feats, n)
        has_features = np.bincount(docs, minlength=n) > 0
        scores[~has_features] = 0.0  # norm_probs: featureless text -> uniform, as py3langid
        scores *= (1.0 / np.sqrt(np.maximum(n_bytes, 1)))[:, None].astype(np.float32)
        scores = np.exp(scores - scores.max(axis=1, keepdims=True))
        scores /= scores.sum(axis=1, keepdims=True)
        for i, j in self.alias_pairs:
            scores[:, i] += scores[:, j]
            scores[:, j] = 0.0
        top = scores.argmax(axis=1)
        lang = pa.array(self.classes[top].tolist(), pa.string())
        return lang, scores[np.arange(n), top].astype(np.float32)

    def _walk(
        self, data: np.ndarray | None, starts: np.ndarray, n_bytes: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Advance every document's DFA one byte position at a time; emitted (doc, feature)."""
        n, width = len(starts), int(n_bytes.max(initial=0))
        if data is None or width == 0:
            return np.zeros(0, np.int64), np.zeros(0, np.int64)
        order = np.argsort(-n_bytes, kind="stable")  # longest first: active docs are a prefix
        lengths = n_bytes[order]
        doc_of_byte = np.repeat(np.arange(n), lengths)
        pos_of_byte = np.arange(len(doc_of_byte)) - np.repeat(np.cumsum(lengths) - lengths, lengths)
        src = np.repeat(starts[order], lengths) + pos_of_byte
        # Bytes as a (position, doc) matrix so step t reads one contiguous row. Built doc-major
        # (each document's bytes land contiguously) and transposed in one blocked copy: writing
        # the (position, doc) layout byte by byte strides across rows and cost 10x the walk.
        flat_at = doc_of_byte * width + pos_of_byte
        by_doc = np.zeros((n, width), dtype=np.uint8)
        by_doc.reshape(-1)[flat_at] = data[src]
        grid = np.ascontiguousarray(by_doc.T)
        states = np.zeros((width, n), dtype=np.int32)  # DFA state ids fit int32
        state = np.zeros(n, dtype=np.int64)
        active = np.searchsorted(-lengths, -np.arange(width), side="left")  # docs with > t bytes
        for t, k in enumerate(active):
            state[:k] = self.nextmove[self.rowbase[state[:k]] + grid[t, :k]]
            states[t, :k] = state[:k]
        feats = self.output[np.ascontiguousarray(states.T).reshape(-1)[flat_at]]
        hit = feats >= 0
        return order[doc_of_byte[hit]], feats[hit]

    def _score(self, docs: np.ndarray, feats: np.ndarray, n: int) -> np.ndarray:
        """Naive-Bayes log scores: sum_f log1p(count_f) * ptc[f] + pc per doc.

        Per block of `_SCORE_BLOCK` documents: their feature counts as a dense (docs x distinct
        features of the block) matrix, times those features' rows of ptc in one matrix product.
        Gathering a ptc row per (doc, feature) pair instead moved ~400 bytes per pair and cost
        3x more."""
        scores = np.tile(self.pc, (n, 1))
        if len(docs) == 0:
            return scores
        order = np.argsort(docs, kind="stable")
        docs, feats = docs[order], feats[order]
        block = _SCORE_BLOCK
        bounds = np.searchsorted(docs, np.arange(0, n + block, block))
        for b in range(len(bounds) - 1):
            lo, hi = bounds[b], bounds[b + 1]
            if lo == hi:
                continue
            first = b * block
            rows = min(block, n - first)
            distinct, col = np.unique(feats[lo:hi], return_inverse=True)
            cell = (docs[lo:hi] - first) * len(distinct) + col
            counts = np.bincount(cell, minlength=rows * len(distinct)).astype(np.float32)
            weight = np.log1p(counts).reshape(rows, len(distinct))
            scores[first:first + rows] += weight @ self.ptc[distinct]
        return scores


class LanguageId:
    """Adds `lang`, `lang_score`; drops alive rows outside `keep` or below `min_score`."""

    name = "language"

    def __init__(self, cfg: LanguageConfig):
        self.cfg = cfg
        self.keep = pa.array(sorted(cfg.keep), pa.string())
        self.model = LanguageModel()  # ~0.6 s load, once per actor

    def __call__(self, table: pa.Table) -> pa.Table:
        alive = alive_mask(table)
        alive_np = alive.to_numpy(zero_copy_only=False)
        text = pc.filter(table.column("text"), alive)
        # Only the head is read: language is settled long before 2,000 chars, and the DFA walk
        # costs one numpy step per byte position.
        head = pc.utf8_slice_codeunits(text, start=0, stop=self.cfg.max_chars)
        lang, score = self.model.classify(head)
        lang_col = scatter(lang, alive_np, pa.string())
        score_col = scatter(pa.array(score, pa.float32()), alive_np, pa.float32())
        table = set_column(table, "lang", lang_col)
        table = set_column(table, "lang_score", score_col)
        conditions = []
        if len(self.keep):
            conditions.append(("wrong_language", pc.invert(pc.is_in(lang_col, self.keep))))
        min_score = pa.scalar(self.cfg.min_score, pa.float32())
        conditions.append(("language_score_too_low", pc.less(score_col, min_score)))
        return apply_drops(table, first_reason(conditions, table.num_rows))


def _np_type(arr: object) -> np.dtype:
    return np.dtype({"H": np.uint16, "I": np.uint32, "L": np.uint64}[arr.typecode])


def _combine(arr: pa.Array | pa.ChunkedArray) -> pa.Array:
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    return arr.cast(pa.string())  # large_string -> string: int32 offsets below
