"""`ray job submit` of a jobs.* entrypoint against the session's local cluster (tests only)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
AGENT_WAIT_TRIES = 40  # x 3 s


def submit_job(
    dashboard_url: str,
    module: str,
    config: Path,
    *job_args: str,
    working_dir: Path | None = None,
) -> subprocess.CompletedProcess:
    """Run `ray job submit [--working-dir D] -- python -m <module> --config <config> ARGS`,
    waiting for the end.

    The job server answers "No available agent" until the node's dashboard agent has
    registered, which on a loaded machine can take a while after `ray start`; that answer
    comes before any job exists, so the submission is simply repeated.
    """
    for _ in range(AGENT_WAIT_TRIES):
        proc = _submit(dashboard_url, module, config, job_args, working_dir)
        if proc.returncode == 0 or "No available agent" not in proc.stdout + proc.stderr:
            return proc
        time.sleep(3)
    return proc


def _submit(
    dashboard_url: str,
    module: str,
    config: Path,
    job_args: tuple[str, ...],
    working_dir: Path | None,
) -> subprocess.CompletedProcess:
    ray_bin = str(Path(sys.executable).parent / "ray")
    upload = ["--working-dir", str(working_dir)] if working_dir else []
    return subprocess.run(
        [
            ray_bin,
            "job",
            "submit",
            "--address",
            dashboard_url,
            *upload,
            "--",
            sys.executable,
            "-m",
            module,
            "--config",
            str(config),
            *job_args,
        ],
        cwd=REPO,
        env={**os.environ, "RAY_AUTH_MODE": "disabled"},
        capture_output=True,
        text=True,
        timeout=600,
    )
