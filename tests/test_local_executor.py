"""Jobs without Ray (`ray.executor: local`, curator/fanout.py's local pool): the same decisions
and files as on Ray, the same isolation of a unit that kills its worker, and `auto` choosing
Ray wherever a cluster is named or the input cannot be sized."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import polars as pl
import pytest

from connectors.registry import expand_inputs
from curator.config import ConfigError, InputSpec, RayConfig
from curator.executor import run_curate
from curator.fanout import run_tasks, start_local_fork_server, worker_pool
from curator.ray_runtime import runs_locally
from tests.corpus import build_corpus
from tests.test_curate_e2e import curate_config
from tests.test_faults import (
    _big_corpus,
    _pids_holding,
    assert_final_files_complete,
    assert_same_run,
)
from tests.test_unit_tries import two_small_files

LOCAL = {"ray.executor": "local"}


def test_local_and_ray_runs_write_the_same_run(ray_cluster, tmp_path):
    corpus = build_corpus(tmp_path / "corpus", n_files=4)
    on_ray, local = tmp_path / "ray", tmp_path / "local"
    ray_stats = run_curate(curate_config(corpus.root, on_ray, **{"ray.executor": "ray"}))
    local_stats = run_curate(curate_config(corpus.root, local, **LOCAL))
    assert (ray_stats["executor"], local_stats["executor"]) == ("ray", "local")
    assert_same_run(on_ray, local)  # manifest and shards, row for row
    assert (on_ray / "tokenizer.model").read_bytes() == (local / "tokenizer.model").read_bytes()
    for key in ("records", "kept", "tokens", "outcomes", "dedup"):
        if key == "dedup":  # its timings differ, its counts must not
            strip = ({k: v for k, v in s[key].items() if k != "seconds"}
                     for s in (ray_stats, local_stats))
            assert next(strip) == next(strip)
        else:
            assert ray_stats[key] == local_stats[key], key


def test_local_worker_killed_mid_unit_is_retried_and_loses_nothing(tmp_path):
    corpus = _big_corpus(tmp_path / "big")
    ref, out = tmp_path / "ref", tmp_path / "out"
    cfg = {**LOCAL, "language.enabled": "false"}
    run_curate(curate_config(corpus, ref, **cfg))
    result: dict = {}
    job = threading.Thread(
        target=lambda: result.update(stats=run_curate(curate_config(corpus, out, **cfg))))
    job.start()
    killed: list[int] = []
    deadline = time.time() + 240
    me = os.getpid()
    while not killed and job.is_alive() and time.time() < deadline:
        # a process holding a pass-1 file open is a worker mid-unit (never this driver)
        for pid in (p for p in _pids_holding("*", out / "_work" / "pass1") if p != me):
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)
        if killed:
            time.sleep(0.2)
            assert_final_files_complete(out)
        time.sleep(0.02)
    job.join(timeout=600)
    assert killed, "never caught a worker mid-unit"
    assert "stats" in result and result["stats"]["executor"] == "local"
    assert_same_run(ref, out)


def test_local_unit_over_the_memory_bound_is_given_up_and_the_run_finishes(tmp_path):
    corpus = two_small_files(tmp_path / "in")
    out = tmp_path / "run"
    # every try exits its worker process: the pool replaces it, the tries give the unit up
    stats = run_curate(curate_config(
        corpus, out, **LOCAL, **{"ray.worker_memory_bytes": 1, "ray.max_unit_attempts": 2}))
    m = pl.read_parquet(out / "manifest" / "*.parquet")
    assert set(m["reason"]) == {"unit_failed"} and m.height == 2
    assert all("given up after 2 tries" in e and "worker memory reached" in e
               for e in m["error"])
    assert stats["outcomes"] == {"quarantined/unit_failed": 2}


def _fails(x: int) -> int:
    raise ValueError(f"bad {x}")


def _dies(x: int) -> int:
    os._exit(7)


def test_local_pool_tasks_errors_and_deaths():
    with worker_pool(2, local=True) as pool:
        assert run_tasks(pow, [(i, 2) for i in range(7)], None) == [i**2 for i in range(7)]
        with pytest.raises(ValueError, match="bad 3"):  # the task's own error, not retried
            run_tasks(_fails, [(3,)], None)
        with pytest.raises(RuntimeError, match="died"):  # retried, then given up
            run_tasks(_dies, [(1,)], None)
        assert len(pool.free) == 2  # every dead host was replaced
        assert run_tasks(pow, [(3, 3)], None) == [27]


def test_workers_fork_from_the_server_started_before_the_pool():
    """curate starts the fork server before it cuts the inputs (its imports overlap the
    cutting); the pool opened afterwards must use that server, not start a second one."""
    import multiprocessing.forkserver as fs

    start_local_fork_server()
    server = fs._forkserver._forkserver_pid
    assert server is not None
    with worker_pool(2, local=True) as pool:
        assert fs._forkserver._forkserver_pid == server
        assert {h.proc.pid for h in pool.free} == set(run_tasks(os.getpid, [(), ()], None))
        assert set(run_tasks(os.getppid, [(), ()], None)) == {server}


def test_auto_runs_locally_only_without_a_cluster_and_within_the_size(tmp_path, monkeypatch):
    import ray

    (tmp_path / "a.jsonl").write_text('{"text": "x"}\n' * 1000)  # 14 KB
    units = expand_inputs([InputSpec(path=str(tmp_path))], 64 << 20)
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    monkeypatch.setattr(ray, "is_initialized", lambda: False)  # this test process's session
    auto = RayConfig()
    assert runs_locally(auto, units)
    assert not runs_locally(RayConfig(local_max_mb=0.01), units)  # over the size
    assert not runs_locally(RayConfig(address="127.0.0.1:6379"), units)
    assert not runs_locally(RayConfig(executor="ray"), units)
    monkeypatch.setenv("RAY_ADDRESS", "127.0.0.1:6379")  # as under `ray job submit`
    assert not runs_locally(auto, units)
    assert runs_locally(RayConfig(executor="local"), units)
    monkeypatch.delenv("RAY_ADDRESS")
    monkeypatch.setattr(ray, "is_initialized", lambda: True)  # a notebook already connected
    assert not runs_locally(auto, units)


def test_local_with_an_address_is_refused_naming_both_fields(tmp_path):
    with pytest.raises(ConfigError, match=r"ray.executor=local.*ray.address"):
        curate_config(tmp_path, tmp_path / "o", **{"ray.executor": "local",
                                                    "ray.address": "127.0.0.1:6379"})


KILLED_DRIVER = """
import sys
from curator.executor import run_curate
from tests.test_curate_e2e import curate_config
run_curate(curate_config(sys.argv[1], sys.argv[2], **{"ray.executor": "local",
                                                    "language.enabled": "false"}))
