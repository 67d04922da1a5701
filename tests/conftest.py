"""One real local Ray cluster for the whole test session.

Started the way `curator` starts its embedded cluster (curator.embedded_ray: `ray start --head
--block` on free ports for every Ray process, in its own process group). Here without auth, so
in Ray's single-machine mode: every listener on 127.0.0.1 (test_embedded_ray checks it); the
variable is set here, before anything imports Ray, which reads it once. The dashboard is on so
that (a) `ray job submit` tests can reach its job server, (b) the test process connects with
ray.init(address), and (c) teardown stops exactly this cluster by process group, never with a
broad `ray stop`.
"""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")  # embedded_ray.SINGLE_MACHINE_ENV
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("RAY_DEDUP_LOGS", "0")


@pytest.fixture(scope="session")
def ray_cluster():
    import ray

    from curator.embedded_ray import start_embedded_cluster

    cluster = start_embedded_cluster(num_cpus=4, include_dashboard=True)
    ray.init(address=cluster.address, log_to_driver=False)
    os.environ["RAY_ADDRESS"] = cluster.address  # subprocesses (CLI tests) join this cluster
    try:
        yield cluster
    finally:
        ray.shutdown()
        os.environ.pop("RAY_ADDRESS", None)
        cluster.stop()
