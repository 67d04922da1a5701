"""Train a byte-level BPE `tokenizer.json` (GPT-2 style, with the `tokenizers` library) on the
run's tokenizer sample, for `tokenizer.kind: hf` with no model_path.

Byte-level: every text is first mapped to its UTF-8 bytes, so any string encodes (no unknown
token) and decoding gives it back exactly, newlines, tabs and indentation included. No
normalizer and `add_prefix_space=False`: the text curate wrote is the text that decodes.
`<|endoftext|>` is the one special token (id 0) and ends every document.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from curator.config import TokenizerConfig

END_OF_TEXT = "<|endoftext|>"


def train_hf_tokenizer(
    texts: Iterable[str], cfg: TokenizerConfig, out_path: str | Path, num_threads: int = 1
) -> Path:
    """Train on `texts` and write `out_path`. Raises ValueError if there is no text."""
    import os

    # the Rust thread pool reads it once per process, at its first parallel call
    os.environ.setdefault("RAYON_NUM_THREADS", str(max(1, num_threads)))
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    sample = [t for t in texts if t]
    if not any(t.strip() for t in sample):
        raise ValueError(
            "no kept text to train the tokenizer on; check the filters or set tokenizer.model_path"
        )
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=cfg.vocab_size,
        special_tokens=[END_OF_TEXT],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),  # all 256 bytes, seen or not
        show_progress=False,
    )
    tok.train_from_iterator(sample, trainer=trainer, length=len(sample))
    out = Path(out_path)
    tok.save(str(out))
    return out
