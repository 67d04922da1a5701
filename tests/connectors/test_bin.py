"""Flat token export: round trip, dtype choice, nanoGPT-style memmap, completeness checks."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from connectors.bin import BinReader, BinWriter, write_bin


def docs_array(docs: list[list[int]]) -> pa.ListArray:
    return pa.array(docs, pa.list_(pa.uint32()))


def test_round_trip_and_nanogpt_memmap(tmp_path: Path) -> None:
    docs = [[5, 6, 1], [7, 1], [], [9, 9, 9, 1]]
    header = write_bin(
        tmp_path, docs_array(docs), vocab_size=100, eos_id=1, doc_ids=pa.array(["a", "b", "c", "d"])
    )
    assert header == {"layout": "flat", "files": ["tokens.bin", "tokens.idx"], "dtype": "uint16",
                      "vocab_size": 100, "eos_id": 1, "n_docs": 4, "n_tokens": 9}
    # exactly what nanoGPT does: a raw memmap, dtype from the header
    raw = np.memmap(tmp_path / "tokens.bin", dtype=np.uint16, mode="r")
    assert raw.tolist() == [5, 6, 1, 7, 1, 9, 9, 9, 1]
    idx = np.fromfile(tmp_path / "tokens.idx", dtype=np.int64)
    assert idx.tolist() == [0, 3, 5, 5, 9]
    reader = BinReader(tmp_path)
    assert len(reader) == 4 and [reader.doc(i).tolist() for i in range(4)] == docs
    assert reader.doc_ids().to_pylist() == ["a", "b", "c", "d"]
    assert json.loads((tmp_path / "header.json").read_text())["n_docs"] == 4


def test_large_vocab_uses_uint32_and_streams_batches(tmp_path: Path) -> None:
    w = BinWriter(tmp_path, vocab_size=70000, eos_id=2)
    w.write(docs_array([[69999, 2]]))
    w.write(pa.chunked_array([docs_array([[1, 2]]), docs_array([[65536, 3, 2]])]))
    header = w.close()
    assert header["dtype"] == "uint32" and header["n_docs"] == 3
    reader = BinReader(tmp_path)
    assert reader.tokens.dtype == np.uint32
    assert reader.doc(2).tolist() == [65536, 3, 2] and reader.doc_ids() is None


def test_out_of_vocab_tokens_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="vocab_size=10"):
        write_bin(tmp_path, docs_array([[3, 12]]), vocab_size=10, eos_id=1)
    assert not (tmp_path / "header.json").exists()
    assert list(tmp_path.glob("*")) == []  # temp files cleaned up, nothing half-written


def test_reader_refuses_incomplete_export(tmp_path: Path) -> None:
    write_bin(tmp_path, docs_array([[1, 2]]), vocab_size=10, eos_id=1)
    (tmp_path / "header.json").unlink()
    with pytest.raises(FileNotFoundError, match="header.json"):
        BinReader(tmp_path)
