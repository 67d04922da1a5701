"""Trainer data: curriculum order, deterministic held-out split, windows, .bin parity, the
memmapped shard cache, and batches equal to the former in-memory implementation's."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import sentencepiece as spm

from connectors.bin import write_bin
from curator.hashing import stable_hash
from curator.trainer.data import (
    TokenStream,
    heldout_mask,
    load_corpus,
    read_shards,
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


# --- batches are the ones the in-memory implementation gave (before memmap views) ---------


def legacy_split_tokens(corpus, frac: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The old `split`: each side's documents copied into one new array (`select_docs`)."""
    held = heldout_mask(corpus, frac, seed)
    lengths = np.diff(corpus.offsets)
    tokens = np.asarray(corpus.tokens)
    return tokens[np.repeat(~held, lengths)], tokens[np.repeat(held, lengths)]


def legacy_batch(tokens: np.ndarray, seq_len: int, order: str, seed: int, i: int, b: int,
                 rank: int, world: int) -> tuple[np.ndarray, np.ndarray]:
    """The old `TokenStream.batch`, verbatim, over a flat in-memory array."""
    n_windows = (len(tokens) - 1) // seq_len
    perm = (np.random.default_rng(seed).permutation(n_windows) if order == "shuffled"
            else np.arange(n_windows))
    rows = (i * world + rank) * b + np.arange(b)
    starts = perm[rows % n_windows] * seq_len
    w = np.asarray(tokens[starts[:, None] + np.arange(seq_len + 1)]).astype(np.int64)
    return w[:, :-1], w[:, 1:]


@pytest.mark.parametrize("order", ["curriculum", "shuffled"])
@pytest.mark.parametrize("cached", [False, True])
def test_batches_equal_the_in_memory_implementation(
    run_dir: Path, tmp_path: Path, order: str, cached: bool
) -> None:
    """Same corpus, split and seed -> the very batches the copying implementation gave, on
    every rank, for the train and the held-out stream, through an epoch's wrap-around; the
    streams are views of the corpus array (a memmap when cached), never copies of it."""
    corpus = load_corpus(run_dir, tmp_path / "cache" if cached else None)
    assert isinstance(corpus.tokens, np.memmap) == cached
    train, held = split(corpus, 0.2, seed=3)
    old_train, old_held = legacy_split_tokens(corpus, 0.2, 3)
    for docs, old, seq_len, seed in ((train, old_train, 64, 11), (held, old_held, 32, 0)):
        stream = TokenStream(docs.runs(), seq_len, order, seed)
        assert stream.runs.base is corpus.tokens and len(stream.runs.starts) < docs.n_docs
        assert stream.n_windows == (len(old) - 1) // seq_len
        last = stream.n_windows // 8 + 2  # past the end: the wrap-around too
        for i in (0, 1, last // 2, last):
            for rank, world in ((0, 1), (0, 2), (1, 2)):
                got = stream.batch(i, 8, rank, world)
                want = legacy_batch(old, seq_len, order, seed, i, 8, rank, world)
                assert np.array_equal(got[0], want[0]) and np.array_equal(got[1], want[1])
                assert got[0].dtype == np.int64


def write_weighted_run(run_dir: Path, root: Path) -> Path:
    """A copy of `run_dir` whose first shard upweights some documents (sample_weight 2, 3)."""
    shutil.copytree(run_dir, root)
    first = shard_files(root)[0]
    table = pq.read_table(first)
    weight = np.ones(table.num_rows, np.int32)
    weight[::5], weight[1::7] = 2, 3
    table = table.set_column(table.schema.get_field_index("sample_weight"), "sample_weight",
                             pa.array(weight))
    pq.write_table(table, first)
    return root


def test_shard_cache_is_the_same_corpus_memmapped_and_reused(
    run_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = write_weighted_run(run_dir, tmp_path / "run")
    want = read_shards(run)
    cache = tmp_path / "cache"
    got = load_corpus(run, cache)
    assert isinstance(got.tokens, np.memmap) and got.tokens.dtype == want.tokens.dtype
    assert np.array_equal(np.asarray(got.tokens), want.tokens)
    assert np.array_equal(got.offsets, want.offsets) and got.n_docs > read_shards(run_dir).n_docs
    assert got.doc_ids.equals(want.doc_ids)
    assert (got.vocab_size, got.eos_id) == (want.vocab_size, want.eos_id)
    (entry,) = cache.iterdir()
    stamp = (entry / "header.json").stat().st_mtime_ns
    load_corpus(run, cache)  # same shards: read, not rewritten
    assert (entry / "header.json").stat().st_mtime_ns == stamp and len(list(cache.iterdir())) == 1
    # a relative data.path (`curator train --set data.path=runs/r1`) is the same run, same key
    monkeypatch.chdir(run.parent)
    relative = load_corpus(Path(run.name), cache)
    assert np.array_equal(np.asarray(relative.tokens), want.tokens)
    assert len(list(cache.iterdir())) == 1
    # a shard rewritten (new size/mtime) is a new key, never the stale file
    first = shard_files(run)[0]
    pq.write_table(pq.read_table(first).slice(1), first)
    again = load_corpus(run, cache)
    assert again.n_docs == read_shards(run).n_docs and len(list(cache.iterdir())) == 2
