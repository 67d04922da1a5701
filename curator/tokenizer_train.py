"""Train the run's sentencepiece model on a deterministic sample of the kept stream."""

from __future__ import annotations

import logging
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

from connectors.fs import atomic_open
from curator.config import TokenizerConfig

log = logging.getLogger(__name__)

# Fixed special ids so every run's tokenizer agrees with the trainer's expectations.
UNK_ID, BOS_ID, EOS_ID = 0, 1, 2
# sentencepiece skips "sentences" longer than this many bytes; we feed paragraphs, cut to fit.
MAX_SENTENCE_BYTES = 8192
# Coverages tried in turn when a small vocabulary cannot hold every character the coverage
# requires (multilingual text: thousands of CJK characters). With byte_fallback the characters
# left out still encode, as UTF-8 bytes, so a lower coverage loses no text.
COVERAGE_LADDER = (0.999, 0.995, 0.99, 0.98)  # sentencepiece accepts >= 0.98


def _paragraphs(texts: Iterable[str]) -> Iterator[str]:
    for text in texts:
        for para in text.split("\n"):
            para = para.strip()
            while para:
                yield para[: MAX_SENTENCE_BYTES // 4]
                para = para[MAX_SENTENCE_BYTES // 4 :]


def train_tokenizer(
    texts: Iterable[str], cfg: TokenizerConfig, out_path: str | Path, num_threads: int = 1
) -> Path:
    """Train on `texts` and write `out_path` atomically. Raises ValueError if there is no text."""
    out_path = Path(out_path)
    # The sample is bounded (tokenizer.sample_chars), so holding it allows a retry.
    sentences = list(_paragraphs(texts))
    if not sentences:
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
        with atomic_open(out_path, "wb") as f, open(f"{prefix}.model", "rb") as src:
            shutil.copyfileobj(src, f)
    return out_path


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
        unk_id=UNK_ID,
        bos_id=BOS_ID,
        eos_id=EOS_ID,
        pad_id=-1,
        num_threads=max(1, num_threads),
        max_sentence_length=MAX_SENTENCE_BYTES,
        shuffle_input_sentence=False,  # the sample is already a deterministic hash sample
        minloglevel=2,
    )
