"""The pure pieces of benchmarks/whole_pipeline.py: the corpus builder on tiny made-up sources
and the process-tree sampler (no Ray, no datatrove run)."""

from __future__ import annotations

import ctypes
import gzip
import json
import sys
from pathlib import Path

import pytest

from benchmarks import whole_pipeline as wp

BURN = "import time\nt = time.process_time()\nwhile time.process_time() - t < 0.5: pass"


def _sentence(i: int) -> str:
    return f"Line {i} of the made-up text says something about item number {i * 7}."


def _sources(root: Path) -> wp.Sources:
    """One small file per source kind, ~45 KB of text in all."""
    root.mkdir(parents=True)
    with gzip.open(root / "books.jsonl.gz", "wt") as f:
        book = "\n".join(_sentence(i) for i in range(300))  # ~21 KB: chunked
        f.write(json.dumps({"id": "b0", "text": book}) + "\n")
    with gzip.open(root / "cc_web.jsonl.gz", "wt") as f:
        for i in range(3):
            f.write(json.dumps({"id": f"w{i}", "text": f"Web page {i}. " + _sentence(i)}) + "\n")
    kernel = root / "kernel" / "sub"
    kernel.mkdir(parents=True)
    for k in range(2):
        with gzip.open(kernel / f"doc{k}.rst.gz", "wt") as f:
            f.write("Title\n=====\n\n" + "\n".join(_sentence(100 * k + i) for i in range(60)))
    handbook = root / "handbook"
    handbook.mkdir()
    body = "".join(f"<p>{_sentence(i)}</p>" for i in range(40))
    (handbook / "a.html").write_text(
        f"<html><head><title>T</title><script>var x;</script></head><body>{body}</body></html>"
    )
    gcide = root / "gcide.dict.dz"
    with gzip.open(gcide, "wt") as f:
        f.write("00-database-url\n   x\n\n")
        f.write("\n\n".join(f"Word{i} \\Word\\, n.\n   {_sentence(i)}" for i in range(80)))
    return wp.Sources(
        books=[root / "books.jsonl.gz"],
        web=[root / "cc_web.jsonl.gz"],
        kernel_docs=root / "kernel",
        handbook=handbook,
        gcide=gcide,
    )


def _read(folder: Path) -> list[dict]:
    rows = []
    for p in sorted(folder.glob("*.jsonl.gz")):
        with gzip.open(p, "rt") as f:
            rows += [json.loads(line) for line in f]
    return rows


def test_corpus_repeats_when_the_sources_run_out(tmp_path):
    sources = _sources(tmp_path / "src")
    info = wp.build_corpus(0.2, tmp_path / "out", sources, seed=1)
    files = sorted((tmp_path / "out").glob("*.jsonl.gz"))
    assert len(files) == 16
    rows = _read(tmp_path / "out")
    ids = [r["id"] for r in rows]
    assert len(ids) == len(set(ids)) == info["docs"]
    size = sum(len(r["text"].encode()) for r in rows)
    assert size == pytest.approx(info["text_mb"] * 1e6)
    assert 0.2e6 <= size < 0.2e6 + 25_000  # stops within one document of the target
    assert info["distinct_available_mb"] < 0.1
    assert info["repeats"] > 0 and info["repeat_mb"] > 0.1
    assert info["distinct_docs"] == info["distinct_available_docs"]
    distinct = {r["text"] for r in rows}
    assert len(distinct) <= info["distinct_docs"]  # repeats are exact duplicates
    assert set(info["by_source"]) == {"books", "web", "kernel_docs", "handbook", "gcide"}
    assert not any("<p>" in r["text"] or "var x" in r["text"] for r in rows)
    assert not any(r["text"].startswith("00-database") for r in rows)


def test_small_corpus_is_distinct_mixed_and_deterministic(tmp_path):
    sources = _sources(tmp_path / "src")
    a = wp.build_corpus(0.01, tmp_path / "a", sources, seed=3)
    b = wp.build_corpus(0.01, tmp_path / "b", sources, seed=3)
    assert a == {**b, "dir": a["dir"]}
    assert a["repeats"] == 0 and a["docs"] >= 5
    assert _read(tmp_path / "a") == _read(tmp_path / "b")
    # round-robin: the first documents come from every source
    assert all(v["docs"] >= 1 for v in a["by_source"].values())


def test_chunks_are_line_aligned_and_in_range():
    import random

    text = "\n".join(_sentence(i) for i in range(1000))
    chunks = wp.chunk_lines(text, random.Random(0))
    assert "\n".join(chunks) == text
    assert all(2000 <= len(c) + 1 <= 4000 + 100 for c in chunks[:-1])


def burning_grandchild(spawn: str) -> list[str]:
    """A python whose child burns CPU; `spawn` "run" waits for it, "Popen" leaves it orphaned."""
    code = f"import subprocess, sys; subprocess.{spawn}([sys.executable, '-c', {BURN!r}])"
    return [sys.executable, "-c", code]


def test_sampler_counts_a_grandchild_cpu():
    m = wp.measure_tree(burning_grandchild("run"))
    assert m["rc"] == 0
    assert m["cpu_s"] >= 0.4
    assert m["procs_seen"] >= 2
    assert m["peak_pss_mb"] > 1 and m["peak_proc_pss_mb"] <= m["peak_pss_mb"]
    assert m["wall_s"] >= 0.4


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="subreaper is Linux-only")
def test_sampler_counts_an_orphaned_grandchild():
    # the child exits at once; its grandchild burns on, reparented to the sampler
    m = wp.measure_tree(burning_grandchild("Popen"))
    assert m["rc"] == 0 and m["subreaper"]
    assert m["cpu_s"] >= 0.4
    assert m["wall_s"] < m["cpu_s"]  # the command itself returned before the burn ended
    # the subreaper setting is this process's only while it measures
    libc = ctypes.CDLL(None, use_errno=True)
    flag = ctypes.c_int(1)
    libc.prctl(wp.PR_GET_CHILD_SUBREAPER, ctypes.byref(flag), 0, 0, 0)
    assert flag.value == 0
