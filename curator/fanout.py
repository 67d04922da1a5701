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

A pool is Ray actors (`_RayPool`) or, for a job that runs without Ray (`ray.executor`:
curator/ray_runtime.py), local worker processes (`_LocalPool`) forked from a server that has
imported curator's stages once. Both keep the same contract: a unit per free host, a host that
dies replaced and its unit handed on, so a file that kills its process is isolated the same
way with or without Ray. What the local pool saves is Ray's fixed cost: measured at 3 MB
(BENCHMARKS.md), the cluster's own processes and the Ray imports of the driver and workers
were about half of the job's CPU-seconds and most of its memory.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import multiprocessing.connection
import multiprocessing.forkserver
import os
import signal
import sys
import threading
import types
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


class _RayPool:
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
        self.size = max(1, size)  # hosts kept up (a dead one is replaced)
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

    def submit(self, host: Any, method: str, args: tuple) -> Any:
        return getattr(host, method).remote(*args)

    def next_result(self, in_flight: Sequence[Any]) -> tuple[Any, str, Any] | None:
        """Wait for one event: None when a starting host answered, else (ref, outcome, value):
        "returned" with the job's value, "raised" with the exception the job raised, "died"
        with the error of a host whose process (or node) died."""
        import ray
        from ray.exceptions import RayActorError

        (ref,), _ = ray.wait([*in_flight, *self.starting], num_returns=1)
        if ref in self.starting:
            self.answered(ref)
            return None
        try:
            return ref, "returned", ray.get(ref)
        except RayActorError as err:  # its process or its node died: not the job's own error
            return ref, "died", err
        except Exception as err:  # noqa: BLE001 - the job's own error: _on_hosts raises it
            return ref, "raised", err

    def close(self) -> None:
        import ray

        for host in self.started:  # their processes go now, not when the driver exits
            ray.kill(host)


# Imported by the local pool's fork server before it forks any worker (see the module).
PRELOAD = ["curator.worker_preload"]


def _exit_when_cut(lifeline: multiprocessing.connection.Connection) -> None:
    """Exit this worker the moment the driver's end of `lifeline` closes: the driver died (or
    let the worker go). A worker is the fork server's child, and the server outlives the
    driver while any worker lives, so neither a parent-death signal nor an EOF on the job pipe
    (read only between units) would stop one mid-unit; killed jobs must leave no worker
    writing into a run that a resume is about to take over."""
    try:
        lifeline.recv()  # nothing is ever sent: returns only by EOF
    except (EOFError, OSError):
        pass
    os._exit(0)


def _serve(conn: multiprocessing.connection.Connection,
           lifeline: multiprocessing.connection.Connection) -> None:
    """A local worker process: `_Host` calls from the driver, one at a time, until None.
    An exception a job raises goes back to the driver (it fails the job, as under Ray)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # ^C is the driver's to handle
    threading.Thread(target=_exit_when_cut, args=(lifeline,), daemon=True).start()
    host = _Host()
    while (msg := conn.recv()) is not None:
        method, args = msg
        try:
            reply = (True, getattr(host, method)(*args))
        except BaseException as exc:  # noqa: BLE001 - the driver re-raises it
            reply = (False, exc)
        try:
            conn.send(reply)
        except Exception as exc:  # noqa: BLE001 - a reply that cannot be pickled
            conn.send((False, RuntimeError(f"{method} returned what cannot be sent back "
                                           f"({type(exc).__name__}: {exc}): {reply[1]!r}"[:2000])))


class _LocalHost:
    """One local worker process and the driver's end of its pipe."""

    def __init__(self, ctx: multiprocessing.context.BaseContext) -> None:
        self.conn, child = ctx.Pipe()
        lifeline, self.lifeline = ctx.Pipe(duplex=False)  # the worker reads, the driver holds
        self.proc = ctx.Process(target=_serve, args=(child, lifeline), daemon=True,
                                name="curator-worker")
        with _main_not_reimported():
            self.proc.start()
        child.close()  # the driver sees EOF when the worker dies
        lifeline.close()  # only the worker's copy is left: it sees EOF when the driver goes

    def stop(self, grace_s: float = 5.0) -> None:
        with contextlib.suppress(OSError):
            self.conn.send(None)
        self.proc.join(grace_s)
        if self.proc.is_alive():
            self.proc.kill()
            self.proc.join()
        self.conn.close()
        self.lifeline.close()


@contextlib.contextmanager
def _main_not_reimported() -> Iterator[None]:
    """Start processes that do not run the driver's main script again.

    multiprocessing's spawn/forkserver children re-import the parent's `__main__` (as
    `__mp_main__`, so that objects defined there unpickle); a user's script that calls
    `run_curate` at top level, without an `if __name__ == "__main__":` guard, would then start
    the job again in every worker (Python refuses with "An attempt has been made to start a new
    process before the current process has finished its bootstrapping phase"). Workers only run
    curator's own code, so the child is told the main module is named `__main__`, which
    multiprocessing skips (spawn._fixup_main_from_name), for the duration of the start."""
    main = sys.modules["__main__"]
    saved = main.__dict__.get("__spec__", None)
    main.__spec__ = types.SimpleNamespace(name="__main__")  # type: ignore[assignment]
    try:
        yield
    finally:
        main.__spec__ = saved


@contextlib.contextmanager
def _one_thread_per_worker() -> Iterator[None]:
    """OMP_NUM_THREADS=1 for processes started inside (unless the user set it), as Ray gives a
    worker of one CPU: each worker is one of `size` parallel processes, and BLAS summing in
    another thread count changes float results in the last bit (language scores did)."""
    if "OMP_NUM_THREADS" in os.environ:
        yield
        return
    os.environ["OMP_NUM_THREADS"] = "1"
    try:
        yield
    finally:
        del os.environ["OMP_NUM_THREADS"]


