"""Train the run's sentencepiece model on a deterministic sample of the kept stream.

The model is lossless on the run's normalized text: `decode(encode(t)) == t` for every string
curator's normalize stage can produce. Sentencepiece's defaults are not: NFKC folds characters
(`ﬁ` -> `fi`), and `remove_extra_whitespaces` drops newlines, tabs, indentation and repeated
spaces. Curator's own normalize stage already gives the canonical text (NFC), so the model adds
no normalization of its own; what it keeps:
- every space, as sentencepiece's `▁`, and whitespace-only pieces, so code indentation is a few
  tokens instead of one per space;
- `\\n`, `\\n\\n` (a paragraph break) and `\\t` as user-defined pieces: always one piece each,
  so line structure survives and no learned piece spans a line end (`.\\n"`);
- any character outside the vocabulary as its UTF-8 bytes (byte fallback), never `<unk>`;
- a literal `▁` (U+2581), which sentencepiece would decode as a space, through an escape pair
  (see `ESCAPE`).
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

from connectors.fs import atomic_open
from curator.config import TokenizerConfig

log = logging.getLogger(__name__)

# Fixed special ids so every run's tokenizer agrees with the trainer's expectations.
UNK_ID, BOS_ID, EOS_ID = 0, 1, 2
# Pieces that are never merged with neighbours (ids 3, 4, 5: right after the specials).
WHITESPACE_SYMBOLS = ("\n", "\n\n", "\t")
# sentencepiece skips training "sentences" longer than this many bytes; documents are cut into
# chunks of whole lines that fit (the margin covers the `▁` it prepends to each).
MAX_SENTENCE_BYTES = 8192
_CHUNK_BYTES = MAX_SENTENCE_BYTES - 16
# Sentencepiece stores spaces as U+2581 and decodes every U+2581 back to a space, so a literal
# one would come back as " ". The model's normalizer maps it to two SUB control characters and
# its denormalizer (applied on decode) maps them back. The normalize stage strips C0 controls,
# so normalized text never holds the pair itself.
ESCAPE = "\x1a\x1a"
# Coverages tried in turn when a small vocabulary cannot hold every character the coverage
# requires (multilingual text: thousands of CJK characters). With byte_fallback the characters
# left out still encode, as UTF-8 bytes, so a lower coverage loses no text.
COVERAGE_LADDER = (0.999, 0.995, 0.99, 0.98)  # sentencepiece accepts >= 0.98


def _chunks(texts: Iterable[str]) -> Iterator[str]:
    """Documents as training sentences, newlines and indentation kept.

    A document that fits is one sentence; a longer one is cut at line ends into chunks that fit,
    and only a single line longer than a chunk is cut inside the line.
    """
    for text in texts:
        if len(text) * 4 <= _CHUNK_BYTES or len(text.encode()) <= _CHUNK_BYTES:
            if text:
                yield text
            continue
        chunk, size = [], 0
        lines = text.split("\n")
        for i, line in enumerate(lines):
            if i + 1 < len(lines):
                line += "\n"
            n = len(line.encode())
            if size + n > _CHUNK_BYTES and chunk:
                yield "".join(chunk)
                chunk, size = [], 0
            while n > _CHUNK_BYTES:  # one very long line: 4 bytes per character at most
                yield line[: _CHUNK_BYTES // 4]
                line = line[_CHUNK_BYTES // 4 :]
                n = len(line.encode())
            if line:
                chunk.append(line)
                size += n
        if chunk:
            yield "".join(chunk)


def train_tokenizer(
    texts: Iterable[str], cfg: TokenizerConfig, out_path: str | Path, num_threads: int = 1
) -> Path:
    """Train on `texts` and write `out_path` atomically. Raises ValueError if there is no text."""
    out_path = Path(out_path)
    # The sample is bounded (tokenizer.sample_chars), so holding it allows a retry.
    sentences = list(_chunks(texts))
    if not any(s.strip() for s in sentences):
        raise ValueError(
            "no kept text to train the tokenizer on; check the filters or set tokenizer.model_path"
        )
    coverages = [cfg.character_coverage] + [
        c for c in COVERAGE_LADDER if c < cfg.character_coverage
    ]
    with tempfile.TemporaryDirectory(prefix="curator-spm-") as tmp:
        prefix = Path(tmp) / "m"
        for i, coverage in enumerate(coverages):
            try:
                _train(sentences, cfg, prefix, coverage, num_threads)
                break
            except RuntimeError as err:
                if "required_chars" not in str(err):
                    raise
                if i + 1 == len(coverages):
                    raise ValueError(
                        f"tokenizer.vocab_size={cfg.vocab_size} cannot hold the distinct "
                        f"characters of the text even at coverage {coverage} ({err}); raise "
                        "tokenizer.vocab_size"
                    ) from None
                log.warning(
                    "tokenizer: vocab_size=%d cannot hold the characters of coverage "
                    "%.4f; retrying with %.4f",
                    cfg.vocab_size,
                    coverage,
                    coverages[i + 1],
                )
        model = reproducible(Path(f"{prefix}.model").read_bytes())
        with atomic_open(out_path, "wb") as f:
            f.write(model)
    return out_path


def reproducible(model: bytes) -> bytes:
    """The trained model without what describes the training machine rather than the model:
    the temp dir's paths (model prefix, rule files) and the thread count. Sentencepiece stores
    them in the .model, so two identical runs wrote different bytes. Encoding and decoding use
    the compiled rules (precompiled_charsmap), never these paths."""
    from sentencepiece import sentencepiece_model_pb2 as model_pb2

    proto = model_pb2.ModelProto()
    proto.ParseFromString(model)
    proto.trainer_spec.ClearField("model_prefix")
    proto.trainer_spec.ClearField("num_threads")
    proto.normalizer_spec.ClearField("normalization_rule_tsv")
    proto.denormalizer_spec.ClearField("normalization_rule_tsv")
    return proto.SerializeToString()


def _rule_tsv(path: Path, source: str, target: str) -> str:
    """A one-rule sentencepiece normalization file; characters without a rule pass unchanged."""
    hexes = [" ".join(f"{ord(c):X}" for c in s) for s in (source, target)]
    path.write_text("\t".join(hexes) + "\n", encoding="utf-8")
    return str(path)


def _train(
    sentences: list[str], cfg: TokenizerConfig, prefix: Path, coverage: float, num_threads: int
) -> None:
    import sentencepiece as spm

    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(sentences),
        model_prefix=str(prefix),
        model_type=cfg.model_type,
        vocab_size=cfg.vocab_size,
        hard_vocab_limit=False,  # a small corpus gets a smaller vocab instead of an error
        byte_fallback=True,  # any unseen character still encodes, never <unk>
        character_coverage=coverage,
        # Lossless (module docstring): no NFKC, no whitespace cleanup, `▁` escaped.
        normalization_rule_tsv=_rule_tsv(prefix.with_suffix(".norm.tsv"), "\u2581", ESCAPE),
        denormalization_rule_tsv=_rule_tsv(prefix.with_suffix(".denorm.tsv"), ESCAPE, "\u2581"),
        remove_extra_whitespaces=False,
        allow_whitespace_only_pieces=True,
        user_defined_symbols=list(WHITESPACE_SYMBOLS),
        unk_id=UNK_ID,
        bos_id=BOS_ID,
        eos_id=EOS_ID,
        pad_id=-1,
        num_threads=max(1, num_threads),
        max_sentence_length=MAX_SENTENCE_BYTES,
        shuffle_input_sentence=False,  # the sample is already a deterministic hash sample
        minloglevel=2,
    )
