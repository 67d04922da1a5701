"""What the console shows while a job runs: a line as each phase starts and ends, and live bars
in documents and bytes for the streaming passes.

Units are whole files, so a bar that counts files moves in jumps and a large file makes its
ETA meaningless (a 2 min 49 s file once showed 23 s). Workers instead add the documents and
text bytes of every batch to a `ProgressBoard` actor as they go; a driver thread reads it twice
a second. The board is a plain counter: it costs one fire-and-forget call per batch.
"""

from __future__ import annotations

import contextlib
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

from tqdm import tqdm

POLL_S = 0.5


def say(message: str, quiet: bool = False) -> None:
    """One line on the console (stderr), below any live bar."""
    if not quiet:
        tqdm.write(message, file=sys.stderr)


@contextlib.contextmanager
def phase(name: str, detail: str = "", quiet: bool = False) -> Iterator[dict[str, str]]:
    """Print `name: detail` as the phase starts and `name done in T s: <result>` as it ends;
    the body sets `result["text"]` to say what it produced."""
    say(f"> {name}" + (f": {detail}" if detail else ""), quiet)
    result: dict[str, str] = {"text": ""}
    t0 = time.perf_counter()
    yield result
    took = time.perf_counter() - t0
    say(f"  {name} done in {took:.1f} s" + (f": {result['text']}" if result["text"] else ""),
        quiet)


class ProgressBoard:
    """Ray actor: running totals of documents and text bytes the workers of one pass handled."""

    def __init__(self) -> None:
        self.docs = 0
        self.nbytes = 0

    def add(self, docs: int, nbytes: int) -> None:
        self.docs += docs
        self.nbytes += nbytes

    def read(self) -> tuple[int, int]:
        return self.docs, self.nbytes


def report(board: Any, docs: int, nbytes: int) -> None:
    """Worker side: add a batch to the board (no-op without one); never waits on the driver."""
    if board is not None:
        board.add.remote(docs, nbytes)


class PassBar:
    """Driver side of one pass: a board for its workers and a bar fed from it.

    With `total_docs` known (pass 2: every record of pass 1) the bar counts documents against
    it; otherwise it counts documents with their rate and no ETA.
    """

    def __init__(
        self,
        name: str,
        total_docs: int | None,
        done_docs: int,
        units: tuple[int, int],
        quiet: bool,
    ) -> None:
        self.units_done, self.units = units  # files finished (resumed ones included), all
        # live counts need the board actor; without Ray (local workers) the bar moves as
        # units return, by their document counts
        ray = sys.modules.get("ray")
        live = not quiet and ray is not None and ray.is_initialized()
        self.board = ray.remote(num_cpus=0)(ProgressBoard).remote() if live else None
        self.done_docs = done_docs  # from units finished before a resume
        self.unit_docs = self.unit_bytes = 0  # of the units returned in this call
        self.bar = tqdm(
            total=total_docs,
            initial=done_docs,
            desc=name,
            unit="doc",
            unit_scale=True,
            disable=quiet,
            file=sys.stderr,
            dynamic_ncols=True,
        )
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)

    def __enter__(self) -> PassBar:
        if self.board is not None:
            self._thread.start()
        return self

    def _poll(self) -> None:
        import ray

        while not self._stop.wait(POLL_S):
            with contextlib.suppress(Exception):  # a bar must never fail the job
                self._show(*ray.get(self.board.read.remote(), timeout=5))

    def unit_done(self, docs: int = 0, nbytes: int = 0) -> None:
        self.units_done += 1
        self.unit_docs += docs
        self.unit_bytes += nbytes
        if self.board is None and not self.bar.disable:
            self._show(self.unit_docs, self.unit_bytes)

    def _show(self, docs: int, nbytes: int) -> None:
        self.bar.n = self.done_docs + docs
        self.bar.set_postfix_str(
            f"{nbytes / 1e6:,.1f} MB text, {self.units_done}/{self.units} files", refresh=False
        )
        self.bar.refresh()

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self.board is not None:
            import ray  # only with a board: a run on local workers never loads Ray

            self._thread.join()
            with contextlib.suppress(Exception):
                self._show(*ray.get(self.board.read.remote(), timeout=5))
                ray.kill(self.board)
        self.bar.close()