"""


def test_a_killed_local_driver_leaves_no_worker(tmp_path):
    """Its workers go with it (they are the fork server's children, and it exits with the
    driver): none keeps writing into a run that a resume is about to take over."""
    import subprocess
    import sys

    import psutil

    corpus = _big_corpus(tmp_path / "big", n_files=2, mb_per_file=6.0)  # units of seconds
    out = tmp_path / "run"
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    proc = subprocess.Popen([sys.executable, "-c", KILLED_DRIVER, str(corpus), str(out)],
                            cwd=Path(__file__).resolve().parents[1], env=env)
    driver = psutil.Process(proc.pid)
    deadline = time.time() + 120
    while time.time() < deadline and not _pids_holding("*", out / "_work" / "pass1"):
        time.sleep(0.02)
    family = driver.children(recursive=True)
    assert len(family) >= 2, "no local workers seen"  # the fork server and its workers
    proc.kill()
    proc.wait()
    gone, alive = psutil.wait_procs(family, timeout=2)  # well before a unit could end
    # a zombie has exited (its parent died, and reaping it is init's business, not ours)
    running = [p for p in alive if _status(p) not in (psutil.STATUS_ZOMBIE, None)]
    assert not running, [p.pid for p in running]


def _status(proc) -> str | None:
    import psutil

    try:
        return proc.status()
    except psutil.NoSuchProcess:
        return None


def test_a_script_without_a_main_guard_runs_locally(tmp_path):
    """multiprocessing children re-import the parent's main script unless told otherwise; a
    top-level `run_curate(...)` (no `if __name__ == "__main__":`) must not start the job again
    in every worker."""
    import subprocess
    import sys

    corpus = build_corpus(tmp_path / "corpus", n_files=2).root
    script = tmp_path / "job.py"
    script.write_text(
        "from curator.executor import run_curate\n"
        "from tests.test_curate_e2e import curate_config\n"
        f"stats = run_curate(curate_config({str(corpus)!r}, {str(tmp_path / 'run')!r}, "
        "**{'ray.executor': 'local'}))\n"
        "print('finished', stats['executor'])\n")
    repo = Path(__file__).resolve().parents[1]
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    env["PYTHONPATH"] = str(repo)
    proc = subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)  # re-imported: hangs
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count("finished local") == 1
