"""Natural pools: real crawl text as the candidates, clean text the user names as the target.

No label and no corruption anywhere: the candidates are whatever the inputs hold (crawl pages
with their menus, spam, other languages, fragments) and the only notion of "good" is the
target, text the user wants the model to be good at (`agent.target`: paths or a DuckDB query,
read by the project's own connectors, as `curate` reads its inputs).

The target is split three ways by a hash of the text, so the split does not depend on the
order or the set of inputs:
- `fit`: fits the target-aware features (classifier, DSIR) and the reference LM;
- `reward`: the held-out stream the environment's learner is rewarded on;
- `evaluation` (benchmarks only): never enters any training or fitting.
Fit and reward are disjoint so the RL reward does not grade a classifier on its own training
text (the earlier selection benchmark did).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from curator.config import InputSpec, ReadConfig
from curator.schema import QUARANTINED
from policies.pool import Pool


@dataclass(frozen=True)
class Documents:
    texts: list[str]
    origins: list[str]  # the input (file) each text came from


def read_documents(specs: Sequence[InputSpec], min_chars: int = 200) -> Documents:
    """Every readable record of `specs` with at least `min_chars` characters, in input order.

    Read with the curate connectors (`read_unit`): WARC pages and `html_field` records are
    extracted the same way, bad records are skipped here (curate would quarantine them).
    """
    from connectors.registry import expand_inputs, read_unit

    cfg = ReadConfig()
    texts: list[str] = []
    origins: list[str] = []
    for unit in expand_inputs(list(specs)):
        for table in read_unit(unit, cfg):
            ok = pc.and_(pc.not_equal(table.column("decision"), QUARANTINED),
                         pc.greater_equal(pc.utf8_length(pc.fill_null(table.column("text"), "")),
                                          min_chars))
            kept = table.filter(ok).column("text").to_pylist()
            texts.extend(kept)
            origins.extend([unit.source.rsplit("/", 1)[-1]] * len(kept))
    return Documents(texts, origins)


def text_hash_unit(texts: Sequence[str], salt: int = 0) -> np.ndarray:
    """A uniform number in [0, 1) per text from polars' hash of its bytes: the same in every
    run and for any order or set of inputs (for one polars version: a split that must hold
    across installs would use curator.hashing.stable_hash, whose byte loop is slow on the
    long documents of a crawl)."""
    hashes = pc.cast(pa.array(list(texts), pa.string()), pa.binary())
    import polars as pl

    h = pl.Series(hashes).hash(seed=salt).to_numpy()
    return (h >> np.uint64(11)).astype(np.float64) / float(1 << 53)


def distinct(texts: Sequence[str]) -> np.ndarray:
    """Indices of the documents that are not a near-duplicate of an earlier one (MinHash)."""
    from curator.stages.dedup_memory import near_duplicate_copies

    return np.flatnonzero(~near_duplicate_copies(list(texts)))


@dataclass(frozen=True)
class TargetSplit:
    fit: list[str]
    reward: list[str]
    evaluation: list[str]


def split_target(texts: Sequence[str], fit: float, reward: float, salt: int = 0) -> TargetSplit:
    """Hash split of the target: `fit` share, `reward` share, the rest for evaluation."""
    if not (0 < fit and 0 < reward and fit + reward <= 1):
        raise ValueError(f"target split fit={fit}, reward={reward}: both > 0, sum <= 1")
    u = text_hash_unit(texts, salt)

    def pick(mask: np.ndarray) -> list[str]:
        return [t for t, keep in zip(texts, mask, strict=True) if keep]

    return TargetSplit(pick(u < fit), pick((u >= fit) & (u < fit + reward)),
                       pick(u >= fit + reward))


def natural_pool(inputs: Sequence[InputSpec], target: Sequence[InputSpec], fit_fraction: float,
                 seed: int = 0) -> Pool:
    """The pool of `curator agent train` with pool.source=inputs: every distinct document of
    `inputs` (near-duplicate copies dropped, as curate's dedup would), the target split into
    the fitting part and the reward's held-out part (no evaluation share: that is the
    benchmark's business)."""
    docs = read_documents(inputs)
    if not docs.texts:
        raise ValueError("pool.inputs hold no document of >= 200 characters")
    goal = read_documents(target, min_chars=1)
    # a salt of its own: a target that is itself one part of an earlier split by the same
    # hash (the natural benchmark's evaluation part, the loop's clean text) still splits
    split = split_target(goal.texts, fit_fraction, 1 - fit_fraction, salt=1)
    if not split.fit or not split.reward:
        raise ValueError(f"agent target has {len(goal.texts)} documents: too few to split "
                         "into a fitting part and a reward part; add target text")
    keep = distinct(docs.texts)
    order = keep[np.random.default_rng(seed).permutation(len(keep))]
    return Pool(pa.array([docs.texts[i] for i in order], pa.string()), None, split.reward,
                split.fit)
