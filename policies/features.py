"""Document -> observation vector for the quality agent, computed for a whole batch at once.

Four (or five) groups of columns, in a fixed order recorded with every policy (`FeatureSpec.names`):
1. the backbone's signal columns, produced by running the rule steps of curator/stages on the
   batch (each family on its own copy with every row alive, so every document gets every signal
   even when an earlier family would have dropped it; the drop decisions are ignored here);
2. cheap text statistics: zlib compression ratio, sentencepiece tokens per char, lexical
   diversity (distinct / total lowercased words), character-class fractions;
3. a hashed word uni+bigram sketch of fixed width (signed feature hashing, L2-normalized);
3b. optionally (`target_dim` > 0) two target-aware columns, a classifier logit and a DSIR weight
   against the target text (policies/target.py);
3c. optionally (`reference`) the document's loss under the reference LM trained on the target
   text (CCNet-style perplexity, policies/reference.py), whose weights the policy carries;
4. optionally (model-aware, RHO-LOSS / MATES style) the document's mean token loss under the
   current trainer model and under a reference model, and their difference (given by the
   caller: the environment and the closed loop hold those models).

One function for every caller: training, `curator score` and the curate stage all call
`FeatureExtractor.__call__` on the document text, which normalizes it itself (curator's default
`Normalize`, idempotent, so text curate already normalized is unchanged) and computes every
column from that text. Nothing is taken from columns an upstream step computed: those were
computed on other text (before C4's line removal) or with other settings, a train/serve skew.

Counts are log1p'd so a z-score is meaningful; undefined ratios (empty documents) stay NaN and
become 0 (the mean) after `FeatureNorm`, whose statistics are saved with the policy.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc

from curator.config import LanguageConfig, NormalizeConfig, QualityConfig
from curator.schema import KEPT
from curator.stages.c4 import C4Quality
from curator.stages.fineweb import FineWebQuality
from curator.stages.gopher_quality import GopherQuality
from curator.stages.gopher_repetition import GopherRepetition
from curator.stages.language import LanguageId
from curator.stages.normalize import normalize_text
from policies.ngrams import NgramKeys, _words, ngram_counts, word_ngram_keys
from policies.reference import ReferenceLM
from policies.target import TARGET_COLUMNS, TargetModel

# Signal columns read from the rule steps, and whether they are counts (log1p'd).
SIGNAL_COLUMNS: list[tuple[str, bool]] = [
    ("gopher_dup_para_frac", False),
    ("gopher_dup_para_char_frac", False),
    ("gopher_dup_line_frac", False),
    ("gopher_dup_line_char_frac", False),
    ("gopher_top_2gram_char_frac", False),
    ("gopher_top_3gram_char_frac", False),
    ("gopher_top_4gram_char_frac", False),
    ("gopher_dup_5gram_char_frac", False),
    ("gopher_dup_10gram_char_frac", False),
    ("gopher_n_words", True),
    ("gopher_mean_word_length", False),
    ("gopher_symbol_word_ratio", False),
    ("gopher_bullet_lines_ratio", False),
    ("gopher_ellipsis_lines_ratio", False),
    ("gopher_alpha_words_ratio", False),
    ("gopher_n_stop_words", True),
    ("c4_n_sentences", True),
    ("c4_n_lines_removed", True),
    ("fineweb_line_punct_ratio", False),
    ("fineweb_short_line_ratio", False),
    ("fineweb_char_dup_ratio", False),
    ("fineweb_newline_word_ratio", False),
    ("lang_score", False),
]
TEXT_COLUMNS = [
    "log_n_chars", "compression_ratio", "tokens_per_char", "lexical_diversity",
    "frac_alpha", "frac_digit", "frac_upper", "frac_space", "frac_non_ascii", "frac_punct",
    "is_english",
]
REFERENCE_COLUMNS = ["reference_loss"]
MODEL_COLUMNS = ["loss_current", "loss_reference", "loss_excess"]
_CHAR_CLASSES = {
    "frac_alpha": r"\pL", "frac_digit": r"\pN", "frac_upper": r"\p{Lu}", "frac_space": r"\s",
    "frac_non_ascii": r"[^\x00-\x7f]", "frac_punct": r"[\pP\pS]",
}


@dataclass(frozen=True)
class FeatureSpec:
    """What a policy's observation holds; saved in its checkpoint so scoring rebuilds it exactly."""

    sketch_dim: int = 64
    model_features: bool = False
    target_dim: int = 0  # > 0: target-aware columns from a TargetModel of this width
    reference: bool = False  # the reference LM's loss column (the policy carries the LM)

    @property
    def names(self) -> list[str]:
        sketch = [f"sketch_{i}" for i in range(self.sketch_dim)]
        target = TARGET_COLUMNS if self.target_dim else []
        reference = REFERENCE_COLUMNS if self.reference else []
        model = MODEL_COLUMNS if self.model_features else []
        return ([name for name, _ in SIGNAL_COLUMNS] + TEXT_COLUMNS + sketch + target
                + reference + model)

    @property
    def dim(self) -> int:
        return len(self.names)


