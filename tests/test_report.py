"""RUN/report.html: self-contained, every section present, numbers that agree with the run, the
loop table from RUN/loop/result-*.json; rendered in headless Chromium when it is installed."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from xml.etree import ElementTree

import pytest
from typer.testing import CliRunner

from curator.catalog import query
from curator.cli import app
from curator.loop.report import loop_summary
from curator.report import write_report
from curator.rundir import RunDir
from tests.test_curriculum import curate_in_process, sentence_corpus

CHROMIUM = next(
    (p for p in ("/usr/bin/chromium", "/usr/bin/chromium-browser") if Path(p).exists()), None
)


def loop_files(loop: Path) -> None:
    """Two seeds of three arms; random ends at 5.0 (the target), agent gets there at 300."""
    loop.mkdir()
    curves = {
        ("agent", 0): [9.0, 6.0, 4.9, 4.5],
        ("agent", 1): [9.0, 6.5, 5.0, 4.7],
        ("random", 0): [9.0, 7.0, 6.0, 5.1],
        ("random", 1): [9.0, 7.0, 5.8, 4.9],
        ("static", 0): [9.0, 7.5, 6.5, 5.6],
        ("static", 1): [9.0, 7.5, 6.6, 5.4],
    }
    for (arm, seed), loss in curves.items():
        rec = {"arm": arm, "seed": seed, "tokens": [0, 100, 200, 300], "heldout_loss": loss}
        (loop / f"result-{arm}-seed{seed}.json").write_text(json.dumps(rec))


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> RunDir:
    root = tmp_path_factory.mktemp("report")
    run = curate_in_process(sentence_corpus(root / "corpus", n_docs=200), root / "run")
    loop_files(run.root / "loop")
    return run


def test_loop_summary_target_is_randoms_final_loss():
    recs = [
        {"arm": "random", "tokens": [0, 10, 20], "heldout_loss": [9, 6, 5.0]},
        {"arm": "random", "tokens": [0, 10, 20], "heldout_loss": [9, 6, 6.0]},
        {"arm": "agent", "tokens": [0, 10, 20], "heldout_loss": [9, 5.4, 5.0]},
        {"arm": "agent", "tokens": [0, 10, 20], "heldout_loss": [9, 6.0, 6.0]},
    ]
    target, rows = loop_summary(recs)
    assert target == 5.5
    agent = next(r for r in rows if r["arm"] == "agent")
    assert agent["tokens_to_target"] == 10 and agent["seeds_reaching_target"] == 1
    assert agent["final_loss"] == 5.5
    target, _ = loop_summary([{**recs[0], "target_loss": 4.0}])
    assert target == 4.0


def test_report_is_self_contained_with_every_section(run):
    path = write_report(run)
    page = path.read_text()
    for heading in ("Filter funnel", "Score histograms", "Curriculum", "Closed loop"):
        assert f"<h2>{heading}</h2>" in page, heading
    # No external resources: every chart is inline SVG, each a well-formed document.
    assert not re.search(r'(src|href)="(?!data:)', page)
    charts = re.findall(r"<svg .*?</svg>", page, re.S)
    assert len(charts) == 5  # funnel, 2 histograms, curriculum, loop
    for chart in charts:
        assert ElementTree.fromstring(chart).tag == "{http://www.w3.org/2000/svg}svg"
    # the loop chart draws every arm and seed (6 curves) and names each arm once
    loop_chart = charts[-1]
    assert loop_chart.count("<polyline") == 6
    assert all(loop_chart.count(f">{arm}</text>") == 1 for arm in ("agent", "random", "static"))
    # The funnel table agrees with the manifest; the loop table with the files.
    _, rows = query(run, "SELECT count(*) FROM manifest WHERE decision = 'kept'")
    assert f"<td>kept</td><td></td><td>{rows[0][0]}</td>" in page
    assert "<td>agent</td><td>2</td><td>4.6000</td><td>0.1000</td><td>200</td><td>2</td>" in page
    assert "<td>static</td><td>2</td><td>5.5000</td><td>0.1000</td><td>never</td>" in page


def test_report_command_and_missing_loop_dir(run, tmp_path):
    copy = RunDir.at(tmp_path / "copy")
    shutil.copytree(run.root, copy.root, ignore=shutil.ignore_patterns("loop", "_work"))
    result = CliRunner().invoke(app, ["report", str(copy.root), "--schedule", "linear"])
    assert result.exit_code == 0, result.output
    page = (copy.root / "report.html").read_text()
    assert "Closed loop" not in page and "<h2>Curriculum</h2><svg" in page


@pytest.mark.skipif(CHROMIUM is None, reason="headless Chromium not installed")
def test_report_renders_in_headless_chromium(run, tmp_path):
    path = write_report(run)
    shot = tmp_path / "report.png"
    proc = subprocess.run(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            f"--screenshot={shot}",
            "--window-size=1000,3000",
            path.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert shot.exists() and shot.stat().st_size > 10_000
