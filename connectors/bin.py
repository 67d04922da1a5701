"""Flat token export: `DIR/tokens.bin` + `DIR/tokens.idx` + `DIR/header.json`.

- tokens.bin: every document's tokens back to back, raw little-endian uint16 when the vocabulary
  fits (< 65536) else uint32 -- `np.memmap(DIR/"tokens.bin", dtype=header["dtype"])` as nanoGPT.
- tokens.idx: raw int64, n_docs + 1 document start offsets (last = n_tokens).
- header.json: {"layout", "files", "dtype", "vocab_size", "eos_id" (null: the tokenizer has no
  end-of-text token), "n_docs", "n_tokens"};
  written last, so a directory with a header is complete (every file goes through a temp name
  and a rename).
  A writer built with `weighted=True` repeats each document its sample weight times in a row
  (each copy its own entry) and adds `sample_weight_applied: true` and `n_distinct_docs`.
- doc_ids.parquet (optional): one `doc_id` string per document, so readers can split by doc_id.

`layout="megatron"` writes the same tokens as `DIR/<prefix>.bin` and the index as
`DIR/<prefix>.idx` in Megatron's indexed-dataset format (MMIDIDX, version 1), which
Megatron-LM, Megatron-core (`IndexedDataset(DIR/<prefix>)`), NeMo, GPT-NeoX and OLMo read as
is: header `MMIDIDX\x00\x00`, `<Q` version 1, `<B` dtype code, `<Q` sequence count, `<Q`
document-index count, then int32 sequence lengths, int64 byte pointers and int64 document
indices (one sequence per document: 0, 1, ..., n). Megatron has no uint32 code, so a vocabulary
of 65,536 or more is stored as int32 (code 4); below that, uint16 (code 8). header.json and
doc_ids.parquet are written beside them as for the flat layout.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Literal

import numpy as np
import pyarrow as pa

from connectors.fs import atomic_open, write_parquet_atomic, write_text_atomic

TOKENS, INDEX, HEADER, DOC_IDS = "tokens.bin", "tokens.idx", "header.json", "doc_ids.parquet"
Layout = Literal["flat", "megatron"]
MMIDIDX_HEADER = b"MMIDIDX\x00\x00"
MMIDIDX_VERSION = 1
MEGATRON_DTYPE_CODES = {np.dtype(np.uint16): 8, np.dtype(np.int32): 4}  # megatron.core DType


def token_dtype(vocab_size: int, layout: Layout = "flat") -> np.dtype:
    if vocab_size < 2**16:
        return np.dtype(np.uint16)
    return np.dtype(np.int32) if layout == "megatron" else np.dtype(np.uint32)


def read_mmididx(path: Path) -> tuple[np.dtype, np.ndarray]:
    """(token dtype, tokens per sequence) of a Megatron .idx written by `write_mmididx`."""
    raw = Path(path).read_bytes()
    head = len(MMIDIDX_HEADER)
    if raw[:head] != MMIDIDX_HEADER:
        raise ValueError(f"{path} is not a Megatron indexed-dataset index (no MMIDIDX header)")
    version, code = struct.unpack_from("<QB", raw, head)
    n_seq, _n_docs = struct.unpack_from("<QQ", raw, head + 9)
    if version != MMIDIDX_VERSION:
        raise ValueError(f"{path}: MMIDIDX version {version}, expected {MMIDIDX_VERSION}")
    dtype = {c: d for d, c in MEGATRON_DTYPE_CODES.items()}[code]
    lengths = np.frombuffer(raw, np.int32, count=n_seq, offset=head + 25).astype(np.int64)
    return dtype, lengths


def write_mmididx(path: Path, lengths: np.ndarray, dtype: np.dtype) -> None:
    """Megatron's .idx for documents of `lengths` tokens, one sequence each."""
    lengths = np.asarray(lengths, np.int64)
    if len(lengths) and lengths.max() >= 2**31:
        raise ValueError("a document of 2**31 tokens or more does not fit Megatron's int32 "
                         "sequence lengths")
    pointers = np.concatenate([[0], np.cumsum(lengths[:-1])]) * dtype.itemsize
    with atomic_open(path, "wb") as f:
        f.write(MMIDIDX_HEADER)
        f.write(struct.pack("<Q", MMIDIDX_VERSION))
        f.write(struct.pack("<B", MEGATRON_DTYPE_CODES[dtype]))
        f.write(struct.pack("<Q", len(lengths)))
        f.write(struct.pack("<Q", len(lengths) + 1))
        f.write(lengths.astype(np.int32).tobytes())
        f.write(pointers.astype(np.int64).tobytes())
        f.write(np.arange(len(lengths) + 1, dtype=np.int64).tobytes())


