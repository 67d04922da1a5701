"""Which allocator pyarrow uses in the processes curator starts: one that gives freed memory back.

pyarrow's default pool on Linux is mimalloc, which keeps what a process freed. Reading a run's
pass-1 parquet text a batch at a time (the tokenizer's sample in the driver, every unit in the
workers) left each process 100-220 MB above what it held, and the driver carried that through
pass 2. Measured on the speed issue's corpora (`curator curate`, 2 local workers, paired runs
of the same code; stop 31's note): peak PSS summed over the process tree at 400 MB of input
843-877 MB with mimalloc, 601-618 with jemalloc, 688-693 with the system allocator; at 40 MB
644-666, 550-572 and 571-582; CPU-s equal or lower. jemalloc returns freed pages after a short
decay, so the peak no longer grows with the number of batches a process has read.

pyarrow reads ARROW_DEFAULT_MEMORY_POOL once, when it is first imported, so the choice is made
in the environment before that: `curator.cli.run` (the console script) calls
`prefer_returning_allocator()` first thing, and every process curator starts inherits it (the
local workers' fork server, the embedded Ray cluster's raylet and its workers). A value the
user set wins. On a Ray cluster of your own, set the variable in the cluster's environment.
"""

from __future__ import annotations

import os
import sys

POOL_ENV = "ARROW_DEFAULT_MEMORY_POOL"
# pyarrow's Linux wheels are built with jemalloc; elsewhere (macOS, Windows) the build may not
# have it, and an unknown name only makes Arrow warn and keep its default.
RETURNING_POOL = "jemalloc"


def prefer_returning_allocator() -> str | None:
    """Set ARROW_DEFAULT_MEMORY_POOL=jemalloc for this process and its children, unless the user
    chose a pool, pyarrow is loaded already (too late to change), or this is not Linux.
    Returns the pool asked for, or None when nothing was set."""
    if POOL_ENV in os.environ or "pyarrow" in sys.modules or not sys.platform.startswith("linux"):
        return None
    os.environ[POOL_ENV] = RETURNING_POOL
    return RETURNING_POOL