def rule_steps(quality: QualityConfig) -> list:
    # Every family is built even if the curate job disables it: the features must not change
    # shape with the curation config.
    return [
        GopherRepetition(quality.gopher_repetition),
        GopherQuality(quality.gopher_quality),
        C4Quality(quality.c4),
        FineWebQuality(quality.fineweb),
    ]


def as_string_array(texts: pa.Array | pa.ChunkedArray) -> pa.Array:
    if isinstance(texts, pa.ChunkedArray):
        texts = texts.combine_chunks() if texts.num_chunks else pa.array([], pa.string())
    return pc.fill_null(texts.cast(pa.string()), "")


def alive_table(texts: pa.Array) -> pa.Table:
    n = len(texts)
    return pa.table({
        "text": texts,
        "decision": pa.array([KEPT] * n, pa.string()),
        "reason": pa.nulls(n, pa.string()),
        "n_chars": pc.utf8_length(texts).cast(pa.int64()),
    })


def _column(table: pa.Table, name: str) -> np.ndarray:
    if name not in table.column_names:
        raise KeyError(
            f"rule steps no longer produce signal column {name!r} (have {table.column_names}); "
            "update policies.features.SIGNAL_COLUMNS and retrain the default policy"
        )
    return pc.cast(table.column(name), pa.float64()).to_numpy(zero_copy_only=False)


def hashed_sketch(texts: pa.Array, dim: int, keys: NgramKeys | None = None) -> np.ndarray:
    """Signed feature hashing of lowercased word unigrams and bigrams, L2-normalized per doc."""
    out = ngram_counts(texts, dim, signed=True, keys=keys).astype(np.float32)
    norm = np.linalg.norm(out, axis=1, keepdims=True)
    return out / np.where(norm > 0, norm, 1.0)


def lexical_diversity(texts: pa.Array) -> np.ndarray:
    """Distinct lowercased whitespace words / words per doc (NaN for a doc without words)."""
    n = len(texts)
    flat, parents = _words(texts)
    total = np.bincount(parents, minlength=n).astype(np.float64)
    if len(flat) == 0:
        return np.full(n, np.nan)
    df = pl.DataFrame({"doc": parents, "h": pl.from_arrow(flat).hash(seed=3)})
    distinct = df.unique().group_by("doc").len()
    counts = np.zeros(n)
    counts[distinct["doc"].to_numpy()] = distinct["len"].to_numpy()
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, counts / total, np.nan)


def compression_ratio(texts: pa.Array) -> np.ndarray:
    """zlib-compressed bytes / raw bytes: low for repetitive text, high for character soup.

    Compression has no Arrow/numpy column kernel, so this is the one per-document call (in C).
    """
    raw = [t.encode("utf-8") for t in texts.to_pylist()]
    comp = np.fromiter((len(zlib.compress(b, 6)) for b in raw), np.float64, count=len(raw))
    size = np.fromiter((len(b) for b in raw), np.float64, count=len(raw))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(size > 0, comp / size, np.nan)


