"""`curator curate` with no cluster to join starts its own: beside another Ray on the machine
(the session's test cluster), with Ray's default ports already taken, quietly, and gone after.
"""

from __future__ import annotations

import ipaddress
import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator

import psutil
import pytest

from curator.embedded_ray import (
    PORT_FLAGS,
    SINGLE_MACHINE_ENV,
    RayStartError,
    free_ports,
    start_embedded_cluster,
)
from tests.corpus import build_corpus

# Fixed ports `ray.init()` / `ray start` take when not told otherwise: GCS, Ray client,
# dashboard, dashboard agent (the one that broke the demo beside another Ray), metrics agent.
RAY_DEFAULT_PORTS = (6379, 10001, 8265, 52365, 52366)


@pytest.fixture
def default_ports_taken() -> Iterator[list[int]]:
    taken, socks = [], []
    for port in RAY_DEFAULT_PORTS:
        s = socket.socket()
        try:
            s.bind(("0.0.0.0", port))
            s.listen()
            socks.append(s)
            taken.append(port)
        except OSError:  # already held by something else: taken all the same
            s.close()
            taken.append(port)
    yield taken
    for s in socks:
        s.close()


def _ray_heads() -> set[int]:
    """Pids of `ray start` head processes and GCS servers on this machine."""
    pids = set()
    for p in psutil.process_iter(["pid", "cmdline"]):
        cmd = " ".join(p.info["cmdline"] or [])
        if "gcs_server" in cmd or ("ray" in cmd and " start " in f" {cmd} " and "--head" in cmd):
            pids.add(p.info["pid"])
    return pids


@pytest.mark.slow
def test_curate_starts_its_own_cluster_beside_another_ray(ray_cluster, default_ports_taken,
                                                          tmp_path):
    corpus = build_corpus(tmp_path / "corpus", n_docs=20, n_files=2, bad_inputs=False)
    before = _ray_heads()
    # Nothing to join, and RAY_AUTH_MODE unset as on a user's machine, where an earlier plain
    # `ray.init()` left ~/.ray/auth_token: `ray start` then turns token auth on, and a driver
    # joining by address did not (the first clean-clone CI run of the demo failed on that).
    env = {k: v for k, v in os.environ.items()
           if k not in ("RAY_ADDRESS", "RAY_AUTH_MODE", SINGLE_MACHINE_ENV)}
    home = tmp_path / "home"
    (home / ".ray").mkdir(parents=True)
    (home / ".ray" / "auth_token").write_text("0123456789abcdef" * 4)
    env["HOME"] = str(home)
    proc = subprocess.run(
        [sys.executable, "-m", "curator.cli", "curate", "--input", str(tmp_path / "corpus"),
         "--output", str(tmp_path / "run"), "--set", "ray.num_cpus=1",
         "--set", "tokenizer.vocab_size=300"],
        env=env, capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (home / ".ray" / "auth_token").read_text() == "0123456789abcdef" * 4  # used, kept
    stats = json.loads((tmp_path / "run" / "stats.json").read_text())
    assert stats["records"] == sum(corpus.files.values()) and stats["kept"] >= 10
    # Ray's own lines stay off the console by default (curator --verbose shows them).
    for noise in ("core_worker.cc", "Progress bars disabled", "streaming_executor"):
        assert noise not in proc.stderr, proc.stderr[-3000:]
    # The embedded cluster went with the job; the other Ray is still there.
    assert _ray_heads() <= before
    assert ray_cluster.proc.poll() is None


def test_a_cluster_that_cannot_start_says_what_to_do():
    # A real `ray start` that exits at once (Ray refuses a negative CPU count): both tries
    # fail, and the error carries Ray's own reason and the fix.
    with pytest.raises(RayStartError) as err:
        start_embedded_cluster(-1, timeout_s=60, attempts=2)
    message = str(err.value)
    assert "2 tries" in message and "nonnegative" in message
    assert "--set ray.address=" in message


def test_free_ports_are_distinct():
    for _ in range(20):
        ports = free_ports(len(PORT_FLAGS))
        assert len(set(ports)) == len(PORT_FLAGS)


CHECK_AUTH = r"""
import os, subprocess, sys
from curator.embedded_ray import start_embedded_cluster
cluster = start_embedded_cluster(1)
try:
    probe = "import ray; ray.init(address=sys.argv[1]); print('JOINED')"
    for mode in ("disabled", "token"):
        env = {**os.environ, "RAY_AUTH_MODE": mode}
        out = subprocess.run([sys.executable, "-c", "import sys;" + probe, cluster.address],
                             env=env, capture_output=True, text=True, timeout=120)
        print(mode, "JOINED" in out.stdout, "InvalidAuthToken" in out.stderr + out.stdout)
finally:
    cluster.stop()
"""


@pytest.mark.slow
def test_the_embedded_cluster_refuses_a_driver_without_the_token(tmp_path):
    """By default (not in Ray's single-machine mode) Ray 2.60 listens on the routable address,
    so the embedded cluster requires its token: a driver without it is refused, one with it
    joins."""
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "RAY_AUTH_MODE")}
    env[SINGLE_MACHINE_ENV] = "1"  # Ray's default on Linux, as on a user's machine
    env["HOME"] = str(tmp_path)  # no token yet: one is written, as ray.init() would
    proc = subprocess.run([sys.executable, "-c", CHECK_AUTH], env=env, capture_output=True,
                          text=True, timeout=400)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "disabled False True" in proc.stdout, proc.stdout + proc.stderr[-2000:]
    assert "token True False" in proc.stdout, proc.stdout + proc.stderr[-2000:]
    assert (tmp_path / ".ray" / "auth_token").exists()


