"""Train the run's sentencepiece model on a deterministic sample of the kept stream."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

from connectors.fs import atomic_open
from curator.config import TokenizerConfig

# Fixed special ids so every run's tokenizer agrees with the trainer's expectations.
UNK_ID, BOS_ID, EOS_ID = 0, 1, 2
# sentencepiece skips "sentences" longer than this many bytes; we feed paragraphs, cut to fit.
MAX_SENTENCE_BYTES = 8192


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
    import sentencepiece as spm

    out_path = Path(out_path)
    with tempfile.TemporaryDirectory(prefix="curator-spm-") as tmp:
        prefix = Path(tmp) / "m"
        sentences = _paragraphs(texts)
        first = next(sentences, None)
        if first is None:
            raise ValueError(
                "no kept text to train the tokenizer on; "
                "check the filters or set tokenizer.model_path"
            )

        def all_sentences() -> Iterator[str]:
            yield first
            yield from sentences

        spm.SentencePieceTrainer.train(
            sentence_iterator=all_sentences(),
            model_prefix=str(prefix),
            model_type=cfg.model_type,
            vocab_size=cfg.vocab_size,
            hard_vocab_limit=False,  # a small corpus gets a smaller vocab instead of an error
            byte_fallback=True,  # any unseen character still encodes, never <unk>
            character_coverage=0.9995,
            unk_id=UNK_ID,
            bos_id=BOS_ID,
            eos_id=EOS_ID,
            pad_id=-1,
            num_threads=max(1, num_threads),
            max_sentence_length=MAX_SENTENCE_BYTES,
            shuffle_input_sentence=False,  # the sample is already a deterministic hash sample
            minloglevel=2,
        )
        with atomic_open(out_path, "wb") as f, open(f"{prefix}.model", "rb") as src:
            shutil.copyfileobj(src, f)
    return out_path
