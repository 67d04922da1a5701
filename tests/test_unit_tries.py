"""Bounded tries per unit: a file whose worker dies every time is quarantined, the run ends."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl

from curator.executor import run_curate
from curator.unit_tries import UnitTries, give_up_error
from tests.test_curate_e2e import curate_config


def test_only_this_sessions_tries_count(tmp_path: Path) -> None:
    # A killed driver's in-flight tries say nothing about the data: a resumed run (a new
    # session) starts its count at zero, so it cannot give up a unit an uninterrupted run keeps.
    before = UnitTries(tmp_path, "pass1", 3, session="a")
    before.start()
    before.start()
    now = UnitTries(tmp_path, "pass1", 3, session="b")
    assert now.failed() == []
    now.start()
    now.end("ValueError: boom")
    assert [t.ended for t in now.failed()] == ["ValueError: boom"]
    assert len(before.failed()) == 2
    error = give_up_error(before.failed() + now.failed(), 3)
    assert error.startswith("given up after 3 tries (ray.max_unit_attempts=3)")
    assert "died with no word" in error and "ValueError: boom" in error


def two_small_files(corpus: Path) -> Path:
    """Two jsonl files of five short documents each."""
    corpus.mkdir()
    for i in range(2):
        rows = [{"id": f"{i}-{j}", "text": f"document {j} of file {i} " * 20} for j in range(5)]
        (corpus / f"f{i}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return corpus


def test_a_unit_over_the_memory_bound_is_given_up_and_the_run_finishes(ray_cluster, tmp_path):
    corpus = two_small_files(tmp_path / "in")
    out = tmp_path / "run"
    # Every worker is over a 1-byte bound, so every try ends: the run must still finish, each
    # file quarantined once (as one record) with the cause, instead of retrying forever.
    cfg = curate_config(
        corpus, out, **{"ray.worker_memory_bytes": 1, "ray.max_unit_attempts": 2}
    )
    stats = run_curate(cfg)
    m = pl.read_parquet(out / "manifest" / "*.parquet")
    assert m.height == 2 and stats["records"] == 2
    assert set(m["reason"]) == {"unit_failed"}
    for error in m["error"]:
        assert "given up after 2 tries (ray.max_unit_attempts=2)" in error
        assert "worker memory reached" in error and "ray.worker_memory_bytes=0 MiB" in error
    assert stats["outcomes"] == {"quarantined/unit_failed": 2}
