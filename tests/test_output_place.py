"""Outputs land where the user said or the command refuses (curator/output_place.py): relative
and file:// outputs resolved on the driver, a relative output refused inside a Ray job, and an
output folder some node of the cluster cannot see refused, on the real session cluster."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from curator.config import ConfigError, CurateConfig, RayConfig, check_or_record_config
from curator.embedded_ray import SINGLE_MACHINE_ENV
from curator.output_place import RAY_JOB_ENV, check_output_place, local_path, nodes_not_seeing
from jobs.submit import absolute_output
from tests.corpus import build_corpus
from tests.ray_jobs import submit_job
from tests.test_curate_e2e import curate_config

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def outside_a_job(monkeypatch, tmp_path) -> Path:
    monkeypatch.delenv(RAY_JOB_ENV, raising=False)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_relative_and_file_outputs_become_absolute_paths(outside_a_job):
    cwd = outside_a_job
    assert local_path("runs/r1") == str(cwd / "runs" / "r1")
    assert local_path(f"file://{cwd}/a%20run") == f"{cwd}/a run"  # not ./file:/...
    assert local_path("file://localhost/data/run") == "/data/run"
    assert local_path("/data/x/../run") == "/data/run"
    assert local_path("~/run") == os.path.expanduser("~/run")


@pytest.mark.parametrize(
    ("output", "needle"),
    [("s3://bucket/run", "s3://"), ("gs://bucket/run", "gs://"), ("file://host2/run", "host2")],
)
def test_outputs_curator_cannot_write_are_refused(outside_a_job, output, needle):
    with pytest.raises(ConfigError) as err:
        local_path(output)
    assert str(err.value).startswith("output:") and needle in str(err.value)


def test_a_relative_output_in_a_ray_job_is_refused(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv(RAY_JOB_ENV, '{"runtime_env": {}}')  # what Ray's job manager sets
    with pytest.raises(ConfigError) as err:
        local_path("runs/r1")
    assert "output: 'runs/r1' is relative" in str(err.value)
    assert "--set output=$PWD/runs/r1" in str(err.value)
    assert local_path(str(tmp_path / "run")) == str(tmp_path / "run")  # absolute: fine


def test_a_relative_output_in_a_runtime_env_working_dir_is_refused(monkeypatch, tmp_path):
    wd = tmp_path / "session_x" / "runtime_resources" / "working_dir_files" / "_ray_pkg_1"
    wd.mkdir(parents=True)
    monkeypatch.chdir(wd)
    monkeypatch.delenv(RAY_JOB_ENV, raising=False)
    with pytest.raises(ConfigError, match="runtime_resources"):
        local_path("out")


def test_submit_makes_a_relative_output_absolute_before_it_leaves(outside_a_job):
    args = ["--config", "c.yaml", "--set", "output=runs/r1", "--set", "dedup.bands=3"]
    assert absolute_output(args) == [
        "--config", "c.yaml", "--set", f"output={outside_a_job}/runs/r1", "--set", "dedup.bands=3"
    ]


def test_a_run_recorded_with_another_spelling_of_its_output_resumes(tmp_path):
    """Outputs are now recorded absolute; a run recorded relative (or moved) still resumes,
    while a real change of config is still refused."""
    cfg = curate_config(tmp_path / "corpus", Path("runs/r1"))
    check_or_record_config(cfg, tmp_path / "config.yaml", "run")
    moved = cfg.model_copy(update={"output": str(tmp_path / "runs" / "r1")})
    check_or_record_config(moved, tmp_path / "config.yaml", "run")
    changed = moved.model_copy(update={"dedup": cfg.dedup.model_copy(update={"bands": 3})})
    with pytest.raises(ConfigError, match="dedup"):
        check_or_record_config(changed, tmp_path / "config.yaml", "run")


def test_every_node_of_the_session_cluster_sees_a_local_output(ray_cluster, tmp_path):
    out = tmp_path / "new" / "run"  # not made yet: the probe goes into its nearest parent
    assert nodes_not_seeing(out) == []
    assert check_output_place(str(out), RayConfig()) == str(out)
    assert list(tmp_path.rglob("*")) == []  # probe removed, nothing made


HIDDEN_PROBE = r"""
import sys
from curator.config import ConfigError, RayConfig
from curator.output_place import check_output_place
for out in sys.argv[1:]:
    try:
        print("ACCEPTED", check_output_place(out, RayConfig()))
    except ConfigError as err:
        print("REFUSED", err)