def start_local_fork_server() -> None:
    """Start the local pool's fork server now, so that it imports PRELOAD (1-2 s) in its own
    process while the driver goes on (cutting large files into units, checking the run)
    instead of after; the pool opened later forks its workers from this server."""
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(PRELOAD)
    with _one_thread_per_worker(), _main_not_reimported():
        multiprocessing.forkserver.ensure_running()


class _LocalPool:
    """Worker processes on this machine, no Ray: the same contract as `_RayPool` (a free host
    per job, a dead host replaced and its job handed on). Forked from a fork server (never
    from the driver, whose threads a fork would copy mid-lock) that imported PRELOAD once."""

    def __init__(self, size: int) -> None:
        self.ctx = multiprocessing.get_context("forkserver")
        self.ctx.set_forkserver_preload(PRELOAD)
        self.size = max(1, size)
        self.starting: dict[Any, Any] = {}  # always empty: a local host is up when made
        with _one_thread_per_worker():  # the fork server starts with the first host
            self.free: list[_LocalHost] = [_LocalHost(self.ctx) for _ in range(self.size)]
        self.started = list(self.free)

    def submit(self, host: _LocalHost, method: str, args: tuple) -> _LocalHost:
        with contextlib.suppress(OSError):  # died idle: next_result reports it by its sentinel
            host.conn.send((method, args))
        return host  # a host runs one job at a time: it is the job's handle

    def next_result(self, in_flight: Sequence[_LocalHost]) -> tuple[Any, str, Any]:
        """`_RayPool.next_result`'s events for local hosts (none is ever starting)."""
        ready = multiprocessing.connection.wait(
            [h.conn for h in in_flight] + [h.proc.sentinel for h in in_flight])
        for host in in_flight:
            if host.conn not in ready and host.proc.sentinel not in ready:
                continue
            try:  # a reply first: a worker may exit right after sending one
                if host.conn.poll():
                    ok, value = host.conn.recv()
                    return host, "returned" if ok else "raised", value
            except (EOFError, OSError):
                pass
            host.proc.join(5)
            return host, "died", RuntimeError(
                f"local worker {host.proc.pid} died (exit code {host.proc.exitcode})")
        raise AssertionError("connection.wait returned nothing of the pool's")

    def replace(self, host: _LocalHost) -> None:
        host.stop(grace_s=0)
        new = _LocalHost(self.ctx)
        self.started.append(new)
        self.free.append(new)

    def close(self) -> None:
        for host in self.started:
            if host.proc.exitcode is None:  # replaced hosts were stopped already
                host.stop()


_POOL: list[_RayPool | _LocalPool] = []  # the open pool (empty: none open)


@contextlib.contextmanager
def worker_pool(size: int, num_cpus: float = 1, local: bool = False
                ) -> Iterator[_RayPool | _LocalPool]:
    """Open a pool of `size` hosts for what runs inside: Ray actors, or with `local` worker
    processes on this machine; they go when it closes."""
    pool: _RayPool | _LocalPool = _LocalPool(size) if local else _RayPool(size, num_cpus)
    _POOL[:] = [pool]
    try:
        yield pool
    finally:
        _POOL.clear()
        pool.close()


def _on_hosts(
    pool: _RayPool | _LocalPool,
    n_jobs: int,
    call: Callable[[int], tuple[str, tuple]],
    on_value: Callable[[int, Any], None],
    limit: int,
    retries: int | None,
) -> None:
    """Jobs 0..n_jobs-1 on the pool's hosts, at most `limit` in flight, in order of submission:
    `call(j)` is job j's host method and arguments, `on_value(j, value)` gets each result as
    it arrives. A job whose host died goes to the next free host (at most `retries` times;
    None: no bound); an exception the job raised propagates."""
    todo = list(reversed(range(n_jobs)))  # pop() takes them in order
    deaths = [0] * n_jobs
    in_flight: dict[Any, tuple[Any, int]] = {}  # handle -> (host, job)
    while todo or in_flight:
        while todo and pool.free and len(in_flight) < limit:
            host, job = pool.free.pop(), todo.pop()
            in_flight[pool.submit(host, *call(job))] = (host, job)
        if not in_flight and not pool.starting:
            raise RuntimeError(
                f"no worker of the pool could start, {len(todo)} jobs left; the Ray worker "
                "logs (session folder, logs/worker-*.err) say why"
            )
        event = pool.next_result(list(in_flight))
        if event is None:  # a host came up
            continue
        ref, outcome, value = event
        host, job = in_flight.pop(ref)
        if outcome == "died":
            pool.replace(host)
            deaths[job] += 1
            if retries is not None and deaths[job] > retries:
                raise value
            todo.append(job)  # next, on the first host free
            continue
        pool.free.append(host)  # a job's own error leaves its host as good as before
        if outcome == "raised":
            raise value
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
            lambda j: ("handle", (key, worker_cls, ctor_kwargs, items[j])),
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
    out: list[Any] = [None] * len(arg_tuples)
    if _POOL:

        def on_value(i: int, value: Any) -> None:
            out[i] = value

        limit = concurrency or _POOL[0].size
        _on_hosts(_POOL[0], len(arg_tuples), lambda i: ("call", (fn, *arg_tuples[i])),
                  on_value, limit, retries=TASK_RETRIES)
        return out
    import ray

    if not ray.is_initialized():
        return [fn(*args) for args in arg_tuples]
    limit = concurrency or max(int(ray.cluster_resources().get("CPU", 1)), 1)
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
