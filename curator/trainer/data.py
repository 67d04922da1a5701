"""Token data for the trainer: curator shards or a .bin export -> train/held-out token streams.

Order is the curriculum's: `RUN/shards/stage=<k>/part-*.parquet` by stage ascending, then part
file name, then row order; the `curriculum` batch order walks that stream front to back. A
shard row's `sample_weight` (the agent's upweight) is honoured as the bin export honours it:
the document appears that many times in a row (each copy its own document, same doc_id, so
all copies fall on the same side of the held-out split). The
held-out split hashes `doc_id` with a fixed 64-bit FNV-1a (not Python's salted `hash`, not a
library hash whose output may change between versions), so every run and every worker agrees.

Nothing here copies the corpus: a .bin export is memory-mapped, a RUN's shards are converted
once to the same memmappable layout (`cached_shards`, keyed by the shard files' names, sizes and
mtimes), and the train/held-out splits are lists of document runs of that one token array
(`Documents`, `Runs`). A `TokenStream` gathers each batch's windows through them, so a worker's
memory holds the pages its own batches touch, not the corpus.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from connectors.bin import HEADER, BinReader, BinWriter
from curator.hashing import stable_hash
from curator.rundir import RunDir
from curator.schema import SAMPLE_WEIGHT, sample_weights

if TYPE_CHECKING:
    from curator.run_tokenizer import RunTokenizer

_STAGE_DIR = re.compile(r"^stage=(-?\d+)$")
CACHE_PREFIX = "shards-"


@dataclass(frozen=True)
class Corpus:
    """Documents as one flat token array (often a read-only memmap) plus start offsets
    (n_docs + 1)."""

    tokens: np.ndarray
    offsets: np.ndarray
    doc_ids: pa.Array | None
    vocab_size: int
    eos_id: int | None  # None: a tokenizer without an end-of-text token

    @property
    def n_docs(self) -> int:
        return len(self.offsets) - 1

    @property
    def n_tokens(self) -> int:
        return int(self.offsets[-1])

    def docs(self) -> list[np.ndarray]:
        return np.split(np.asarray(self.tokens), self.offsets[1:-1])


@dataclass(frozen=True)
class Runs:
    """A logical token stream made of ranges of one base array, read in order: the kept
    documents of a (memmapped) corpus without copying them. Consecutive kept documents form
    one run, so a 2% held-out split of N documents has about 0.02 N runs, not N."""

    base: np.ndarray
    starts: np.ndarray  # int64: where each run begins in `base`
    lengths: np.ndarray  # int64: tokens per run, all > 0
    logical: np.ndarray = field(init=False)  # int64: where each run begins in the stream

    def __post_init__(self) -> None:
        object.__setattr__(self, "logical", np.cumsum(self.lengths) - self.lengths)

    @classmethod
    def whole(cls, tokens: np.ndarray) -> Runs:
        n = len(tokens)
        return cls(tokens, np.zeros(min(n, 1), np.int64), np.full(min(n, 1), n, np.int64))

    def __len__(self) -> int:
        return int(self.lengths.sum())

    def take(self, pos: np.ndarray) -> np.ndarray:
        """Tokens at stream positions `pos` (any shape): one searchsorted over the run starts
        maps every position to its run, then one fancy index reads base (only those pages of a
        memmap)."""
        if len(self.starts) == 1:
            return np.asarray(self.base[self.starts[0] + pos])
        run = np.searchsorted(self.logical, pos, side="right") - 1
        return np.asarray(self.base[self.starts[run] + (pos - self.logical[run])])

    def copy(self) -> np.ndarray:
        """The stream as one in-memory array (a copy: for statistics over small corpora)."""
        if not len(self.starts):
            return np.asarray(self.base[:0]).copy()
        return np.concatenate(
            [np.asarray(self.base[s : s + n]) for s, n in zip(self.starts, self.lengths,
                                                               strict=True)]
        )


@dataclass(frozen=True)
class Documents:
    """The documents of `corpus` where `keep` is True, in corpus order, as a view."""

    corpus: Corpus
    keep: np.ndarray  # bool per corpus document

    @property
    def n_docs(self) -> int:
        return int(self.keep.sum())

    @property
    def n_tokens(self) -> int:
        return int(np.diff(self.corpus.offsets)[self.keep].sum())

    @property
    def doc_ids(self) -> pa.Array | None:
        ids = self.corpus.doc_ids
        return ids.filter(pa.array(self.keep)) if ids is not None else None

    def runs(self) -> Runs:
        """Maximal runs of consecutive kept documents (empty ones dropped)."""
        edges = np.diff(np.concatenate([[0], self.keep.astype(np.int8), [0]]))
        first, end = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
        starts = self.corpus.offsets[first].astype(np.int64)
        lengths = self.corpus.offsets[end].astype(np.int64) - starts
        nonempty = lengths > 0
        return Runs(self.corpus.tokens, starts[nonempty], lengths[nonempty])


def shard_files(run_dir: str | Path) -> list[Path]:
    """Shard parquet files in curriculum order (stage numerically, then file name)."""
    root = Path(run_dir) / "shards"
    stages = [(int(m.group(1)), d) for d in root.glob("stage=*") if (m := _STAGE_DIR.match(d.name))]
    files = [f for _, d in sorted(stages) for f in sorted(d.glob("part-*.parquet"))]
    if not files:
        raise FileNotFoundError(
            f"no {root}/stage=<k>/part-*.parquet files; point data.path at a curated RUN "
            "directory or a .bin export"
        )
    return files


def _trainable_run(run_dir: str | Path) -> RunDir:
    """The RUN, or the error that says why there is nothing to train on in it."""
    run = RunDir.at(run_dir)
    if run.kept_nothing():
        raise FileNotFoundError(run.kept_nothing_message("train on"))
    if not run.tokenizer.exists():
        raise FileNotFoundError(f"{run.tokenizer} missing; the trainer needs the run's tokenizer")
    return run


def _run_tokenizer(run_dir: str | Path) -> RunTokenizer:
    from curator.run_tokenizer import open_run_tokenizer

    return open_run_tokenizer(_trainable_run(run_dir).root)


def read_shards(run_dir: str | Path) -> Corpus:
    """Load RUN/shards into memory in curriculum order; vocab and EOS from the run's tokenizer.
    (The trainer reads them through `cached_shards` instead, memory-mapped.)"""
    tokenizer = _run_tokenizer(run_dir)
    values, lengths, ids = [], [], []
    for path in shard_files(run_dir):
        table = pq.read_table(path, columns=["doc_id", "tokens"])
        if SAMPLE_WEIGHT in pq.read_schema(path).names:  # runs older than weights lack it
            weight = sample_weights(pq.read_table(path, columns=[SAMPLE_WEIGHT])).to_numpy()
            if (weight != 1).any():
                table = table.take(pa.array(np.repeat(np.arange(table.num_rows), weight)))
        # per chunk: int32 list offsets of one chunk are safe; combining all could overflow
        for chunk in table.column("tokens").chunks:
            values.append(chunk.flatten().to_numpy(zero_copy_only=False))
            lengths.append(np.diff(chunk.offsets.to_numpy()))
        ids.append(table.column("doc_id").combine_chunks())
    lengths_all = np.concatenate(lengths).astype(np.int64)
    offsets = np.concatenate([[0], np.cumsum(lengths_all)]).astype(np.int64)
    vocab = tokenizer.vocab_size
    dtype = np.uint16 if vocab < 2**16 else np.uint32
    tokens = np.concatenate(values).astype(dtype, copy=False)
    return Corpus(tokens, offsets, pa.concat_arrays(ids), vocab, tokenizer.eos_id)


def shards_key(run_dir: str | Path) -> str:
    """Identity of a RUN's shards (and tokenizer): names, sizes and mtimes, hashed. A
    re-curated run gets a new key, so a stale cache is never read."""
    run = _trainable_run(run_dir)
    h = hashlib.sha256()
    for path in [*shard_files(run.root), run.tokenizer]:  # both absolute, as run.root is
        st = path.stat()
        h.update(f"{path.relative_to(run.root)}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:24]


def write_shard_cache(run_dir: str | Path, target: Path, batch_rows: int = 4096) -> None:
    """RUN/shards -> a .bin export at `target` (connectors/bin.py layout), streamed one
    record batch at a time; written under a temp name and renamed, so `target` is either
    absent or complete, and concurrent writers of the same key are harmless."""
    tokenizer = _run_tokenizer(run_dir)
    tmp = target.with_name(f"{target.name}.tmp-{uuid.uuid4().hex[:8]}")
    # weighted: each document repeated sample_weight times in a row, as read_shards does
    writer = BinWriter(tmp, tokenizer.vocab_size, tokenizer.eos_id, weighted=True)
    try:
        for path in shard_files(run_dir):
            pf = pq.ParquetFile(path)
            columns = ["doc_id", "tokens"]
            if SAMPLE_WEIGHT in pf.schema_arrow.names:
                columns.append(SAMPLE_WEIGHT)
            for rb in pf.iter_batches(batch_size=batch_rows, columns=columns):
                table = pa.Table.from_batches([rb])
                writer.write(rb.column("tokens"), rb.column("doc_id"),
                             repeats=sample_weights(table).to_numpy())
        writer.close()
    except BaseException:
        writer.abort()
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    try:
        os.rename(tmp, target)
    except OSError:  # another process renamed its identical copy first
        if not (target / HEADER).exists():
            raise
        shutil.rmtree(tmp, ignore_errors=True)


def cached_shards(
    run_dir: str | Path, cache_dir: str | Path, rank: int = 0, world: int = 1
) -> Corpus:
    """RUN/shards memory-mapped: rank 0 converts them once into `cache_dir/shards-<key>/`,
    every rank waits for it (torch.distributed barrier when world > 1) and maps the file."""
    target = Path(cache_dir) / f"{CACHE_PREFIX}{shards_key(run_dir)}"
    if rank == 0 and not (target / HEADER).exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        write_shard_cache(run_dir, target)
    if world > 1:
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized():
            dist.barrier()
    if not (target / HEADER).exists():
        # a rank on another node whose cache_dir is not shared with rank 0: its own copy
        target.parent.mkdir(parents=True, exist_ok=True)
        write_shard_cache(run_dir, target)
    return read_bin(target)


def read_bin(path: str | Path) -> Corpus:
    r = BinReader(path)
    return Corpus(r.tokens, r.offsets, r.doc_ids(), r.vocab_size, r.eos_id)


def load_corpus(
    path: str | Path, cache_dir: str | Path | None = None, rank: int = 0, world: int = 1
) -> Corpus:
    """A RUN directory (has shards/) or a .bin export directory (has header.json).

    A .bin export is memory-mapped. A RUN's shards are memory-mapped from a cache under
    `cache_dir` (see `cached_shards`), or read into memory when `cache_dir` is None."""
    p = Path(path)
    if (p / HEADER).exists():
        return read_bin(p)
    if (p / "shards").is_dir():
        if cache_dir is None:
            return read_shards(p)
        return cached_shards(p, cache_dir, rank, world)
    raise FileNotFoundError(
        f"{p} is neither a RUN directory (RUN/shards/...) nor a .bin export ({HEADER}); "
        "set data.path to one of them"
    )


def heldout_mask(corpus: Corpus, frac: float, seed: int = 0) -> np.ndarray:
    """Bool per document: held out. By doc_id hash; by document ordinal if ids are absent."""
    ids = corpus.doc_ids
    if ids is None:  # a .bin export without doc_ids.parquet: ordinal is the only stable key
        ids = pa.array(np.arange(corpus.n_docs).astype(str))
    buckets = stable_hash(ids, seed) % np.uint64(1 << 20)
    return buckets < np.uint64(round(frac * (1 << 20)))


def select_docs(corpus: Corpus, keep: np.ndarray) -> Documents:
    """The documents where keep is True, order preserved (a view; no token is copied)."""
    return Documents(corpus, np.asarray(keep, bool))


def split(corpus: Corpus, heldout_frac: float, seed: int = 0) -> tuple[Documents, Documents]:
    """(train, held-out) documents of `corpus`, by doc_id hash (views of its token array)."""
    held = heldout_mask(corpus, heldout_frac, seed)
    return select_docs(corpus, ~held), select_docs(corpus, held)


class TokenStream:
    """Fixed windows of seq_len + 1 tokens over a flat stream (documents joined, EOS inside).

    The stream is an array or `Runs` (kept documents of a larger, possibly memmapped array);
    either way only each batch's windows are read. Batch `i` is a pure function of `i` (and
    rank/world), so resuming at step s replays exactly the batches an uninterrupted run would
    have seen, and workers never overlap.
    """

    def __init__(
        self, tokens: np.ndarray | Runs, seq_len: int, order: str = "curriculum", seed: int = 0
    ) -> None:
        self.runs = tokens if isinstance(tokens, Runs) else Runs.whole(tokens)
        self.seq_len = seq_len
        n_tokens = len(self.runs)
        self.n_windows = max(0, (n_tokens - 1) // seq_len)
        if self.n_windows == 0:
            raise ValueError(
                f"{n_tokens} tokens cannot fill one window of seq_len={seq_len} + 1; "
                "use more data or a smaller model.seq_len"
            )
        if order == "shuffled":
            self.order = np.random.default_rng(seed).permutation(self.n_windows)
        else:
            self.order = np.arange(self.n_windows)
        self._span = np.arange(seq_len + 1)

    def batch(
        self, i: int, batch_size: int, rank: int = 0, world: int = 1
    ) -> tuple[np.ndarray, np.ndarray]:
        """(x, y) int64 (batch_size, seq_len); wraps around (a new epoch) past the end."""
        rows = (i * world + rank) * batch_size + np.arange(batch_size)
        starts = self.order[rows % self.n_windows] * self.seq_len
        w = self.runs.take(starts[:, None] + self._span).astype(np.int64)
        return w[:, :-1], w[:, 1:]