"""


def _private_mounts_work() -> bool:
    return shutil.which("unshare") is not None and subprocess.run(
        ["unshare", "--mount", "true"], capture_output=True
    ).returncode == 0


@pytest.mark.skipif(not _private_mounts_work(), reason="needs `unshare --mount` (root)")
def test_an_output_the_cluster_cannot_see_is_refused(ray_cluster, tmp_path):
    """A driver whose output folder the cluster's node cannot see: here the driver runs in a
    private mount namespace with its own tmpfs over `hidden/`, as a driver on another machine
    (or a node without the shared mount) would. The node's task reads the probe from the real
    `hidden/`, finds nothing, and the output is refused; a folder both see is accepted."""
    hidden, seen = tmp_path / "hidden", tmp_path / "seen"
    hidden.mkdir()
    seen.mkdir()
    script = f'mount -t tmpfs curator-test "{hidden}" && exec "$0" -c "$1" "$2" "$3"'
    proc = subprocess.run(
        ["unshare", "--mount", "sh", "-c", script, sys.executable, HIDDEN_PROBE,
         str(hidden / "run"), str(seen / "run")],
        env={**os.environ, "RAY_ADDRESS": ray_cluster.address}, cwd=REPO,
        capture_output=True, text=True, timeout=300,
    )
    lines = proc.stdout.splitlines()
    assert len(lines) == 2, proc.stdout + proc.stderr[-3000:]
    refused, accepted = lines
    assert refused.startswith(f"REFUSED output: {hidden / 'run'} is not visible"), refused
    assert "node 127.0.0.1" in refused and "every node sees" in refused
    assert accepted == f"ACCEPTED {seen / 'run'}"
    assert list(hidden.iterdir()) == [] and list(seen.iterdir()) == []


def _job_config(tmp_path: Path, output: str) -> Path:
    corpus = build_corpus(tmp_path / "corpus", n_docs=20, n_files=2, bad_inputs=False)
    data = curate_config(corpus.root, Path("unused")).model_dump(mode="json")
    data["output"] = output
    CurateConfig.model_validate(data)
    path = tmp_path / "job.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def _working_dirs(cluster) -> list[Path]:
    """The copies of working dirs the session's jobs ran in."""
    return sorted(Path(cluster.temp_dir).glob("session_*/runtime_resources/working_dir_files/*"))


def test_a_job_with_a_relative_output_is_refused_and_writes_nothing(ray_cluster, tmp_path):
    """The issue: `ray job submit --working-dir . -- python -m jobs.curate ... output=runs-rel`
    wrote the run into Ray's copy of the working dir and reported success."""
    config = _job_config(tmp_path, "runs-rel/r1")
    proc = submit_job(ray_cluster.dashboard_url, "jobs.curate", config, working_dir=REPO)
    logs = proc.stdout + proc.stderr
    assert proc.returncode != 0, logs[-3000:]
    assert "output: 'runs-rel/r1' is relative" in logs, logs[-3000:]
    copies = [d for d in _working_dirs(ray_cluster) if (d / "jobs" / "curate.py").exists()]
    assert copies, "the job did not run in a working-dir copy"  # what the check is about
    assert not [d for d in copies if (d / "runs-rel").exists()]
    assert not (REPO / "runs-rel").exists()


def test_a_job_with_an_absolute_output_writes_it_there(ray_cluster, tmp_path):
    out = tmp_path / "run"
    config = _job_config(tmp_path, str(out))
    proc = submit_job(ray_cluster.dashboard_url, "jobs.curate", config, working_dir=REPO)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    assert (out / "stats.json").exists() and (out / "_done" / "run.json").exists()


