"""Trainer data: curriculum order, deterministic held-out split, windows, .bin parity."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import sentencepiece as spm

from connectors.bin import write_bin
from curator.hashing import stable_hash
from curator.trainer.data import (
    TokenStream,
    heldout_mask,
    load_corpus,
    shard_files,
    split,
)


def test_shards_read_in_curriculum_order(run_dir: Path) -> None:
    files = shard_files(run_dir)
    assert [f.parent.name for f in files] == ["stage=0"] * 2 + ["stage=1"] * 2
    assert [f.name for f in files[:2]] == ["part-00000.parquet", "part-00001.parquet"]
    corpus = load_corpus(run_dir)
    table = pa.concat_tables(pq.read_table(f) for f in files)
    want = np.concatenate([np.asarray(t, np.int64) for t in table.column("tokens").to_pylist()])
    assert np.array_equal(np.asarray(corpus.tokens, np.int64), want)
    assert corpus.doc_ids.to_pylist() == table.column("doc_id").to_pylist()
    assert corpus.doc_ids[0].as_py() == "help-00000"  # stage 0 first, whatever the write order
    sp = spm.SentencePieceProcessor(model_file=str(run_dir / "tokenizer.model"))
    assert (corpus.vocab_size, corpus.eos_id) == (sp.get_piece_size(), sp.eos_id())
    # every document ends with EOS, so the flat stream has document boundaries
    assert (np.asarray(corpus.tokens)[corpus.offsets[1:] - 1] == corpus.eos_id).all()


def test_heldout_split_is_deterministic_and_sized(run_dir: Path) -> None:
    corpus = load_corpus(run_dir)
    held = heldout_mask(corpus, 0.2)
    assert np.array_equal(held, heldout_mask(load_corpus(run_dir), 0.2))
    assert 0.15 < held.mean() < 0.25
    # decided per doc_id: the same ids are held out from a reordered subset
    sub = corpus.doc_ids.take(pa.array(np.arange(corpus.n_docs)[::-3]))
    assert np.array_equal(
        stable_hash(sub) % np.uint64(1 << 20) < np.uint64(round(0.2 * 2**20)), held[::-3]
    )
    train, heldout = split(corpus, 0.2)
    assert train.n_docs + heldout.n_docs == corpus.n_docs
    assert train.n_tokens + heldout.n_tokens == len(corpus.tokens)
    assert not set(train.doc_ids.to_pylist()) & set(heldout.doc_ids.to_pylist())


def test_token_stream_windows_shift_and_ranks_are_disjoint() -> None:
    tokens = np.arange(1000, dtype=np.uint16)
    stream = TokenStream(tokens, seq_len=10)
    x, y = stream.batch(0, 4)
    assert np.array_equal(x[:, 1:], y[:, :-1]) and np.array_equal(x[1], np.arange(10, 20))
    r0, r1 = stream.batch(3, 4, rank=0, world=2)[0], stream.batch(3, 4, rank=1, world=2)[0]
    assert not set(r0[:, 0]) & set(r1[:, 0])
    assert np.array_equal(stream.batch(99, 4)[0], stream.batch(99, 4)[0])  # pure function of i
    shuffled = TokenStream(tokens, seq_len=10, order="shuffled", seed=0)
    assert sorted(shuffled.order.tolist()) == list(range(stream.n_windows))


def test_bin_export_gives_the_same_corpus_and_split(run_dir: Path, tmp_path: Path) -> None:
    corpus = load_corpus(run_dir)
    table = pa.concat_tables(pq.read_table(f) for f in shard_files(run_dir))
    write_bin(
        tmp_path / "bin",
        table.column("tokens"),
        corpus.vocab_size,
        corpus.eos_id,
        doc_ids=table.column("doc_id"),
    )
    from_bin = load_corpus(tmp_path / "bin")
    assert np.array_equal(np.asarray(from_bin.tokens), np.asarray(corpus.tokens))
    assert np.array_equal(from_bin.offsets, corpus.offsets)
    assert np.array_equal(heldout_mask(from_bin, 0.1), heldout_mask(corpus, 0.1))
