"""Distributed connected components against a reference union-find."""

from __future__ import annotations

import random
from pathlib import Path

import polars as pl
import pytest

from curator.stages.components import (
    connected_components,
    large_star,
    read_labels,
    small_star,
    write_edges_for_components,
)


def reference_labels(edges: list[tuple[str, str]]) -> dict[str, str]:
    """Union-find: node -> minimum node of its component (string order)."""
    parent: dict[str, str] = {}

    def find(x: str) -> str:
        parent.setdefault(x, x)
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for a, b in edges:
        ra, rb = find(a), find(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
    return {x: find(x) for x in list(parent)}


def random_graph(seed: int) -> list[tuple[str, str]]:
    rng = random.Random(seed)
    names = [f"{rng.getrandbits(40):010x}" for _ in range(600)]
    edges = []
    # Sparse random edges: many small components.
    for _ in range(250):
        a, b = rng.sample(names[:300], 2)
        edges.append((a, b))
    # A long chain in random name order: the worst case for plain label propagation.
    chain = names[300:500]
    edges += list(zip(chain, chain[1:], strict=False))
    # A star, a cycle and a few parallel / self-referencing duplicates.
    edges += [(names[500], x) for x in names[501:540]]
    cycle = names[540:600]
    edges += list(zip(cycle, cycle[1:] + cycle[:1], strict=True))
    edges += edges[:20]
    return edges


def as_edge_frame(edges: list[tuple[str, str]]) -> pl.DataFrame:
    src = [max(a, b) for a, b in edges]
    dst = [min(a, b) for a, b in edges]
    return pl.DataFrame({"src": src, "dst": dst}).filter(pl.col("src") != pl.col("dst"))


def run_cc(edges: list[tuple[str, str]], tmp: Path, parts: int, producers: int, seed: int):
    rng = random.Random(seed)
    edges = edges[:]
    rng.shuffle(edges)
    frame = as_edge_frame(edges)
    # Several producers, as bucket-reduce tasks would write them.
    for q in range(producers):
        chunk = frame.slice(q * frame.height // producers, frame.height // producers + 1)
        write_edges_for_components(chunk, tmp, parts, q)
    comps = connected_components(tmp, parts, concurrency=4)
    labels = pl.concat([read_labels(comps.labels_dir, p) for p in range(parts)])
    return dict(zip(labels["doc_id"], labels["label"], strict=True)), comps.rounds


@pytest.mark.parametrize("parts,producers,seed", [(1, 1, 0), (3, 2, 1), (7, 5, 2)])
def test_matches_union_find(ray_cluster, tmp_path, parts, producers, seed):
    edges = random_graph(seed=42)
    got, rounds = run_cc(edges, tmp_path, parts, producers, seed)
    ref = reference_labels(edges)
    expected = {node: root for node, root in ref.items() if node != root}
    assert got == expected
    assert 1 <= rounds < 40


def test_labels_independent_of_partitions_and_order(ray_cluster, tmp_path):
    edges = random_graph(seed=7)
    a, _ = run_cc(edges, tmp_path / "a", parts=1, producers=1, seed=0)
    b, _ = run_cc(edges, tmp_path / "b", parts=7, producers=3, seed=99)
    assert a == b and len(a) > 300


def test_long_chain_converges(ray_cluster, tmp_path):
    # Names in descending order along the chain: every step of naive propagation moves 1 hop.
    chain = [f"n{i:05d}" for i in range(2000, 0, -1)]
    edges = list(zip(chain, chain[1:], strict=False))
    got, rounds = run_cc(edges, tmp_path, parts=4, producers=2, seed=3)
    assert set(got.values()) == {"n00001"}
    assert len(got) == 1999
    assert rounds < 30  # logarithmic-ish, far below the 2000 hops of propagation


def test_empty_graph(ray_cluster, tmp_path):
    comps = connected_components(tmp_path, 3, concurrency=2)
    assert comps.rounds == 1
    assert all(read_labels(comps.labels_dir, p).height == 0 for p in range(3))


def test_star_steps_on_a_path():
    # Path a-b-c-d with a smallest: large-star hangs c on b's min (a), small-star d on c's min.
    adj = pl.DataFrame({"u": ["a", "b", "b", "c", "c", "d"], "v": ["b", "a", "c", "b", "d", "c"]})
    edges, changed = large_star(adj)
    assert sorted(zip(edges["src"], edges["dst"], strict=True)) == [
        ("b", "a"),
        ("c", "a"),
        ("d", "b"),
    ]
    assert changed == 2  # (c, a) replaced (c, b); (d, b) replaced (d, c)
    ss_in = pl.DataFrame({"u": ["b", "c", "d", "d"], "v": ["a", "a", "b", "a"]})
    edges, changed = small_star(ss_in)
    assert set(zip(edges["src"], edges["dst"], strict=True)) == {("b", "a"), ("c", "a"), ("d", "a")}
    assert changed == 1
