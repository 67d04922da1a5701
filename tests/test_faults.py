"""Faults against the real local cluster: a killed job resumes to the same result, a killed Ray
worker is retried without loss, `ray job submit` runs the job entrypoint, bad config fails fast."""

from __future__ import annotations

import gzip
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import polars as pl
import pyarrow.parquet as pq
import pytest
import yaml
from typer.testing import CliRunner

from curator.cli import app
from curator.executor import run_curate
from tests.corpus import build_corpus, real_paragraphs
from tests.ray_jobs import submit_job
from tests.test_curate_e2e import curate_config

REPO = Path(__file__).resolve().parents[1]


def run_outputs(out: Path) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Manifest and shards in a canonical order, for equality between runs."""
    m = pl.read_parquet(out / "manifest" / "*.parquet").sort("doc_id")
    s = pl.read_parquet(out / "shards" / "*" / "*.parquet").sort("doc_id")
    return m, s


def assert_same_run(a: Path, b: Path) -> None:
    (ma, sa), (mb, sb) = run_outputs(a), run_outputs(b)
    assert ma.equals(mb)
    assert sa.equals(sb)


@pytest.fixture(scope="module")
def corpus_and_reference(ray_cluster, tmp_path_factory):
    root = tmp_path_factory.mktemp("faults")
    corpus = build_corpus(root / "corpus", n_files=6)
    ref = root / "reference"
    run_curate(curate_config(corpus.root, ref))
    return corpus, ref, root


def write_config(path: Path, corpus_root: Path, out: Path) -> Path:
    """The YAML form of the tests' in-process config, so both kinds of run are the same job."""
    path.write_text(yaml.safe_dump(curate_config(corpus_root, out).model_dump(mode="json")))
    return path


def test_killed_job_resumes_to_the_same_result(corpus_and_reference):
    corpus, ref, root = corpus_and_reference
    out = root / "killed"
    cfg = write_config(root / "killed.yaml", corpus.root, out)
    proc = subprocess.Popen(
        [sys.executable, "-m", "jobs.curate", "--config", str(cfg)],
        cwd=REPO,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.time() + 240
    while not list((out / "_done" / "pass1").glob("*.json")) and proc.poll() is None:
        assert time.time() < deadline, "no unit finished"
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)  # the whole driver process group, mid-run
    proc.wait()
    assert not (out / "_done" / "run.json").exists()
    assert_final_files_complete(out)
    finished = _finished_units(out)
    assert finished
    run_curate(curate_config(corpus.root, out))
    assert_same_run(ref, out)
    # Resumed, not redone: a unit marked before the kill keeps its very file.
    assert {k: v for k, v in _finished_units(out).items() if k in finished} == finished


def _finished_units(out: Path) -> dict[str, tuple[int, int]]:
    """Pass-1 files of the units marked done: name -> (inode, mtime_ns)."""
    done = {p.stem for p in (out / "_done" / "pass1").glob("*.json")}
    files = {p.stem: p.stat() for p in (out / "_work" / "pass1").glob("*.parquet")}
    return {k: (files[k].st_ino, files[k].st_mtime_ns) for k in done}


def assert_final_files_complete(out: Path) -> None:
    """Every parquet file under a final name is whole (writes go through a temp name), so a
    resume that trusts final names and markers never reads half a file."""
    for path in out.rglob("*.parquet"):
        pq.read_metadata(path)  # raises on a file cut before its footer


def _big_corpus(root: Path, n_files: int = 2, mb_per_file: float = 3.0) -> Path:
    paras = real_paragraphs()
    root.mkdir(parents=True, exist_ok=True)
    for f in range(n_files):
        with gzip.open(root / f"big-{f}.jsonl.gz", "wt") as fh:
            size, i = 0, 0
            while size < mb_per_file * 1e6:
                text = (
                    f"{f}-{i}: " + paras[i % len(paras)] + "\n\n" + paras[(i * 7 + f) % len(paras)]
                )
                fh.write(json.dumps({"id": f"big{f}-{i}", "text": text}) + "\n")
                size += len(text)
                i += 1
    return root


def _pids_holding(path_glob: str, root: Path) -> list[int]:
    """Processes that hold an open file matching `path_glob` under `root` (via /proc)."""
    pids = []
    for proc_dir in Path("/proc").iterdir():
        if not proc_dir.name.isdigit():
            continue
        try:
            for fd in (proc_dir / "fd").iterdir():
                target = os.readlink(fd)
                if target.startswith(str(root)) and Path(target).match(path_glob):
                    pids.append(int(proc_dir.name))
                    break
        except OSError:
            continue
    return pids


def test_worker_killed_mid_unit_is_retried_and_loses_nothing(ray_cluster, tmp_path):
    corpus = _big_corpus(tmp_path / "big")
    ref, out = tmp_path / "ref", tmp_path / "out"
    run_curate(curate_config(corpus, ref, **{"language.enabled": "false"}))
    result: dict = {}
    worker = threading.Thread(
        target=lambda: result.update(
            stats=run_curate(curate_config(corpus, out, **{"language.enabled": "false"}))
        )
    )
    worker.start()
    killed: list[int] = []
    deadline = time.time() + 240
    # A worker holding a pass-1 file open (whatever its name) is mid-unit: kill exactly it.
    while not killed and worker.is_alive() and time.time() < deadline:
        pids = _pids_holding("*", out / "_work" / "pass1")
        for pid in pids:
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)
        if killed:
            time.sleep(0.2)
            assert_final_files_complete(out)  # what it was writing is not under a final name
        time.sleep(0.02)
    worker.join(timeout=600)
    assert killed, "never caught a worker mid-unit"
    assert "stats" in result
    assert_same_run(ref, out)


def test_ray_job_submit_runs_the_curate_entrypoint(corpus_and_reference, ray_cluster):
    corpus, ref, root = corpus_and_reference
    out = root / "submitted"
    cfg = write_config(root / "submitted.yaml", corpus.root, out)
    proc = submit_job(ray_cluster.dashboard_url, "jobs.curate", cfg)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "succeeded" in (proc.stdout + proc.stderr).lower()
    assert_same_run(ref, out)


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--set", "dedup.bands=0"], "dedup.bands"),
        (["--set", "dedup.bandz=3"], "dedup.bandz"),
        (["--set", "tokenizer.model_type=wordpiece"], "tokenizer.model_type"),
        (["--set", "tokenizer.model_path=/nonexistent.model"], "tokenizer.model_path"),
        (["--input", "/nonexistent/dir/*.jsonl"], "/nonexistent/dir"),
    ],
)
def test_bad_config_fails_before_work_naming_the_field(tmp_path, args, needle):
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "a.jsonl").write_text('{"text": "hello"}\n')
    base = ["curate", "--output", str(tmp_path / "run"), "--quiet"]
    if "--input" not in args:
        base += ["--input", str(tmp_path / "c")]
    result = CliRunner().invoke(app, base + args)
    assert result.exit_code == 2, result.output
    assert needle in result.output
    assert not (tmp_path / "run" / "_work").exists()
