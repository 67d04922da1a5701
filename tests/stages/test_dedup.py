"""End-to-end dedup over small pass-1 files built with the real pass-1 steps."""

from __future__ import annotations

import random
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from curator.config import DedupConfig
from curator.stages import dedup
from curator.stages.dedup import dups_path, partition_count, run_dedup
from curator.stages.dedup_exact import ExactHash
from curator.stages.minhash import MinHashSignature


def _words(rng: random.Random, n: int) -> list[str]:
    return [f"w{rng.randrange(10**9)}" for _ in range(n)]


def _edit(rng: random.Random, text: str, kind: str) -> str:
    ws = text.split()
    i = rng.randrange(20, len(ws) - 20)
    if kind == "substitute":
        ws[i] = "changed"
    elif kind == "delete":
        del ws[i]
    else:
        ws.insert(i, "inserted")
    return " ".join(ws)


def _id(rng: random.Random) -> str:
    return f"{rng.getrandbits(48):012x}"


def build_corpus(seed: int = 0):
    """4 sources of docs (doc_id, text, decision) and the planted clusters.

    Returns per-source rows and `clusters`: list of (members, exact groups within members).
    """
    rng = random.Random(seed)
    base = [" ".join(_words(rng, 200)) for _ in range(12)]
    sources: list[list[tuple[str, str | None, str]]] = [[] for _ in range(4)]
    clusters: list[set[str]] = []  # near components (incl. exact copies)
    exact: list[set[str]] = []  # groups of identical text

    def add(src: int, text: str | None, decision: str = "kept") -> str:
        doc_id = _id(rng)
        sources[src].append((doc_id, text, decision))
        return doc_id

    for i, text in enumerate(base):
        add(i % 4, text)
    # Exact copies across files (one also dropped by an earlier rule: ignored).
    a = [sources[0][0][0], add(1, base[0]), add(3, base[0])]
    exact.append(set(a))
    clusters.append(set(a))
    add(2, base[1], "dropped")
    # Near copies: one word substituted / deleted / inserted.
    b = [
        sources[2][0][0],
        add(0, _edit(rng, base[2], "substitute")),
        add(3, _edit(rng, base[2], "delete")),
        add(1, _edit(rng, base[2], "insert")),
    ]
    clusters.append(set(b))
    # A near copy that itself has exact copies: exact group {n3, e3, f3} near base[3].
    near3 = _edit(rng, base[3], "substitute")
    c_exact = [add(1, near3), add(2, near3), add(0, near3)]
    exact.append(set(c_exact))
    clusters.append({sources[3][0][0], *c_exact})
    # Short docs (fewer words than a shingle) duplicated exactly.
    d = [add(0, "ok thanks"), add(2, "ok thanks")]
    exact.append(set(d))
    clusters.append(set(d))
    add(3, None, "quarantined")
    return sources, clusters, exact


def expected_dups(clusters: list[set[str]], exact: list[set[str]]) -> pl.DataFrame:
    rows = []
    for members in clusters:
        kept = min(members)
        groups = [g for g in exact if g <= members]
        copies = {d for g in groups for d in g if d != min(g)}
        for doc in sorted(members - {kept}):
            reason = "exact_duplicate" if doc in copies else "near_duplicate"
            rows.append({"doc_id": doc, "duplicate_of": kept, "reason": reason})
    return pl.DataFrame(rows).sort("doc_id")


def write_pass1(sources, folder: Path, cfg: DedupConfig) -> list[tuple[int, str]]:
    units = []
    steps = [ExactHash(cfg), MinHashSignature(cfg)]
    for idx, docs in enumerate(sources):
        doc_id, text, decision = zip(*docs, strict=True)
        t = pa.table({"doc_id": list(doc_id), "text": list(text), "decision": list(decision)})
        for step in steps:
            t = step(t)
        path = folder / "pass1" / f"source={idx:05d}.parquet"
        path.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(t, path)
        units.append((idx, str(path)))
    return units


def read_all(workdir: Path, n_sources: int) -> pl.DataFrame:
    frames = [pl.read_parquet(dups_path(workdir, s)) for s in range(n_sources)]
    return pl.concat(frames).sort("doc_id")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    folder = tmp_path_factory.mktemp("dedup")
    sources, clusters, exact = build_corpus()
    units = write_pass1(sources, folder, DedupConfig(threshold=0.5))
    return folder, units, expected_dups(clusters, exact)


