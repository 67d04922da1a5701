"""Connecting to Ray: join a cluster or start the embedded one, keep its logs off the console;
or, for a job that runs without Ray (`ray.executor`), the local machine's resources.

Fanning work out over either is curator/fanout.py."""

from __future__ import annotations

import atexit
import logging
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from curator.config import RayConfig

if TYPE_CHECKING:
    from connectors.registry import SourceUnit


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


def names_a_cluster(cfg: RayConfig) -> bool:
    """Whether the command joins a running Ray cluster rather than starting its own: one is
    named (ray.address, RAY_ADDRESS -- `ray job submit` sets it --) or already connected in
    this process. Ray is not imported to ask: the import alone costs ~1 CPU-s."""
    ray = sys.modules.get("ray")
    return bool(cfg.address or os.environ.get("RAY_ADDRESS")
                or (ray is not None and ray.is_initialized()))


def runs_locally(cfg: RayConfig, units: list[SourceUnit]) -> bool:
    """Whether a job's units run in local worker processes instead of on Ray (`ray.executor`).

    auto: only where Ray would be an embedded cluster of this one machine anyway (no cluster
    named or connected: `names_a_cluster`), and the inputs are local files small enough that
    the cluster's fixed cost would dominate: stores and DuckDB queries have no size to judge
    by, so they go to Ray."""
    if cfg.executor != "auto":
        return cfg.executor == "local"
    if names_a_cluster(cfg):
        return False
    sizes: dict[str, int] = {}
    for unit in units:
        if unit.format == "duckdb" or "://" in unit.source:
            return False
        if unit.source not in sizes:
            try:
                sizes[unit.source] = os.stat(unit.source).st_size
            except OSError:
                return False  # let the Ray path report it as it always has
    return sum(sizes.values()) <= cfg.local_max_mb * 1e6


def local_resources(cfg: RayConfig) -> dict[str, float]:
    """What a local job may use, in `ensure_ray`'s terms: this machine's CPUs (ray.num_cpus
    caps them, as it sizes an embedded cluster)."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {"CPU": float(min(cfg.num_cpus or cpus or 1, cpus or 1))}


def default_concurrency(cfg: RayConfig, n_units: int,
                        resources: dict[str, float] | None = None) -> int:
    """Workers for a pass: ray.concurrency, else one per CPU of `resources` (default: the
    connected cluster's), never more than there are units."""
    if resources is None:
        import ray

        resources = ray.cluster_resources()
    cpus = int(resources.get("CPU", 1))
    return max(1, min(cfg.concurrency or cpus, n_units))
