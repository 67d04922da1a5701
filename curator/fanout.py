"""The one way curator fans work out on Ray: a pool of host actors that runs a run's units and
tasks, or plain tasks when no pool is open.

A run opens one `worker_pool` for all its passes: pass 1's units, the dedup shuffles and pass 2's
units all run on the same actor processes, so each worker imports pyarrow, polars and curator's
stages once per run instead of once per pass (measured at 1 MB, whole process tree: the dedup
map's fresh task workers and pass 2's fresh actors were ~6 of 18.7 CPU-seconds, all start-up).

`run_units`: coarse units of a pass (one input file or DuckDB query), each handled by a stateful
worker (its config parsed, its stages built once per host and pass). Each host gets its next
unit as soon as it returns one. A host that dies (its process killed, or its whole node lost)
is replaced by a new one and its unit handed to the next host free, which is safe because every
unit writes its outputs atomically and is idempotent; a unit that keeps killing its worker is
given up by the worker's own try count (curator/unit_tries.py). No Ray Data: its streaming
executor costs a scheduling loop, a stats actor and seconds of start-up per pass, for units
that are one row each.

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


class _Pool:
    """The open pool's hosts, and which of them are up and free.

    Ray does not restart a host (max_restarts=0); the driver does, here. A host Ray restarts
    keeps its unit queued until the restart is placed, and when a node is lost the surviving
    nodes' CPUs are held by the pool's other hosts, so it never is: seen on two nodes of one
    CPU each, the job waited forever for the unit that was on the lost node. So a host that
    dies is replaced by a new one, its work goes to the next host that is free, and a host gets
    work only once it has answered: one that cannot be placed (no CPU left on any node, or more
    hosts asked for than CPUs) holds none, and starts working if a node with room joins."""

    def __init__(self, size: int, num_cpus: float) -> None:
        import ray

        self._host = ray.remote(num_cpus=num_cpus, max_restarts=0)(_Host)
        self.started: list[Any] = []  # every host started, stopped when the pool closes
        self.starting: dict[Any, Any] = {}  # its readiness ref -> a host not yet up
        self.free: list[Any] = []  # hosts up with nothing in flight
        for _ in range(max(1, size)):
            self.start_one()

    def start_one(self) -> None:
        host = self._host.remote()
        self.starting[host.__ray_ready__.remote()] = host
        self.started.append(host)

    def answered(self, ref: Any) -> None:
        """A starting host is up (free now) or could not start (dropped, not replaced: its
        replacement would most likely fail the same way)."""
        import ray
        from ray.exceptions import RayActorError

        host = self.starting.pop(ref)
        with contextlib.suppress(RayActorError):
            ray.get(ref)
            self.free.append(host)

    def replace(self, host: Any) -> None:
        import ray

        ray.kill(host)  # dead already, unless only unreachable: then it must not go on
        self.start_one()

    def close(self) -> None:
        import ray

        for host in self.started:  # their processes go now, not when the driver exits
            ray.kill(host)


_POOL: list[_Pool] = []  # the open pool (empty: none open)


@contextlib.contextmanager
def worker_pool(size: int, num_cpus: float = 1) -> Iterator[_Pool]:
    """Open a pool of `size` host actors for what runs inside; they go when it closes."""
    pool = _Pool(size, num_cpus)
    _POOL[:] = [pool]
    try:
        yield pool
    finally:
        _POOL.clear()
        pool.close()


def _on_hosts(
    pool: _Pool,
    n_jobs: int,
    submit: Callable[[Any, int], Any],
    on_value: Callable[[int, Any], None],
    limit: int,
    retries: int | None,
) -> None:
    """Jobs 0..n_jobs-1 on the pool's hosts, at most `limit` in flight, in order of submission:
    `submit(host, j)` starts job j on a free host and returns its ref, `on_value(j, value)` gets
    each result as it arrives. A job whose host died goes to the next free host (at most
    `retries` times; None: no bound); an exception the job raised propagates."""
    import ray
    from ray.exceptions import RayActorError

    todo = list(reversed(range(n_jobs)))  # pop() takes them in order
    deaths = [0] * n_jobs
    in_flight: dict[Any, tuple[Any, int]] = {}  # ref -> (host, job)
    while todo or in_flight:
        while todo and pool.free and len(in_flight) < limit:
            host, job = pool.free.pop(), todo.pop()
            in_flight[submit(host, job)] = (host, job)
        if not in_flight and not pool.starting:
            raise RuntimeError(
                f"no worker of the pool could start, {len(todo)} jobs left; the Ray worker "
                "logs (session folder, logs/worker-*.err) say why"
            )
        (ref,), _ = ray.wait([*in_flight, *pool.starting], num_returns=1)
        if ref in pool.starting:
            pool.answered(ref)
            continue
        host, job = in_flight.pop(ref)
        try:
            value = ray.get(ref)
        except RayActorError:  # its process or its node died: not the job's own error
            deaths[job] += 1
            if retries is not None and deaths[job] > retries:
                raise
            pool.replace(host)
            todo.append(job)  # next, on the first host free
            continue
        pool.free.append(host)
        on_value(job, value)


def run_units(
    worker_cls: type[UnitWorker],
    items: list[dict[str, Any]],
    ctor_kwargs: dict[str, Any],
    concurrency: int,
    on_result: Callable[[dict[str, Any]], None],
    num_cpus: float = 1,
) -> None:
    """`worker_cls(**ctor_kwargs).handle(item)` for every item, on the open pool's hosts (or a
    pool of `concurrency` opened for this call); `on_result` gets each result as it arrives.
    A unit whose host died is tried again with no bound here: the unit's own try count
    (curator/unit_tries.py) gives up one that keeps killing its worker."""
    if not items:
        return
    import uuid

    with contextlib.ExitStack() as stack:
        pool = (_POOL[0] if _POOL else
                stack.enter_context(worker_pool(min(concurrency, len(items)), num_cpus)))
        key = uuid.uuid4().hex  # this call's workers: a host builds one on its first unit
        _on_hosts(
            pool,
            len(items),
            lambda host, j: host.handle.remote(key, worker_cls, ctor_kwargs, items[j]),
            lambda _, value: on_result(value),
            limit=max(1, min(concurrency, len(items))),
            retries=None,
        )


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
    out: list[Any] = [None] * len(arg_tuples)
    if _POOL:

        def on_value(i: int, value: Any) -> None:
            out[i] = value

        _on_hosts(_POOL[0], len(arg_tuples), lambda host, i: host.call.remote(fn, *arg_tuples[i]),
                  on_value, limit, retries=TASK_RETRIES)
        return out
    remote = ray.remote(max_retries=TASK_RETRIES, retry_exceptions=False)(fn)
    index: dict[Any, int] = {}
    pending: list[Any] = []
    for i, args in enumerate(arg_tuples):
        if len(pending) >= limit:
            done, pending = ray.wait(pending, num_returns=1)
            for ref in done:
                out[index.pop(ref)] = ray.get(ref)
        ref = remote.remote(*args)
        index[ref] = i
        pending.append(ref)
    for ref in pending:
        out[index.pop(ref)] = ray.get(ref)
    return out
