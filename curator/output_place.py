"""Where an output folder really is, checked before anything is written there (issue 20.4).

Curator's outputs are local paths (RunDir, exports, score files). Three ways they went to the
wrong place while the job reported success: a relative path under `ray job submit`, which
resolves against the job's cwd, a directory of Ray's (the runtime env's copy of the working
dir, deleted with it), not where the user typed it; a `file://` URI, which `Path` reads as a
relative folder named `file:`; and, on a cluster of several nodes, a folder that only the
driver's machine has, where workers on other nodes write parts the driver never sees.
`check_output_place` resolves what it can and refuses the rest, naming `output` and the fix.
"""

from __future__ import annotations

import os
import urllib.parse
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

from curator.config import ConfigError

if TYPE_CHECKING:
    from curator.config import RayConfig

# Set by Ray's job manager for the entrypoint of `ray job submit` (and only there).
RAY_JOB_ENV = "RAY_JOB_CONFIG_JSON_ENV_VAR"
# Where runtime envs unpack a job's working_dir: <session>/runtime_resources/working_dir_files/.
RUNTIME_RESOURCES = "runtime_resources"
PROBE_TIMEOUT_S = 120.0  # a node's first task starts a worker process: slow on a loaded machine
FIX = "give output a folder on a filesystem every node sees (a shared mount: /mnt/shared/runs/r1)"


def check_output_place(output: str, ray_cfg: RayConfig | None = None) -> str:
    """`output` as an absolute local path, or ConfigError if the run would land elsewhere.

    `ray_cfg`: pass it when Ray tasks write into the output (curate, loop, dedup): when that
    config joins a running cluster (an address, RAY_ADDRESS, or Ray already connected), a task
    on every alive node must see a file the driver writes there. An embedded cluster is this
    machine alone, so it needs no check.
    """
    path = local_path(output)
    if joins_cluster(ray_cfg):
        from curator.ray_runtime import ensure_ray

        ensure_ray(ray_cfg)  # what the command does next anyway
        blind = nodes_not_seeing(Path(path))
        if blind:
            raise ConfigError(
                f"output: {path} is not visible from every node of the Ray cluster: "
                f"{'; '.join(blind)}. Tasks there would write parts of the run that this "
                f"driver never sees. Fix: {FIX}."
            )
    return path


def local_path(output: str) -> str:
    """The absolute local path `output` names, resolved on the driver: `file://` URIs to their
    path, `~` expanded, relative paths against the cwd, except inside a Ray job, whose cwd is
    Ray's and not the submitter's: refused there."""
    url = urllib.parse.urlsplit(output)
    if url.scheme == "file":
        if url.netloc not in ("", "localhost"):
            raise ConfigError(f"output: {output} names another host ({url.netloc}); {FIX}")
        output = urllib.parse.unquote(url.path)
    elif "://" in output:
        raise ConfigError(
            f"output: {output}: curator writes outputs to a local or mounted folder, not to "
            f"{url.scheme}:// URIs (it would write a local folder named '{url.scheme}:'); "
            f"mount the store and {FIX}"
        )
    path = os.path.expanduser(output)
    if os.path.isabs(path):
        return os.path.normpath(path)
    cwd = ray_job_cwd()
    if cwd is not None:
        raise ConfigError(
            f"output: '{output}' is relative, and this process runs as a Ray job in a directory "
            f"of Ray's ({cwd}), not the one `ray job submit` ran in: the run would be written "
            "there, into the job's disposable working directory. Fix: an absolute path (e.g. "
            f"--set output=$PWD/{output}); on a cluster of several nodes, {FIX}."
        )
    return os.path.abspath(path)


def ray_job_cwd() -> str | None:
    """The cwd if it is Ray's: this process is a `ray job submit` entrypoint, or runs in a
    runtime env's working directory; None otherwise."""
    cwd = os.getcwd()
    if RAY_JOB_ENV in os.environ or RUNTIME_RESOURCES in Path(cwd).parts:
        return cwd
    return None


def joins_cluster(ray_cfg: RayConfig | None) -> bool:
    """Whether the command will run its tasks on a cluster it joins (not an embedded one)."""
    if ray_cfg is None or ray_cfg.executor == "local":
        return False
    from curator.ray_runtime import names_a_cluster

    return names_a_cluster(ray_cfg)


def nodes_not_seeing(folder: Path) -> list[str]:
    """The alive nodes of the connected cluster where a task cannot read a file this driver
    writes into `folder` (or its nearest existing parent, which the run will be made under),
    each with the reason; [] when all see it. The file holds a fresh token, so a stale copy
    elsewhere does not pass for it, and it is removed afterwards."""
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    where = next(p for p in (folder, *folder.parents) if p.is_dir())
    token = uuid.uuid4().hex
    probe = where / f".curator-probe-{token}"
    try:
        probe.write_text(token)
    except OSError as err:
        raise ConfigError(f"output: cannot write into {where}: {err}") from err
    try:
        nodes = [n for n in ray.nodes() if n["Alive"]]
        reads = ray.remote(num_cpus=0, max_retries=0)(_reads_token)
        refs = [
            reads.options(
                scheduling_strategy=NodeAffinitySchedulingStrategy(n["NodeID"], soft=False)
            ).remote(str(probe), token)
            for n in nodes
        ]
        ready, _ = ray.wait(refs, num_returns=len(refs), timeout=PROBE_TIMEOUT_S)
        blind = []
        for node, ref in zip(nodes, refs, strict=True):
            name = f"node {node['NodeManagerAddress']} ({node['NodeID'][:12]})"
            if ref not in ready:
                blind.append(f"{name} did not answer within {PROBE_TIMEOUT_S:.0f} s")
                continue
            try:
                seen = ray.get(ref)
            except ray.exceptions.RayError as err:
                seen = f"the check failed: {type(err).__name__}"
            if seen is not True:
                blind.append(f"{name}: {seen or f'{probe} is not there'}")
        return blind
    finally:
        probe.unlink(missing_ok=True)


def _reads_token(path: str, token: str) -> bool | str:
    """Run on one node: True if the probe file is there with the token, else why not."""
    try:
        return Path(path).read_text() == token or f"{path} holds another file"
    except FileNotFoundError:
        return False
    except OSError as err:
        return f"cannot read {path}: {err}"
