"""Bounded tries per unit of work, and the per-worker memory bound that ends a try.

Ray Data restarts a dead actor and retries its task without limit, so a file whose reading
kills its worker (a decompression bomb under Ray's memory monitor, the kernel's OOM killer)
would be retried forever and the job would never end. Each try of a unit is therefore written
down in RUN/_work/tries/ *before* the unit's work starts; the try after `ray.max_unit_attempts`
failed ones does no work and gives the unit up (the caller quarantines it as unit_failed with
the causes), so the run finishes.

Only tries of the current driver session count: when the driver itself is killed, its workers
die with it, and those tries say nothing about the data (a resumed run must end like an
uninterrupted one).
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psutil

from connectors.fs import write_text_atomic

UNIT_FAILED = "unit_failed"  # the manifest's reason for the rows of a unit given up

_MIN_DEFAULT_LIMIT = 4 << 30


@dataclass(frozen=True)
class Try:
    pid: int
    started: float
    ended: str | None  # why the try ended without finishing; None: it died with no word


class UnitTries:
    """The tries of one unit in one pass, in the current driver session."""

    def __init__(self, folder: Path, phase: str, idx: int, session: str) -> None:
        self.path = folder / phase / f"source={idx:05d}.json"
        self.session = session

    def _read(self) -> list[dict]:
        """Every session's tries (kept for the record; only this session's count)."""
        return json.loads(self.path.read_text()) if self.path.exists() else []

    def _write(self, tries: list[dict]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        write_text_atomic(json.dumps(tries), self.path)

    def failed(self) -> list[Try]:
        """The earlier tries of this session (each one that is written down and not running
        now failed: a finished unit is marked done and never tried again)."""
        return [
            Try(t["pid"], t["started"], t["ended"])
            for t in self._read()
            if t["session"] == self.session
        ]

    def start(self) -> None:
        self._write([*self._read(), {"session": self.session, "pid": os.getpid(),
                                     "started": time.time(), "ended": None}])

    def end(self, why: str) -> None:
        """Write down why the running try (the last one) ended without finishing."""
        tries = self._read()
        if tries and tries[-1]["session"] == self.session:
            tries[-1]["ended"] = why
            self._write(tries)


def give_up_error(tries: list[Try], limit: int) -> str:
    """The quarantine error of a unit given up: each try and how it ended."""
    causes = [
        t.ended or "the worker process died with no word (killed: out of memory, a node failure "
        "or a signal)"
        for t in tries
    ]
    unique = list(dict.fromkeys(causes))
    return (
        f"given up after {len(tries)} tries (ray.max_unit_attempts={limit}): "
        + "; ".join(unique)
    )


def default_memory_limit() -> int:
    """4 GiB, or the machine's memory per CPU where that is larger."""
    per_cpu = psutil.virtual_memory().total // max(1, os.cpu_count() or 1)
    return max(_MIN_DEFAULT_LIMIT, per_cpu)


@contextlib.contextmanager
def memory_bound(limit: int, tries: UnitTries, poll_seconds: float = 0.05) -> Iterator[None]:
    """End the try (exit the worker process) if its resident memory passes `limit`.

    Exiting is the one way to reclaim memory held inside native code; the pool starts a new host
    and the next try reads why this one ended. Polling cannot stop a single allocation larger
    than the limit; the readers' byte caps (read.max_doc_bytes) keep allocations small, so
    this is the backstop for what they do not foresee.
    """
    process = psutil.Process()
    stop = threading.Event()

    def check() -> None:
        rss = process.memory_info().rss
        if rss > limit:
            tries.end(
                f"worker memory reached {rss >> 20} MiB > ray.worker_memory_bytes="
                f"{limit >> 20} MiB"
            )
            os._exit(3)

    def watch() -> None:
        while not stop.wait(poll_seconds):
            check()

    check()  # before any work: a worker already over the bound does none
    thread = threading.Thread(target=watch, name="curator-memory-bound", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