class FeatureExtractor:
    """Callable: texts -> raw feature matrix (float32, NaN where undefined), `spec.names` order."""

    def __init__(self, tokenizer: bytes | str | Path, spec: FeatureSpec | None = None,
                 quality: QualityConfig | None = None, target: TargetModel | None = None,
                 reference: ReferenceLM | None = None) -> None:
        """`tokenizer`: a sentencepiece model file, or its bytes (as embedded in a policy);
        `target`: the fitted target model when `spec.target_dim` > 0; `reference`: the
        reference LM when `spec.reference`."""
        import sentencepiece as spm

        self.spec = spec or FeatureSpec()
        if self.spec.target_dim and (target is None or target.dim != self.spec.target_dim):
            raise ValueError(f"feature spec wants target-aware columns of width "
                             f"{self.spec.target_dim}; pass the policy's fitted TargetModel")
        if self.spec.reference and reference is None:
            raise ValueError("feature spec wants the reference LM's loss; pass the policy's "
                             "ReferenceLM")
        self.target = target if self.spec.target_dim else None
        self.reference = reference if self.spec.reference else None
        self.normalize = NormalizeConfig()
        if isinstance(tokenizer, bytes):
            self.tokenizer_proto = tokenizer
        else:
            path = Path(tokenizer)
            if not path.exists():
                raise FileNotFoundError(f"tokenizer {path} missing; pass a sentencepiece .model")
            self.tokenizer_proto = path.read_bytes()
        self.sp = spm.SentencePieceProcessor(model_proto=self.tokenizer_proto)
        self.steps = rule_steps(quality or QualityConfig())
        # keep=[] so the step never drops: we only read its lang/lang_score columns
        self.language = LanguageId(LanguageConfig(keep=[], min_score=0.0))

    def prepare(self, texts: pa.Array | pa.ChunkedArray | list[str]) -> pa.Array:
        """The text every feature is computed from: a string array, normalized."""
        if isinstance(texts, list):
            texts = pa.array(texts, pa.string())
        return as_string_array(normalize_text(as_string_array(texts), self.normalize))

    def tokenize(self, texts: pa.Array) -> list[np.ndarray]:
        return self.sp.EncodeAsNumpy(texts.to_pylist(), add_eos=True, num_threads=1)

    def __call__(self, texts: pa.Array | pa.ChunkedArray,
                 model_losses: np.ndarray | None = None) -> np.ndarray:
        """Raw feature rows of `texts` (see the module doc: one path for every caller).

        `model_losses` (n, 2): per-doc loss under the current and reference model, for a
        policy trained with `model_features`.
        """
        texts = self.prepare(texts)
        n = len(texts)
        base = alive_table(texts)
        cols: dict[str, np.ndarray] = {}
        for step in self.steps:
            out = step(base)
            for name, _ in SIGNAL_COLUMNS:
                if name in out.column_names and name not in cols:
                    cols[name] = _column(out, name)
        lang = self.language(base)
        cols["lang_score"] = _column(lang, "lang_score")
        lang_is_en = pc.equal(lang.column("lang"), "en").to_numpy(zero_copy_only=False)
        signals_x = np.stack([
            np.log1p(np.maximum(cols[name], 0)) if is_count else cols[name]
            for name, is_count in SIGNAL_COLUMNS
        ], axis=1) if n else np.zeros((0, len(SIGNAL_COLUMNS)))

        chars = pc.utf8_length(texts).to_numpy().astype(np.float64)
        safe = np.where(chars > 0, chars, np.nan)
        tokens = self.tokenize(texts)
        n_tok = np.fromiter((len(t) for t in tokens), np.float64, count=n)
        text_stats = [np.log1p(chars), compression_ratio(texts), (n_tok - 1) / safe,
                      lexical_diversity(texts)]
        for pattern in _CHAR_CLASSES.values():
            text_stats.append(pc.count_substring_regex(texts, pattern).to_numpy() / safe)
        text_stats.append(lang_is_en.astype(np.float64))
        keys = word_ngram_keys(texts)  # shared by the sketch and the target columns
        sketch = hashed_sketch(texts, self.spec.sketch_dim, keys)
        parts = [signals_x, np.stack(text_stats, axis=1), sketch]
        if self.target is not None:
            parts.append(self.target(texts, keys))
        if self.reference is not None:
            parts.append(self.reference.losses(tokens)[:, None])
        if self.spec.model_features:
            if model_losses is None:
                raise ValueError("this policy was trained with model_features=True; pass "
                                 "model_losses (n, 2) from a trainer checkpoint")
            ml = np.asarray(model_losses, np.float64).reshape(n, 2)
            parts.append(np.concatenate([ml, ml[:, :1] - ml[:, 1:]], axis=1))
        return np.concatenate(parts, axis=1).astype(np.float32)


@dataclass(frozen=True)
class FeatureNorm:
    """Per-feature mean/std fitted on the training pool; NaN -> 0 (the mean) after scaling."""

    mean: np.ndarray
    std: np.ndarray

    @classmethod
    def fit(cls, x: np.ndarray) -> FeatureNorm:
        mean = np.nanmean(np.where(np.isfinite(x), x, np.nan), axis=0)
        std = np.nanstd(np.where(np.isfinite(x), x, np.nan), axis=0)
        mean = np.nan_to_num(mean).astype(np.float32)
        std = np.where(np.nan_to_num(std) > 1e-6, np.nan_to_num(std), 1.0).astype(np.float32)
        return cls(mean, std)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        z = (x - self.mean) / self.std
        # clip: one absurd document (a 1 MB line) must not saturate the policy's first layer
        return np.clip(np.nan_to_num(z, nan=0.0, posinf=10.0, neginf=-10.0), -10, 10).astype(
            np.float32)
