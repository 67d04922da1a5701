"""The console script picks pyarrow's jemalloc pool (curator.arrow_allocator) before pyarrow
loads, a pool the user names wins, and a process that loaded pyarrow already is left alone.
Fresh interpreters: pyarrow reads ARROW_DEFAULT_MEMORY_POOL once, at import."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"),
                                reason="curator asks for jemalloc on Linux only")

BACKEND = "import pyarrow as pa; print(pa.default_memory_pool().backend_name)"


def _run(code: str, **env: str) -> str:
    clean = {k: v for k, v in os.environ.items() if k != "ARROW_DEFAULT_MEMORY_POOL"}
    out = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                         text=True, check=True, env={**clean, **env})
    return out.stdout.strip()


def test_pyarrow_default_without_curator_is_mimalloc() -> None:
    """What is being changed: a plain pyarrow process keeps mimalloc (if this pyarrow's
    default ever changes, the module's measurements are stale)."""
    assert _run(BACKEND) == "mimalloc"


def test_console_script_runs_with_jemalloc() -> None:
    """`curator` (curator.cli.run) sets the pool before any command imports pyarrow, so this
    process and every process it starts use jemalloc."""
    assert _run(f"""
        import sys
        from curator.cli import run
        sys.argv = ["curator", "--help"]
        try:
            run()
        except SystemExit:
            pass
        print("pyarrow" in sys.modules, end=" ")
        {BACKEND}
    """).splitlines()[-1] == "False jemalloc"


def test_the_users_pool_wins() -> None:
    assert _run(f"""
        from curator.arrow_allocator import prefer_returning_allocator
        print(prefer_returning_allocator(), end=" ")
        {BACKEND}
    """, ARROW_DEFAULT_MEMORY_POOL="system") == "None system"


def test_too_late_once_pyarrow_is_loaded() -> None:
    """Setting the variable after pyarrow loaded would change nothing in this process but
    would change its children: it is left unset, so the whole tree keeps one pool."""
    assert _run(f"""
        import os, pyarrow
        from curator.arrow_allocator import prefer_returning_allocator
        print(prefer_returning_allocator(), "ARROW_DEFAULT_MEMORY_POOL" in os.environ, end=" ")
        {BACKEND}
    """) == "None False mimalloc"