def _listeners(pids: set[int]) -> list[tuple[str, int, str]]:
    """(address, port, process name) of every TCP socket listening in these processes."""
    found = []
    for pid in pids:
        try:
            proc = psutil.Process(pid)
            conns, name = proc.net_connections("tcp"), proc.name()
        except psutil.NoSuchProcess:  # a worker that exited since the listing
            continue
        found += [(c.laddr.ip, c.laddr.port, name) for c in conns if c.status == psutil.CONN_LISTEN]
    return found


def _is_loopback(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%")[0])
    return (getattr(ip, "ipv4_mapped", None) or ip).is_loopback  # gRPC binds ::ffff:127.0.0.1


def test_an_unauthenticated_cluster_listens_on_loopback_only(ray_cluster):
    """The session cluster runs without auth (conftest), so no port of it may listen beyond
    loopback: its Ray processes, its workers (each a gRPC server) and this driver's own."""
    import ray

    @ray.remote(num_cpus=0)
    class Holder:  # an actor and a task: worker processes that stay up while we look
        def pid(self) -> int:
            return os.getpid()

    holder = Holder.remote()
    ray.get([holder.pid.remote(), ray.remote(num_cpus=0)(lambda: os.getpid()).remote()])
    tree = psutil.Process(ray_cluster.proc.pid).children(recursive=True)
    listeners = _listeners({ray_cluster.proc.pid, os.getpid(), *(p.pid for p in tree)})
    names = {name for _, _, name in listeners}
    ports = {port for _, port, _ in listeners}
    # What must be there for the check to mean anything: the GCS, raylet, dashboard, agents.
    assert {ray_cluster.ports[f] for f in ("--port", "--dashboard-port",
                                          "--dashboard-agent-listen-port",
                                          "--runtime-env-agent-port",
                                          "--node-manager-port")} <= ports, listeners
    assert {"gcs_server", "raylet"} <= names, listeners
    beyond = [listener for listener in listeners if not _is_loopback(listener[0])]
    assert not beyond, f"listening beyond loopback without auth: {beyond}"
    ray.kill(holder)


REFUSE_OPEN = r"""
from curator.embedded_ray import RayStartError, start_embedded_cluster
try:
    start_embedded_cluster(1).stop()
    print("STARTED")
except RayStartError as err:
    print("REFUSED", err)
"""


def test_an_unauthenticated_cluster_off_loopback_is_refused(tmp_path):
    """RAY_AUTH_MODE=disabled without Ray's single-machine mode would open the machine to
    anyone's jobs: the embedded cluster is refused before anything starts, saying the fix."""
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    env.update({"RAY_AUTH_MODE": "disabled", SINGLE_MACHINE_ENV: "1", "HOME": str(tmp_path)})
    proc = subprocess.run([sys.executable, "-c", REFUSE_OPEN], env=env, capture_output=True,
                          text=True, timeout=120)
    assert proc.stdout.startswith("REFUSED"), proc.stdout + proc.stderr[-2000:]
    assert f"{SINGLE_MACHINE_ENV}=0" in proc.stdout and "unset RAY_AUTH_MODE" in proc.stdout


def test_the_session_cluster_runs_workers_at_normal_priority_without_monitors(ray_cluster):
    """The embedded head starts no autoscaler monitor and no log monitor (nothing reads them
    on one machine), and its workers run at niceness 0 (Ray's default, 15, starves them
    beside ordinary processes)."""
    import ray

    @ray.remote(num_cpus=1)
    def niceness() -> int:
        return os.nice(0)

    assert ray.get(niceness.remote()) == 0
    tree = psutil.Process(ray_cluster.proc.pid).children(recursive=True)
    commands = []
    for proc in tree:
        try:
            commands.append(" ".join(proc.cmdline()))
        except psutil.NoSuchProcess:
            continue
    assert any("raylet" in c for c in commands), commands  # the listing sees the node
    assert not [c for c in commands if "monitor.py" in c], commands
