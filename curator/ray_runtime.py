"""Connecting to Ray and fanning units of work out over a Ray Data actor pool."""

from __future__ import annotations

import atexit
import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

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

            cluster = start_embedded_cluster(cfg.num_cpus)
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
    # importing ray.data configures its logger: a console handler and the session's file
    from ray.data._internal.logging import SessionFileHandler

    logging.getLogger("ray").setLevel(logging.ERROR)
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


def run_units(
    worker_cls: type,
    items: list[dict[str, Any]],
    ctor_kwargs: dict[str, Any],
    concurrency: int,
    on_result: Callable[[dict[str, Any]], None],
    num_cpus: float = 1,
) -> None:
    """Run `worker_cls` (a callable class over one-row pyarrow batches) on every item.

    Ray Data gives the actor pool, backpressure and scheduling; actors that die are restarted
    and their in-flight unit retried (Ray Data's default `max_restarts`/`max_task_retries` of
    -1), which is safe because each unit writes its outputs atomically and is idempotent.
    """
    if not items:
        return
    import ray.data

    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False  # the driver shows one bar per pass instead
    ctx.print_on_execution_start = False
    silence_ray_logs()
    # One unit per block: units are coarse (whole files), so each is its own scheduling grain.
    ds = ray.data.from_items(items, override_num_blocks=len(items))
    ds = ds.map_batches(
        worker_cls,
        fn_constructor_kwargs=ctor_kwargs,
        batch_size=1,
        batch_format="pyarrow",
        compute=ray.data.ActorPoolStrategy(size=min(concurrency, len(items))),
        num_cpus=num_cpus,
        # no max_restarts/max_task_retries here: Ray Data's actor pools default to both = -1
        # (restart dead actors, retry their tasks) and passing them is deprecated in Ray 2.60
    )
    for row in ds.iter_rows():
        on_result(row)
