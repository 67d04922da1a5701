"""One real local Ray cluster for the whole test session.

Started with `ray start --head --block` in its own process group so that (a) `ray job submit`
tests can reach its dashboard/job server, (b) the test process connects with ray.init(address),
and (c) teardown stops exactly this cluster by process group id, never with a broad `ray stop`.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("RAY_DEDUP_LOGS", "0")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LocalCluster:
    def __init__(self, gcs_address: str, dashboard_url: str, proc: subprocess.Popen, temp_dir: str):
        self.address = gcs_address
        self.dashboard_url = dashboard_url
        self.proc = proc
        self.temp_dir = temp_dir


@pytest.fixture(scope="session")
def ray_cluster():
    import ray

    ray_bin = str(Path(sys.executable).parent / "ray")
    gcs_port, dash_port = _free_port(), _free_port()
    # The node's agents get free ports too: their defaults (e.g. 52365) collide with any other
    # Ray on the machine (an embedded cluster of a benchmark), and a dashboard agent that cannot
    # bind leaves `ray job submit` answering "No available agent".
    agent_ports = [
        f"--dashboard-agent-listen-port={_free_port()}",
        f"--dashboard-agent-grpc-port={_free_port()}",
        f"--runtime-env-agent-port={_free_port()}",
    ]
    temp_dir = tempfile.mkdtemp(prefix="rt", dir="/tmp")  # short: socket paths are length-limited
    cmd = [
        ray_bin,
        "start",
        "--head",
        "--block",
        "--node-ip-address=127.0.0.1",
        f"--port={gcs_port}",
        f"--dashboard-port={dash_port}",
        "--dashboard-host=127.0.0.1",
        "--include-dashboard=true",
        "--num-cpus=4",
        *agent_ports,
        f"--temp-dir={temp_dir}",
        "--disable-usage-stats",
    ]
    log = open(Path(temp_dir) / "ray-start.log", "w")
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    address = f"127.0.0.1:{gcs_port}"
    deadline = time.time() + 120
    while True:
        try:
            ray.init(address=address, log_to_driver=False)
            break
        except Exception:
            if proc.poll() is not None or time.time() > deadline:
                raise RuntimeError(f"ray start failed, see {temp_dir}/ray-start.log") from None
            time.sleep(1)
    os.environ["RAY_ADDRESS"] = address  # subprocesses (CLI tests) join this cluster
    try:
        yield LocalCluster(address, f"http://127.0.0.1:{dash_port}", proc, temp_dir)
    finally:
        ray.shutdown()
        os.environ.pop("RAY_ADDRESS", None)
        # `ray start --block` shuts its cluster down on SIGINT like on Ctrl-C; whatever of this
        # process group is still there after a grace period is killed outright.
        for sig, grace in ((signal.SIGINT, 10), (signal.SIGKILL, 10)):
            try:
                os.killpg(proc.pid, sig)
                proc.wait(timeout=grace)
                break
            except ProcessLookupError:
                break
            except subprocess.TimeoutExpired:
                continue
        try:  # children that outlived the --block process
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        log.close()
