"""The one way curator fans work out on Ray: units on a pool of actors, or plain tasks.

`run_units`: coarse units of a pass (a file or a range of one), each handled by a stateful
worker (its config parsed, its stages built, once per actor). One actor per concurrency slot,
each given its next unit as soon as it returns one: no Ray Data here, whose streaming executor
costs a scheduling loop, a stats actor and seconds of start-up per pass, for units that are one
row each. An actor that dies is restarted and its unit retried (max_restarts / max_task_retries
= -1), which is safe because every unit writes its outputs atomically and is idempotent; a unit
that keeps killing its worker is given up by the worker's own try count (curator/unit_tries.py).

`run_tasks`: stateless functions over a list of arguments (the dedup shuffles), at most
`concurrency` in flight; without a connected Ray they run in this process, one after another.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol


class UnitWorker(Protocol):
    def handle(self, item: dict[str, Any]) -> dict[str, Any]: ...


def run_units(
    worker_cls: type[UnitWorker],
    items: list[dict[str, Any]],
    ctor_kwargs: dict[str, Any],
    concurrency: int,
    on_result: Callable[[dict[str, Any]], None],
    num_cpus: float = 1,
) -> None:
    """`worker_cls(**ctor_kwargs).handle(item)` for every item on `concurrency` actors;
    `on_result` gets each result as it arrives (completion order)."""
    if not items:
        return
    import ray

    actor_cls = ray.remote(num_cpus=num_cpus, max_restarts=-1, max_task_retries=-1)(worker_cls)
    actors = [actor_cls.remote(**ctor_kwargs) for _ in range(max(1, min(concurrency, len(items))))]
    todo = list(reversed(items))  # pop() takes them in the given order
    in_flight: dict[Any, Any] = {}  # ObjectRef -> the actor working on it
    try:
        for actor in actors:
            if todo:
                in_flight[actor.handle.remote(todo.pop())] = actor
        while in_flight:
            (ref,), _ = ray.wait(list(in_flight), num_returns=1)
            actor = in_flight.pop(ref)
            if todo:
                in_flight[actor.handle.remote(todo.pop())] = actor
            on_result(ray.get(ref))
    finally:
        for actor in actors:  # their processes go now, not when the driver exits
            ray.kill(actor)


def run_tasks(
    fn: Callable[..., Any], arg_tuples: Sequence[tuple], concurrency: int | None
) -> list[Any]:
    """Run `fn` as Ray tasks, at most `concurrency` in flight; results in argument order.

    System failures (a worker died) are retried by Ray (max_retries); an exception raised by
    `fn` itself is an application error and propagates at once, it would fail again. Without a
    connected Ray the tasks run one after another in this process: a single-core run for
    profiling and per-core benchmarks, same code and files.
    """
    import ray

    if not ray.is_initialized():
        return [fn(*args) for args in arg_tuples]
    remote = ray.remote(max_retries=3, retry_exceptions=False)(fn)
    limit = concurrency or max(int(ray.cluster_resources().get("CPU", 1)), 1)
    results: dict[ray.ObjectRef, int] = {}
    pending: list[ray.ObjectRef] = []
    out: list[Any] = [None] * len(arg_tuples)
    for i, args in enumerate(arg_tuples):
        if len(pending) >= limit:
            done, pending = ray.wait(pending, num_returns=1)
            for ref in done:
                out[results[ref]] = ray.get(ref)
        ref = remote.remote(*args)
        results[ref] = i
        pending.append(ref)
    for ref, value in zip(pending, ray.get(pending), strict=True):
        out[results[ref]] = value
    return out