TWO_NODES = r"""
import os, shutil, signal, subprocess, sys, tempfile, time
import ray
from curator.config import ConfigError, RayConfig
from curator.embedded_ray import _die_with_parent, free_ports, start_embedded_cluster
from curator.output_place import check_output_place

hidden, seen = sys.argv[1:3]
head = start_embedded_cluster(num_cpus=1)  # token auth: it listens on the routable address
temp = tempfile.mkdtemp(prefix="cw", dir="/tmp")
flags = ("--node-manager-port", "--object-manager-port", "--dashboard-agent-listen-port",
         "--dashboard-agent-grpc-port", "--runtime-env-agent-port", "--metrics-export-port")
ray_bin = os.path.join(os.path.dirname(sys.executable), "ray")
start = [ray_bin, "start", "--block", f"--address={head.address}", f"--temp-dir={temp}",
         "--num-cpus=1", "--object-store-memory=100000000", "--disable-usage-stats",
         *(f"{f}={p}" for f, p in zip(flags, free_ports(len(flags))))]
# The second node's own mount namespace, with a tmpfs over `hidden`: a node without the mount.
worker = subprocess.Popen(
    ["unshare", "--mount", "sh", "-c", 'mount -t tmpfs curator-test "$0" && exec "$@"', hidden,
     *start], start_new_session=True, preexec_fn=_die_with_parent,
    stdout=open(os.path.join(temp, "worker.log"), "w"), stderr=subprocess.STDOUT)
try:
    ray.init(address=head.address, log_to_driver=False)
    deadline = time.monotonic() + 150
    while sum(n["Alive"] for n in ray.nodes()) < 2:
        assert time.monotonic() < deadline and worker.poll() is None, "no second node"
        time.sleep(1)
    print("NODES", sum(n["Alive"] for n in ray.nodes()))
    for out in (hidden + "/run", seen + "/run"):
        try:
            print("ACCEPTED", check_output_place(out, RayConfig()))
        except ConfigError as err:
            print("REFUSED", err)
finally:
    ray.shutdown()
    for sig in (signal.SIGINT, signal.SIGKILL):
        try:
            os.killpg(worker.pid, sig)
            worker.wait(timeout=10)
            break
        except (ProcessLookupError, subprocess.TimeoutExpired):
            continue
    head.stop()
    shutil.rmtree(temp, ignore_errors=True)
"""


@pytest.mark.slow
@pytest.mark.skipif(not _private_mounts_work(), reason="needs `unshare --mount` (root)")
def test_a_node_without_the_output_folder_is_found_on_a_two_node_cluster(tmp_path):
    """Two raylets on this machine (token auth, so the second can join), the second in its own
    mount namespace with a tmpfs over `hidden/`: the probe finds that node, only that one."""
    hidden, seen = tmp_path / "hidden", tmp_path / "seen"
    hidden.mkdir()
    seen.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "RAY_AUTH_MODE")}
    env.update({SINGLE_MACHINE_ENV: "1", "HOME": str(tmp_path)})  # multi-node: routable + token
    proc = subprocess.run([sys.executable, "-c", TWO_NODES, str(hidden), str(seen)], env=env,
                          cwd=REPO, capture_output=True, text=True, timeout=500)
    lines = [line for line in proc.stdout.splitlines() if line.split(" ")[0] in
             ("NODES", "ACCEPTED", "REFUSED")]
    assert len(lines) == 3, proc.stdout + proc.stderr[-3000:]
    nodes, refused, accepted = lines
    assert nodes == "NODES 2"
    assert refused.startswith(f"REFUSED output: {hidden / 'run'} is not visible"), refused
    assert len(re.findall(r"node \S+ \([0-9a-f]{12}\)", refused)) == 1, refused  # the hidden one
    assert "is not there" in refused, refused
    assert accepted == f"ACCEPTED {seen / 'run'}"
