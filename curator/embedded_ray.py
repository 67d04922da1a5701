"""An embedded single-node Ray cluster that starts beside any other Ray on the machine.

`ray.init()` with no address starts a local cluster whose agents bind fixed default ports
(dashboard agent 52365, Ray client 10001, ...): a second Ray on the host (a benchmark, a
notebook, a test cluster) makes it time out with "The current node timed out during startup".
`ray.init` exposes no option for those ports, so the embedded cluster is a `ray start --head
--block` child with a free port for every listening process, its own short temp dir (socket
paths are length-limited) and token auth (`require_token_auth`). The child dies with its parent
(PR_SET_PDEATHSIG on Linux; the caller stops it at exit): a killed job leaves no cluster.

Where it listens (Ray 2.60, read in its source and seen with `ss -ltnp`): `ray start` replaces
`--node-ip-address=127.0.0.1` by the routable address (services.resolve_ip_for_localhost)
unless Ray's single-machine mode is on (RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0, read once when Ray
is imported), and every listener follows that node address: the gRPC servers of the GCS,
raylet, object manager, workers and dashboard agent and the metrics servers bind 0.0.0.0
unless it is loopback; the agents' HTTP servers and the Ray client server bind it. So by
default the token, not the address, keeps other hosts out, and a cluster without auth is
started only in the single-machine mode, where every listener binds 127.0.0.1
(`refuse_open_unauthenticated`).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

# The ports `ray start --head` would otherwise take at fixed defaults or pick itself.
PORT_FLAGS = (
    "--port",
    "--dashboard-port",
    "--dashboard-agent-listen-port",
    "--dashboard-agent-grpc-port",
    "--runtime-env-agent-port",
    "--metrics-export-port",
    "--ray-client-server-port",
    "--node-manager-port",
    "--object-manager-port",
)
START_TIMEOUT_S = 180.0  # a loaded 2-core machine has taken ~60 s to bring a head node up
ATTEMPTS = 2  # a port picked free can be taken before Ray binds it: retry once, fresh ports


class RayStartError(RuntimeError):
    """The embedded cluster could not start; the message says what to do."""


def free_ports(n: int) -> list[int]:
    """`n` distinct TCP ports nothing listens on right now. The sockets stay bound until all
    are picked: released one at a time, the OS may hand out the same port twice (seen: Ray
    refused a start whose dashboard agent and runtime-env agent got one port)."""
    with contextlib.ExitStack() as stack:
        socks = [stack.enter_context(socket.socket()) for _ in range(n)]
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]


@dataclass
class EmbeddedCluster:
    address: str
    proc: subprocess.Popen
    temp_dir: str
    log_path: Path
    ports: dict[str, int]  # `ray start` flag -> the port it was given

    @property
    def dashboard_url(self) -> str:
        """The dashboard / job server (`ray job submit --address`), if it was started."""
        return f"http://127.0.0.1:{self.ports['--dashboard-port']}"

    def stop(self, grace_s: float = 10.0) -> None:
        """SIGINT lets `ray start --block` stop its node; whatever of the process group is
        left after the grace period is killed."""
        for sig in (signal.SIGINT, signal.SIGKILL):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, sig)
            try:
                self.proc.wait(timeout=grace_s)
                break
            except subprocess.TimeoutExpired:
                continue
        with contextlib.suppress(ProcessLookupError):  # children that outlived the head process
            os.killpg(self.proc.pid, signal.SIGKILL)
        shutil.rmtree(self.temp_dir, ignore_errors=True)


def _die_with_parent() -> None:
    """In the child before exec: ask Linux to send SIGINT when the parent dies."""
    if sys.platform.startswith("linux"):
        import ctypes

        pr_set_pdeathsig = 1
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(pr_set_pdeathsig, signal.SIGINT)


def require_token_auth() -> None:
    """Token authentication for the embedded cluster unless the user chose RAY_AUTH_MODE.

    Why: with the mode unset, `ray start` turns token auth on exactly when ~/.ray/auth_token
    exists (any earlier plain `ray.init()` writes one), while a driver joining by address never
    turns it on: the driver is then refused ("Authentication token is missing or incorrect").
    Setting the mode in this process (the `ray start` child inherits it) makes both sides agree,
    and a token is written the way `ray.init()` writes one when there is none. Ray 2.60 API.
    """
    from ray._private.authentication.authentication_token_setup import (
        _enable_token_auth,
        ensure_token_if_auth_enabled,
    )

    if os.environ.get("RAY_AUTH_MODE") is None:
        _enable_token_auth()  # sets RAY_AUTH_MODE=token and refreshes Ray's cached config
    ensure_token_if_auth_enabled(None, create_token_if_missing=True)  # no-op unless token mode


# Ray's single-machine mode (ray_constants.ENABLE_RAY_CLUSTER): "0" keeps the node address, and
# with it every listener, on 127.0.0.1; worker nodes cannot join. Off by default on Linux.
SINGLE_MACHINE_ENV = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"


def loopback_only() -> bool:
    """Whether Ray in this process runs in its single-machine mode. Ray reads the variable once,
    at import: a driver and its cluster must agree, so the child gets this process's view."""
    from ray._private import ray_constants

    return not ray_constants.ENABLE_RAY_CLUSTER


