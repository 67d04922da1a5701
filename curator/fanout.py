"""The one way curator fans work out on Ray: a pool of host actors that runs a run's units and
tasks, or plain tasks when no pool is open.

A run opens one `worker_pool` for all its passes: pass 1's units, the dedup shuffles and pass 2's
units all run on the same actor processes, so each worker imports pyarrow, polars and curator's
stages once per run instead of once per pass (measured at 1 MB, whole process tree: the dedup
map's fresh task workers and pass 2's fresh actors were ~6 of 18.7 CPU-seconds, all start-up).

`run_units`: coarse units of a pass (one input file or DuckDB query), each handled by a stateful
worker (its config parsed, its stages built once per host and pass). Each host gets its next
unit as soon as it returns one. A host that dies is restarted and its unit retried (actor
max_restarts / max_task_retries = -1), which is safe because every unit writes its outputs
atomically and is idempotent; a unit that keeps killing its worker is given up by the worker's
own try count (curator/unit_tries.py). No Ray Data: its streaming executor costs a scheduling
loop, a stats actor and seconds of start-up per pass, for units that are one row each.

`run_tasks`: stateless functions over a list of arguments (the dedup shuffles), results in
argument order; on the open pool's hosts, else as Ray tasks, else (no Ray) in this process.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Protocol

TASK_RETRIES = 3  # a task whose worker died is retried this often; a poison task then fails


class UnitWorker(Protocol):
    def handle(self, item: dict[str, Any]) -> dict[str, Any]: ...


class _Host:
    """One process of the pool: builds a pass's worker on its first unit and keeps it until
    another pass's arrives (the previous pass's stages are freed then)."""

    def __init__(self) -> None:
        self._key: str | None = None
        self._worker: Any = None

    def handle(self, key: str, worker_cls: type, ctor_kwargs: dict[str, Any],
               item: dict[str, Any]) -> dict[str, Any]:
        if key != self._key:
            self._worker, self._key = None, None  # free the previous pass's stages first
            self._worker, self._key = worker_cls(**ctor_kwargs), key
        return self._worker.handle(item)

    def call(self, fn: Callable[..., Any], *args: Any) -> Any:
        return fn(*args)


_POOL: list[Any] = []  # the open pool's host actors (empty: none open)


@contextlib.contextmanager
def worker_pool(size: int, num_cpus: float = 1) -> Iterator[list[Any]]:
    """Open a pool of `size` host actors for what runs inside; they go when it closes."""
    import ray

    host = ray.remote(num_cpus=num_cpus, max_restarts=-1, max_task_retries=-1)(_Host)
    hosts = [host.remote() for _ in range(max(1, size))]
    _POOL[:] = hosts
    try:
        yield hosts
    finally:
        _POOL.clear()
        for actor in hosts:  # their processes go now, not when the driver exits
            ray.kill(actor)


def run_units(
    worker_cls: type[UnitWorker],
    items: list[dict[str, Any]],
    ctor_kwargs: dict[str, Any],
    concurrency: int,
    on_result: Callable[[dict[str, Any]], None],
    num_cpus: float = 1,
) -> None:
    """`worker_cls(**ctor_kwargs).handle(item)` for every item, on the open pool's hosts (or a
    pool of `concurrency` opened for this call); `on_result` gets each result as it arrives."""
    if not items:
        return
    import uuid

    import ray

    with contextlib.ExitStack() as stack:
        hosts = list(_POOL) or stack.enter_context(
            worker_pool(min(concurrency, len(items)), num_cpus))
        hosts = hosts[: max(1, min(concurrency, len(items)))]
        key = uuid.uuid4().hex  # this call's workers: a host builds one on its first unit
        todo = list(reversed(items))  # pop() takes them in the given order
        in_flight: dict[Any, Any] = {}  # ObjectRef -> the host working on it

        def submit(host: Any) -> None:
            in_flight[host.handle.remote(key, worker_cls, ctor_kwargs, todo.pop())] = host

        for host in hosts:
            if todo:
                submit(host)
        while in_flight:
            (ref,), _ = ray.wait(list(in_flight), num_returns=1)
            host = in_flight.pop(ref)
            if todo:
                submit(host)
            on_result(ray.get(ref))


def run_tasks(
    fn: Callable[..., Any], arg_tuples: Sequence[tuple], concurrency: int | None
) -> list[Any]:
    """Run `fn` over each argument tuple, at most `concurrency` in flight; results in argument
    order. On the open pool's hosts, else as Ray tasks, else in this process one after another
    (a single-core run for profiling and per-core benchmarks, same code and files).

    A task whose worker died is retried (TASK_RETRIES); an exception raised by `fn` itself is
    an application error and propagates at once, it would fail again."""
    import ray

    if not ray.is_initialized():
        return [fn(*args) for args in arg_tuples]
    limit = concurrency or max(int(ray.cluster_resources().get("CPU", 1)), 1)
    hosts = list(_POOL)[:limit]
    free = list(hosts)  # hosts with no task in flight
    if hosts:

        def submit(args: tuple) -> tuple[Any, Any]:
            host = free.pop()
            return host.call.options(max_task_retries=TASK_RETRIES).remote(fn, *args), host

        limit = len(hosts)
    else:
        remote = ray.remote(max_retries=TASK_RETRIES, retry_exceptions=False)(fn)

        def submit(args: tuple) -> tuple[Any, Any]:
            return remote.remote(*args), None

    index: dict[Any, int] = {}
    owner: dict[Any, Any] = {}
    pending: list[Any] = []
    out: list[Any] = [None] * len(arg_tuples)

    def collect(ref: Any) -> None:
        out[index.pop(ref)] = ray.get(ref)
        host = owner.pop(ref)
        if host is not None:
            free.append(host)

    for i, args in enumerate(arg_tuples):
        if len(pending) >= limit:
            done, pending = ray.wait(pending, num_returns=1)
            for ref in done:
                collect(ref)
        ref, host = submit(args)
        index[ref], owner[ref] = i, host
        pending.append(ref)
    for ref in pending:
        collect(ref)
    return out
