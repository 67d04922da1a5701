"""Tokenization of alive documents with the run's tokenizer (curator/run_tokenizer.py), batched
on the tokenizer's own threads."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from curator.run_tokenizer import RunTokenizer
from curator.step import alive_mask, set_column

TOKENS_TYPE = pa.list_(pa.uint32())


class Tokenize:
    """Adds `tokens` (list<uint32>, EOS appended when the tokenizer has one) and `n_tokens` to
    alive rows; null elsewhere.

    The text is encoded as is: with the tokenizer curate trains (curator/tokenizer_train.py),
    decoding the tokens gives back `text` exactly.
    """

    name = "tokenize"

    def __init__(self, tokenizer: RunTokenizer) -> None:
        self.tokenizer = tokenizer

    def __call__(self, table: pa.Table) -> pa.Table:
        alive = alive_mask(table)
        alive_idx = np.flatnonzero(alive.to_numpy(zero_copy_only=False))
        texts = table.column("text").take(pa.array(alive_idx)).to_pylist()
        flat, lengths = self.tokenizer.encode(texts)

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
