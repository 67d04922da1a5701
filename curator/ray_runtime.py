"""Connecting to Ray and fanning units of work out over a Ray Data actor pool."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from typing import Any

from curator.config import RayConfig


def ensure_ray(cfg: RayConfig) -> dict[str, float]:
    """Join the cluster named by config or RAY_ADDRESS (set under `ray job submit`), else start
    an embedded local one. Returns the cluster's resources."""
    import ray

    if not ray.is_initialized():
        address = cfg.address or os.environ.get("RAY_ADDRESS")
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
        if address:
            ray.init(address=address, log_to_driver=False)
        else:
            ray.init(num_cpus=cfg.num_cpus, include_dashboard=False, log_to_driver=False)
    return ray.cluster_resources()


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
    logging.getLogger("ray.data").setLevel(logging.WARNING)  # one bar per pass says enough
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
