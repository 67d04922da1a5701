"""`ray job submit` of a jobs.* entrypoint against the session's local cluster (tests only)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
AGENT_WAIT_TRIES = 40  # x 3 s


def submit_job(dashboard_url: str, module: str, config: Path) -> subprocess.CompletedProcess:
    """Run `ray job submit -- python -m <module> --config <config>`, waiting for the end.

    The job server answers "No available agent" until the node's dashboard agent has
    registered, which on a loaded machine can take a while after `ray start`; that answer
    comes before any job exists, so the submission is simply repeated.
    """
    for _ in range(AGENT_WAIT_TRIES):
        proc = _submit(dashboard_url, module, config)
        if proc.returncode == 0 or "No available agent" not in proc.stdout + proc.stderr:
            return proc
        time.sleep(3)
    return proc


def _submit(dashboard_url: str, module: str, config: Path) -> subprocess.CompletedProcess:
    ray_bin = str(Path(sys.executable).parent / "ray")
    return subprocess.run(
        [
            ray_bin,
            "job",
            "submit",
            "--address",
            dashboard_url,
            "--",
            sys.executable,
            "-m",
            module,
            "--config",
            str(config),
        ],
        cwd=REPO,
        env={**os.environ, "RAY_AUTH_MODE": "disabled"},
        capture_output=True,
        text=True,
        timeout=600,
    )
