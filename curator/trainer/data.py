"""Token data for the trainer: curator shards or a .bin export -> train/held-out token streams.

Order is the curriculum's: `RUN/shards/stage=<k>/part-*.parquet` by stage ascending, then part
file name, then row order; the `curriculum` batch order walks that stream front to back. A
shard row's `sample_weight` (the agent's upweight) is honoured as the bin export honours it:
the document appears that many times in a row (each copy its own document, same doc_id, so
all copies fall on the same side of the held-out split). The
held-out split hashes `doc_id` with a fixed 64-bit FNV-1a (not Python's salted `hash`, not a
library hash whose output may change between versions), so every run and every worker agrees.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from connectors.bin import HEADER, BinReader
from curator.hashing import stable_hash
from curator.rundir import RunDir
from curator.schema import SAMPLE_WEIGHT, sample_weights

_STAGE_DIR = re.compile(r"^stage=(-?\d+)$")


@dataclass(frozen=True)
class Corpus:
    """Documents as one flat token array plus start offsets (n_docs + 1)."""

    tokens: np.ndarray
    offsets: np.ndarray
    doc_ids: pa.Array | None
    vocab_size: int
    eos_id: int | None  # None: a tokenizer without an end-of-text token

    @property
    def n_docs(self) -> int:
        return len(self.offsets) - 1

    def docs(self) -> list[np.ndarray]:
        return np.split(np.asarray(self.tokens), self.offsets[1:-1])


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


def read_shards(run_dir: str | Path) -> Corpus:
    """Load RUN/shards in curriculum order; vocab and EOS from the run's tokenizer."""
    from curator.run_tokenizer import open_run_tokenizer

    run = RunDir.at(run_dir)
    if run.kept_nothing():
        raise FileNotFoundError(run.kept_nothing_message("train on"))
    if not run.tokenizer.exists():
        raise FileNotFoundError(f"{run.tokenizer} missing; the trainer needs the run's tokenizer")
    tokenizer = open_run_tokenizer(run.root)
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


def read_bin(path: str | Path) -> Corpus:
    r = BinReader(path)
    return Corpus(r.tokens, r.offsets, r.doc_ids(), r.vocab_size, r.eos_id)


def load_corpus(path: str | Path) -> Corpus:
    """A RUN directory (has shards/) or a .bin export directory (has header.json)."""
    p = Path(path)
    if (p / HEADER).exists():
        return read_bin(p)
    if (p / "shards").is_dir():
        return read_shards(p)
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


def select_docs(corpus: Corpus, keep: np.ndarray) -> Corpus:
    """Sub-corpus of documents where keep is True, order preserved."""
    lengths = np.diff(corpus.offsets)
    token_keep = np.repeat(keep, lengths)
    kept_lengths = lengths[keep]
    offsets = np.concatenate([[0], np.cumsum(kept_lengths)]).astype(np.int64)
    ids = corpus.doc_ids.filter(pa.array(keep)) if corpus.doc_ids is not None else None
    return Corpus(
        np.asarray(corpus.tokens)[token_keep], offsets, ids, corpus.vocab_size, corpus.eos_id
    )


def split(corpus: Corpus, heldout_frac: float, seed: int = 0) -> tuple[Corpus, Corpus]:
    held = heldout_mask(corpus, heldout_frac, seed)
    return select_docs(corpus, ~held), select_docs(corpus, held)


class TokenStream:
    """Fixed windows of seq_len + 1 tokens over a flat stream (documents joined, EOS inside).

    Batch `i` is a pure function of `i` (and rank/world), so resuming at step s replays exactly
    the batches an uninterrupted run would have seen, and workers never overlap.
    """

    def __init__(
        self, tokens: np.ndarray, seq_len: int, order: str = "curriculum", seed: int = 0
    ) -> None:
        self.tokens, self.seq_len = tokens, seq_len
        self.n_windows = max(0, (len(tokens) - 1) // seq_len)
        if self.n_windows == 0:
            raise ValueError(
                f"{len(tokens)} tokens cannot fill one window of seq_len={seq_len} + 1; "
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
        w = np.asarray(self.tokens[starts[:, None] + self._span]).astype(np.int64)
        return w[:, :-1], w[:, 1:]