def test_planted_exact_and_near_duplicates_found(ray_cluster, corpus, tmp_path):
    _, units, expected = corpus
    summary = run_dedup(units, str(tmp_path), DedupConfig(num_partitions=3), concurrency=2)
    got = read_all(tmp_path, len(units))
    assert got.to_dicts() == expected.to_dicts()
    assert summary.n_exact_duplicates == (expected["reason"] == "exact_duplicate").sum()
    assert summary.n_near_duplicates == (expected["reason"] == "near_duplicate").sum()
    assert summary.n_clusters == 4
    assert summary.n_docs == 22 and summary.cc_rounds >= 1
    # Every source has its file, and every duplicate_of is a doc that is kept.
    assert all(dups_path(tmp_path, s).exists() for s, _ in units)
    assert not set(got["duplicate_of"]) & set(got["doc_id"])
    assert not (tmp_path / "_dedup").exists()


def test_same_output_for_partitions_unit_order_and_reruns(ray_cluster, corpus, tmp_path):
    _, units, _ = corpus
    run_dedup(units, str(tmp_path / "a"), DedupConfig(num_partitions=1), concurrency=1)
    shuffled = units[:]
    random.Random(3).shuffle(shuffled)
    run_dedup(shuffled, str(tmp_path / "b"), DedupConfig(num_partitions=7), concurrency=4)
    for s, _ in units:
        a = pq.read_table(dups_path(tmp_path / "a", s))
        assert a.equals(pq.read_table(dups_path(tmp_path / "b", s)))
    first = {s: dups_path(tmp_path / "b", s).read_bytes() for s, _ in units}
    run_dedup(shuffled, str(tmp_path / "b"), DedupConfig(num_partitions=7), concurrency=4)
    assert first == {s: dups_path(tmp_path / "b", s).read_bytes() for s, _ in units}


def test_auto_partitions_follow_the_pass1_rows(ray_cluster, corpus, tmp_path, monkeypatch):
    """'auto' resolves from the pass-1 footers (every row, kept or not) and the shuffles' rows
    per document; with a small per-partition budget the same corpus takes several partitions,
    and the duplicates found are the same as with one."""
    _, units, expected = corpus
    rows = sum(pq.read_metadata(path).num_rows for _, path in units)
    assert partition_count(DedupConfig(), rows) == 1
    assert partition_count(DedupConfig(num_partitions=5), rows) == 5
    # 1 exact + 14 band rows per document: 10 documents fill 150 rows
    assert partition_count(DedupConfig(), 10) == 1
    monkeypatch.setattr(dedup, "AUTO_ROWS_PER_PARTITION", 150)
    assert partition_count(DedupConfig(), 10) == 1
    assert partition_count(DedupConfig(), 11) == 2
    assert partition_count(DedupConfig(near=False), 300) == 2
    assert partition_count(DedupConfig(), rows) == -(-rows * 15 // 150)
    summary = run_dedup(units, str(tmp_path), DedupConfig(), concurrency=2)
    assert summary.partitions == -(-rows * 15 // 150) > 1
    assert read_all(tmp_path, len(units)).to_dicts() == expected.to_dicts()
    monkeypatch.undo()
    summary = run_dedup(units, str(tmp_path / "one"), DedupConfig(), concurrency=2)
    assert summary.partitions == 1
    assert read_all(tmp_path / "one", len(units)).to_dicts() == expected.to_dicts()


def test_threshold_keeps_planted_pairs(ray_cluster, corpus, tmp_path):
    _, units, expected = corpus
    run_dedup(units, str(tmp_path), DedupConfig(num_partitions=2, threshold=0.5))
    assert read_all(tmp_path, len(units)).to_dicts() == expected.to_dicts()


def test_exact_only_and_near_only(ray_cluster, corpus, tmp_path):
    _, units, expected = corpus
    run_dedup(units, str(tmp_path / "e"), DedupConfig(near=False, num_partitions=2))
    got = read_all(tmp_path / "e", len(units))
    assert set(got["reason"]) == {"exact_duplicate"}
    assert got.height == (expected["reason"] == "exact_duplicate").sum()
    run_dedup(units, str(tmp_path / "n"), DedupConfig(exact=False, num_partitions=2))
    got = read_all(tmp_path / "n", len(units))
    # Without exact dedup every copy is a near duplicate of the cluster minimum.
    assert set(got["reason"]) == {"near_duplicate"}
    assert got.select("doc_id", "duplicate_of").equals(expected.select("doc_id", "duplicate_of"))
    run_dedup(units, str(tmp_path / "x"), DedupConfig(exact=False, near=False))
    assert read_all(tmp_path / "x", len(units)).height == 0


def test_missing_column_is_reported_with_fix(ray_cluster, tmp_path):
    path = tmp_path / "p.parquet"
    pq.write_table(pa.table({"doc_id": ["a"], "decision": ["kept"]}), path)
    with pytest.raises(ValueError, match=r"lacks \[.text_hash., .minhash_bands.\]"):
        run_dedup([(0, str(path))], str(tmp_path / "w"), DedupConfig())
