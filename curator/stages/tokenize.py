"""Sentencepiece tokenization of alive documents, batched on sentencepiece's own threads."""

from __future__ import annotations

import os

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from curator.step import alive_mask, set_column

TOKENS_TYPE = pa.list_(pa.uint32())


class Tokenize:
    """Adds `tokens` (list<uint32>, EOS appended) and `n_tokens` to alive rows; null elsewhere.

    The text is encoded as is: with the tokenizer curate trains (curator/tokenizer_train.py),
    `sp.decode(tokens)` gives back `text` exactly (EOS is a control piece and decodes to "").
    """

    name = "tokenize"

    def __init__(self, model_path: str, num_threads: int = 0) -> None:
        import sentencepiece as spm

        self.sp = spm.SentencePieceProcessor(model_file=str(model_path))
        if self.sp.eos_id() < 0:
            raise ValueError(
                f"tokenizer {model_path} has no EOS piece; "
                "set tokenizer.model_path to a model with eos_id >= 0"
            )
        self.num_threads = num_threads or (os.cpu_count() or 1)

    def __call__(self, table: pa.Table) -> pa.Table:
        alive = alive_mask(table)
        alive_idx = np.flatnonzero(alive.to_numpy(zero_copy_only=False))
        texts = table.column("text").take(pa.array(alive_idx)).to_pylist()
        # EncodeAsNumpy returns one int32 array per text: concatenating them is the whole Arrow
        # conversion (a list-of-lists pa.array would cost as much as the encoding itself).
        encoded = (
            self.sp.EncodeAsNumpy(texts, add_eos=True, num_threads=self.num_threads)
            if texts
            else []
        )
        lengths = np.fromiter((len(e) for e in encoded), dtype=np.int64, count=len(encoded))
        flat = np.concatenate(encoded).view(np.uint32) if encoded else np.empty(0, np.uint32)

        # Scatter into a full-length list column: non-alive rows get null lists.
        n = table.num_rows
        full_len = np.zeros(n, dtype=np.int64)
        full_len[alive_idx] = lengths
        offsets = np.zeros(n + 1, dtype=np.int64)
        np.cumsum(full_len, out=offsets[1:])
        validity = np.zeros(n, dtype=bool)
        validity[alive_idx] = True
        tokens = pa.LargeListArray.from_arrays(
            pa.array(offsets), pa.array(flat, type=pa.uint32()), mask=pa.array(~validity)
        ).cast(TOKENS_TYPE)
        n_tokens = pc.if_else(pa.array(validity), pa.array(full_len), pa.nulls(n, pa.int64()))
        table = set_column(table, "tokens", tokens)
        return set_column(table, "n_tokens", n_tokens)