class BinWriter:
    """Streaming writer: `write(list_array)` per batch of documents, then `close()`."""

    def __init__(self, out_dir: str | Path, vocab_size: int, eos_id: int | None,
                 weighted: bool = False, layout: Layout = "flat", prefix: str = "tokens") -> None:
        self.dir = Path(out_dir)
        self.weighted = weighted
        self.layout = layout
        self._distinct = 0
        self.vocab_size, self.eos_id = vocab_size, eos_id
        self.dtype = token_dtype(vocab_size, layout)
        # flat: tokens.bin + tokens.idx (offsets); megatron: <prefix>.bin + <prefix>.idx
        self.tokens_name = TOKENS if layout == "flat" else f"{prefix}.bin"
        self.index_name = INDEX if layout == "flat" else f"{prefix}.idx"
        self._ctx = atomic_open(self.dir / self.tokens_name, "wb")
        self._file = self._ctx.__enter__()
        self._lengths: list[np.ndarray] = []
        self._doc_ids: list[pa.Array] = []

    def write(
        self,
        tokens: pa.ListArray | pa.ChunkedArray,
        doc_ids: pa.Array | pa.ChunkedArray | None = None,
        repeats: pa.Array | pa.ChunkedArray | np.ndarray | None = None,
    ) -> None:
        """Append documents (a list<int> column); doc_ids must be given for all batches or none.
        `repeats` (a weighted writer only): times to write each document, consecutively."""
        if isinstance(tokens, pa.ChunkedArray):
            tokens = tokens.combine_chunks()
        self._distinct += len(tokens)
        if repeats is not None:
            if not self.weighted:
                raise ValueError("repeats given to a BinWriter built with weighted=False; "
                                 "build it with weighted=True so the header says so")
            times = np.asarray(repeats, np.int64)
            if times.shape != (len(tokens),) or (times < 1).any():
                raise ValueError(f"repeats must be one integer >= 1 per document; got shape "
                                 f"{times.shape} for {len(tokens)} documents")
            if (times != 1).any():
                take = pa.array(np.repeat(np.arange(len(tokens)), times))
                tokens = tokens.take(take)
                doc_ids = None if doc_ids is None else doc_ids.take(take)
        values = tokens.flatten().to_numpy(zero_copy_only=False)
        if values.size and (values.min() < 0 or values.max() >= self.vocab_size):
            raise ValueError(
                f"token ids span [{values.min()}, {values.max()}] outside vocab_size="
                f"{self.vocab_size}; pass the tokenizer's vocabulary size"
            )
        self._file.write(values.astype(self.dtype, copy=False).tobytes())
        offsets = tokens.offsets.to_numpy()
        self._lengths.append(np.diff(offsets).astype(np.int64))
        if doc_ids is not None:
            self._doc_ids.append(pa.chunked_array([doc_ids]).combine_chunks().cast(pa.string()))

    def close(self) -> dict:
        lengths = np.concatenate(self._lengths) if self._lengths else np.zeros(0, np.int64)
        if self._doc_ids and sum(len(a) for a in self._doc_ids) != len(lengths):
            self.abort()
            raise ValueError("doc_ids were given for some batches only; give them for all or none")
        self._ctx.__exit__(None, None, None)
        offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        if self.layout == "megatron":
            write_mmididx(self.dir / self.index_name, lengths, self.dtype)
        else:
            with atomic_open(self.dir / INDEX, "wb") as f:
                f.write(offsets.tobytes())
        if self._doc_ids:
            ids = pa.concat_arrays(self._doc_ids)
            write_parquet_atomic(pa.table({"doc_id": ids}), self.dir / DOC_IDS)
        header = {
            "layout": self.layout,
            "files": [self.tokens_name, self.index_name],
            "dtype": self.dtype.name,
            "vocab_size": self.vocab_size,
            "eos_id": self.eos_id,
            "n_docs": int(len(lengths)),
            "n_tokens": int(offsets[-1]),
        }
        if self.weighted:
            header["sample_weight_applied"] = True
            header["n_distinct_docs"] = self._distinct
        write_text_atomic(json.dumps(header, indent=2), self.dir / HEADER)
        return header

    def abort(self) -> None:
        self._ctx.__exit__(RuntimeError, RuntimeError("aborted"), None)


def write_bin(
    out_dir: str | Path,
    tokens: pa.ListArray | pa.ChunkedArray,
    vocab_size: int,
    eos_id: int | None,
    doc_ids: pa.Array | pa.ChunkedArray | None = None,
) -> dict:
    """Write one export in a call; returns the header."""
    writer = BinWriter(out_dir, vocab_size, eos_id)
    try:
        if doc_ids is not None and isinstance(doc_ids, pa.ChunkedArray):
            doc_ids = doc_ids.combine_chunks()
        writer.write(tokens, doc_ids)
    except BaseException:
        writer.abort()
        raise
    return writer.close()


class BinReader:
    """Memory-mapped view of an export: `tokens` (memmap), `offsets` (int64), `doc(i)`."""

    def __init__(self, path: str | Path) -> None:
        self.dir = Path(path)
        header_path = self.dir / HEADER
        if not header_path.exists():
            raise FileNotFoundError(
                f"{header_path} missing: {self.dir} is not a complete .bin export "
                "(header.json is written last; re-run the export)"
            )
        self.header = json.loads(header_path.read_text())
        self.vocab_size: int = self.header["vocab_size"]
        self.eos_id: int | None = self.header["eos_id"]
        n = self.header["n_tokens"]
        self.tokens = (
            np.memmap(self.dir / self.header.get("files", [TOKENS])[0], dtype=self.header["dtype"],
                      mode="r", shape=(n,))
            if n
            else np.zeros(0, dtype=self.header["dtype"])
        )
        if self.header.get("layout") == "megatron":  # the same tokens, Megatron's index
            _, lengths = read_mmididx(self.dir / self.header["files"][1])
            self.offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        else:
            self.offsets = np.fromfile(self.dir / INDEX, dtype=np.int64)
        if len(self.offsets) != self.header["n_docs"] + 1 or self.offsets[-1] != n:
            raise ValueError(f"{self.dir / INDEX} disagrees with header {self.header}")

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def doc(self, i: int) -> np.ndarray:
        return np.asarray(self.tokens[self.offsets[i] : self.offsets[i + 1]])

    def doc_ids(self) -> pa.Array | None:
        path = self.dir / DOC_IDS
        if not path.exists():
            return None
        import pyarrow.parquet as pq

        return pq.read_table(path).column("doc_id").combine_chunks()
