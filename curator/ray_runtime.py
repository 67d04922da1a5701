"""Connecting to Ray: join a cluster or start the embedded one, keep its logs off the console.

Fanning work out over it is curator/fanout.py."""

from __future__ import annotations

import atexit
import logging
import os
import sys
from pathlib import Path

from curator.config import RayConfig


def ensure_ray(cfg: RayConfig) -> dict[str, float]:
    """Join the cluster named by config or RAY_ADDRESS (set under `ray job submit`), else start
    an embedded local one on free ports (curator.embedded_ray). Returns the cluster's resources.
    """
    import ray

    if not ray.is_initialized():
        address = cfg.address or os.environ.get("RAY_ADDRESS")
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
        if not address:
            from curator.embedded_ray import start_embedded_cluster

            # the log monitor only feeds log_to_driver: started when the console shows logs
            cluster = start_embedded_cluster(cfg.num_cpus, log_monitor=ray_verbose())
            address = cluster.address
            # Disconnect before the cluster goes: stopped under a connected driver, Ray logs
            # object-recovery errors at exit.
            atexit.register(lambda: (ray.shutdown(), cluster.stop()))
        silence_ray_logs()
        # log_to_driver=False: worker stdout/stderr stays in the cluster's logs, the console
        # shows curator's own progress; ERROR hides Ray's "Connecting to..." chatter.
        ray.init(
            address=address,
            log_to_driver=ray_verbose(),
            logging_level=logging.INFO if ray_verbose() else logging.ERROR,
        )
        silence_ray_logs()  # ray.init reconfigures the "ray" loggers
        divert_native_stderr()
    return ray.cluster_resources()


def ray_verbose() -> bool:
    """`curator --verbose` (or CURATOR_VERBOSE=1): show Ray's own log lines."""
    return os.environ.get("CURATOR_VERBOSE", "") not in ("", "0")


def silence_ray_logs() -> None:
    """Keep Ray's Python logs off the console unless verbose: Ray Data warns that its bars are
    off (curator draws its own) and reports every dataset it finishes. Ray Data's own log file
    (ray-data.log in the session folder) keeps everything."""
    if ray_verbose():
        return
    logging.getLogger("ray").setLevel(logging.ERROR)
    if "ray.data" not in sys.modules:  # curate itself never imports Ray Data (curator/fanout.py)
        return
    # importing ray.data configured its logger: a console handler and the session's file
    from ray.data._internal.logging import SessionFileHandler

    for handler in logging.getLogger("ray.data").handlers:
        if not isinstance(handler, SessionFileHandler):
            handler.setLevel(logging.ERROR)


def divert_native_stderr() -> Path | None:
    """Unless verbose, point file descriptor 2 at a file in Ray's log folder, keeping Python's
    `sys.stderr` (progress bars, curator's messages) on the terminal.

    Why: the driver's C++ core worker logs straight to fd 2, at ERROR, on every Ray Data actor
    pool ("constructor arguments in the object store and max_restarts > 0", ray#53727: Ray
    Data itself puts the UDF there), and RAY_BACKEND_LOG_LEVEL only trades that line for
    another. Returns the file (None when verbose)."""
    import ray

    if ray_verbose():
        return None
    logs = Path(ray._private.worker.global_worker.node.get_logs_dir_path())
    path = logs / f"curator-driver-{os.getpid()}.err"
    sys.stderr.flush()
    terminal = os.dup(2)
    sys.stderr = os.fdopen(terminal, "w", buffering=1, encoding="utf-8", errors="replace")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(fd, 2)
    os.close(fd)
    return path


def default_concurrency(cfg: RayConfig, n_units: int) -> int:
    import ray

    cpus = int(ray.cluster_resources().get("CPU", 1))
    return max(1, min(cfg.concurrency or cpus, n_units))
