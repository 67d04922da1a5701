"""Submit a jobs.* entrypoint to an existing cluster with Ray's JobSubmissionClient.

`python -m jobs.submit --address http://HEAD:8265 curate --config F` is the scripted form of
`ray job submit --address ... --working-dir . -- python -m jobs.curate --config F`.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time


def submit(
    address: str,
    job: str,
    job_args: list[str],
    working_dir: str = ".",
    wait: bool = True,
    timeout_s: float = 3600,
) -> tuple[str, str]:
    """Submit `python -m jobs.<job> <args>`; return (job_id, final status)."""
    from ray.job_submission import JobStatus, JobSubmissionClient

    client = JobSubmissionClient(address)
    job_args = absolute_output(job_args)
    entrypoint = " ".join(["python", "-m", f"jobs.{job}", *map(shlex.quote, job_args)])
    job_id = client.submit_job(entrypoint=entrypoint, runtime_env={"working_dir": working_dir})
    if not wait:
        return job_id, "PENDING"
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        status = client.get_job_status(job_id)
        if status in {JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.STOPPED}:
            return job_id, str(status.value)
        time.sleep(1)
    return job_id, "TIMEOUT"


def absolute_output(job_args: list[str]) -> list[str]:
    """`--set output=X` with X resolved here, against the submitter's cwd: the job runs in Ray's
    copy of the working dir, which would hold (and lose) a relative output; the job refuses one
    (curator.output_place). An output given only in the config file is left to that refusal."""
    from curator.output_place import local_path

    out = list(job_args)
    for i, arg in enumerate(out[:-1]):
        if arg == "--set" and out[i + 1].startswith("output="):
            out[i + 1] = "output=" + local_path(out[i + 1].removeprefix("output="))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m jobs.submit")
    parser.add_argument(
        "--address", required=True, help="dashboard address, e.g. http://127.0.0.1:8265"
    )
    parser.add_argument("job", choices=["curate", "train", "export", "agent", "loop"])
    parser.add_argument("args", nargs=argparse.REMAINDER)
    ns = parser.parse_args(argv)
    job_id, status = submit(ns.address, ns.job, ns.args)
    print(job_id, status)
    return 0 if status == "SUCCEEDED" else 1


if __name__ == "__main__":
    sys.exit(main())