def refuse_open_unauthenticated() -> None:
    """Raise RayStartError for a cluster that would run without auth on the routable address.

    Why: with RAY_AUTH_MODE=disabled, anyone who reaches the dashboard agent's port can submit a
    job (seen: `id` ran as root through an unauthenticated submission to the routable address).
    """
    from ray._private.authentication.authentication_utils import is_token_auth_enabled

    if is_token_auth_enabled() or loopback_only():
        return
    raise RayStartError(
        f"RAY_AUTH_MODE={os.environ.get('RAY_AUTH_MODE')}: an embedded cluster without auth "
        "would listen on this "
        "machine's routable address (Ray 2.60 replaces 127.0.0.1 by it) and run any job anyone "
        "on the network submits. Fix: unset RAY_AUTH_MODE (token auth, the default), or also "
        f"set {SINGLE_MACHINE_ENV}=0 before Python starts (Ray's single-machine mode: every Ray "
        "listener binds 127.0.0.1)."
    )


def start_command(
    num_cpus: int | None,
    temp_dir: str,
    include_dashboard: bool,
    ports: dict[str, int],
    log_monitor: bool = False,
) -> list[str]:
    """`ray start` of a head node that runs only what a single-machine job needs: no
    autoscaler monitor (the cluster is fixed), no log monitor unless the driver shows worker
    logs (`log_monitor`: curate keeps them in the session folder), no dashboard UI unless
    asked; Ray still starts its GCS, raylet, dashboard and runtime-env agents and the API
    server (`ray job submit`). Measured with two idle workers on 2 CPUs, driver included:
    11 processes and 692 MB summed PSS with both monitors (and the driver importing Ray
    Data), 9 processes and 546 MB without."""
    ray_bin = str(Path(sys.executable).parent / "ray")
    if not Path(ray_bin).exists():
        ray_bin = shutil.which("ray") or "ray"
    cmd = [
        ray_bin,
        "start",
        "--head",
        "--block",
        "--node-ip-address=127.0.0.1",
        "--dashboard-host=127.0.0.1",
        f"--include-dashboard={'true' if include_dashboard else 'false'}",
        f"--include-log-monitor={'true' if log_monitor else 'false'}",
        "--no-monitor",
        f"--temp-dir={temp_dir}",
        "--disable-usage-stats",
    ]
    cmd += [f"{flag}={port}" for flag, port in ports.items()]
    if num_cpus is not None:
        cmd.append(f"--num-cpus={num_cpus}")
    return cmd


def _wait_until_up(proc: subprocess.Popen, temp_dir: str, timeout_s: float) -> str | None:
    """The GCS address once `ray start` has written it (the node is up), None if it failed."""
    address_file = Path(temp_dir) / "ray_current_cluster"
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return None
        if address_file.exists() and (text := address_file.read_text().strip()):
            return text
        time.sleep(0.25)
    return None


def _log_tail(path: Path, lines: int = 15) -> str:
    with contextlib.suppress(OSError):
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    return ""


def start_embedded_cluster(
    num_cpus: int | None,
    include_dashboard: bool = False,
    timeout_s: float = START_TIMEOUT_S,
    attempts: int = ATTEMPTS,
    log_monitor: bool = False,
) -> EmbeddedCluster:
    """Start a head node on free ports, token-authenticated or loopback-only; retry once;
    raise RayStartError.

    Its workers run at normal priority: Ray's default worker niceness (15) let them get a
    fraction of the CPU beside ordinary processes (measured in the speed issue: curator's
    workers starved beside a normal-priority job). A RAY_worker_niceness the user set wins."""
    require_token_auth()
    refuse_open_unauthenticated()
    env = {
        **os.environ,
        "RAY_USAGE_STATS_ENABLED": "0",
        SINGLE_MACHINE_ENV: "0" if loopback_only() else "1",
        "RAY_worker_niceness": os.environ.get("RAY_worker_niceness", "0"),
    }
    env.pop("RAY_ADDRESS", None)
    last_log = Path()
    for _ in range(attempts):
        temp_dir = tempfile.mkdtemp(prefix="cr", dir="/tmp")  # short: unix socket paths
        log_path = Path(temp_dir) / "ray-start.log"
        ports = dict(zip(PORT_FLAGS, free_ports(len(PORT_FLAGS)), strict=True))
        with open(log_path, "w") as log:
            proc = subprocess.Popen(
                start_command(num_cpus, temp_dir, include_dashboard, ports, log_monitor),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=env,
                start_new_session=True,  # its own process group, stopped as one
                preexec_fn=_die_with_parent,
            )
        cluster = EmbeddedCluster("", proc, temp_dir, log_path, ports)
        address = _wait_until_up(proc, temp_dir, timeout_s)
        if address is not None:
            cluster.address = address
            return cluster
        last_log = Path(tempfile.gettempdir()) / f"curator-ray-start-{os.getpid()}.log"
        with contextlib.suppress(OSError):
            shutil.copyfile(log_path, last_log)
        cluster.stop(grace_s=5.0)
    raise RayStartError(
        f"could not start an embedded Ray cluster ({attempts} tries on free ports, "
        f"{timeout_s:.0f} s each; `ray start` log: {last_log}):\n{_log_tail(last_log)}\n"
        "Fix: join a running cluster with --set ray.address=HOST:PORT (or RAY_ADDRESS), or free "
        "memory/CPU for a new one; `ray status` shows what runs on this machine."
    )
