"""Runs too small for quantiles, histograms or curriculum stages still finish with a manifest,
stats and a report, and a re-run of each changes nothing."""

from __future__ import annotations

import json

import pytest

from curator.executor import run_curate
from curator.rundir import RunDir
from tests.corpus import real_paragraphs
from tests.test_curate_e2e import curate_config

PARA = real_paragraphs()


@pytest.mark.parametrize(
    "lines, kept",
    [
        ([{"text": PARA[0]}], 1),  # one document, kept
        ([{"text": PARA[1]}, {"text": PARA[1]}], 1),  # two copies: one kept
        ([{"text": "$$$ ### %%% " * 30}], 0),  # one document, dropped
        (["{broken", {"text": ""}], 0),  # only bad input
        ([{"text": PARA[2]}, {"text": PARA[3]}, {"text": PARA[4]}], 3),  # fewer than 3 stages
    ],
    ids=["one-kept", "two-copies", "one-dropped", "all-bad", "three-docs"],
)
def test_a_tiny_run_finishes_with_manifest_stats_and_report(ray_cluster, tmp_path, lines, kept):
    corpus = tmp_path / "in"
    corpus.mkdir()
    (corpus / "tiny.jsonl").write_text(
        "".join((x if isinstance(x, str) else json.dumps(x)) + "\n" for x in lines)
    )
    out = tmp_path / "run"
    stats = run_curate(curate_config(corpus, out))
    assert stats["records"] == len(lines) and stats["kept"] == kept
    run = RunDir.at(out)
    assert (run.root / "report.html").stat().st_size > 0
    assert len(list(run.manifest.glob("*.parquet"))) == 1
    before = run.stats.read_text()
    assert run_curate(curate_config(corpus, out)) == stats  # a re-run changes nothing
    assert run.stats.read_text() == before
