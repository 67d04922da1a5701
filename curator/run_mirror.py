"""A run directory whose home is an object store (`--output s3://bucket/runs/r1`): the job is
built in a local staging folder and every committed file is copied up to the store.

Atomicity is "write, then copy": each file is first written atomically in the staging folder
(temp name + rename, connectors/fs.py), then copied to its final key. An object store makes
each object visible whole or not at all (a PUT, or a multipart upload on completion), so no
reader ever sees half a file under a final name. The order of copies keeps the store
consistent: in every push, the completion markers (`_done/`) are listed *before* the other
files and copied *after* them, so a marker in the store always has the files it vouches for
(a unit writes its files before its marker). A job killed mid-push leaves, at worst, files
without their marker, which the resumed unit writes again.

Resume from any machine: `pull` copies the store's run (every committed object) into the
staging folder, and the executor's markers then skip what is done, exactly as for a local run.

What this does not give: the store has no lock, so two jobs on one store output from two
machines are not refused (the local staging folder's lock only refuses two on one machine);
and on a cluster of several nodes the staging folder must be one every node sees (`staging`),
because workers write their parts there.
"""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

from connectors.fs import TEMP_MARK, filesystem, is_local

MARKERS = "_done"
LOCAL_ONLY = ("_lock",)  # the staging folder's own lock file: meaningless in the store


def is_store_uri(output: str) -> bool:
    return not is_local(output)


def staging_folder(output: str, staging: str | None) -> Path:
    """The local folder a store `output` is built in: `staging` when given, else one under the
    user's cache named after the output, stable across resumes on this machine."""
    if staging:
        return Path(staging).expanduser()
    key = hashlib.sha256(output.rstrip("/").encode()).hexdigest()[:16]
    base = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return base / "curator" / "staging" / key


class RunMirror:
    """Copies between a store URI and a local staging folder; `push` is incremental (a file is
    copied again only when its size or modification time changed since the last push)."""

    def __init__(self, remote: str, staging: Path, min_interval_s: float = 10.0) -> None:
        self.fs, self.remote = filesystem(remote.rstrip("/"))
        self.uri = remote.rstrip("/")
        self.staging = Path(staging)
        self.min_interval_s = min_interval_s
        self._pushed: dict[str, tuple[int, int]] = {}
        self._last_push = 0.0

    def check_writable(self) -> None:
        """Write and remove a probe object: a missing bucket or refused credentials fail here,
        before any work, instead of after pass 1."""
        probe = f"{self.remote}/.curator-probe-{os.getpid()}"
        self.fs.pipe(probe, b"ok")
        self.fs.rm(probe)

    def pull(self) -> int:
        """Copy every committed object of the store's run into staging; returns how many."""
        self.staging.mkdir(parents=True, exist_ok=True)
        if not self.fs.exists(self.remote):
            return 0
        n = 0
        for key, info in self.fs.find(self.remote, detail=True).items():
            rel = key[len(self.remote):].lstrip("/")
            if not rel or TEMP_MARK in rel or rel in LOCAL_ONLY:
                continue
            local = self.staging / rel
            if local.is_file() and local.stat().st_size == info.get("size"):
                continue  # this machine's staging copy of an earlier try
            local.parent.mkdir(parents=True, exist_ok=True)
            tmp = local.with_name(f".{local.name}{TEMP_MARK}pull")
            self.fs.get_file(key, str(tmp))
            os.replace(tmp, local)
            n += 1
        self._pushed = {str(p.relative_to(self.staging)): _stamp(p) for p in self._files()}
        return n

    def push(self, force: bool = True) -> int:
        """Copy new or changed staging files to the store, markers last; returns how many.
        `force=False` skips the push when the last one was under `min_interval_s` ago (called
        after each unit, it bounds the store's requests, not what a resume redoes)."""
        now = time.monotonic()
        if not force and now - self._last_push < self.min_interval_s:
            return 0
        self._last_push = now
        markers = self._files(MARKERS)  # listed first: their files exist already (see above)
        rest = [p for p in self._files() if p.parts[len(self.staging.parts)] != MARKERS]
        n = 0
        for path in rest + markers:
            rel = str(path.relative_to(self.staging))
            stamp = _stamp(path)
            if self._pushed.get(rel) == stamp:
                continue
            self.fs.put_file(str(path), f"{self.remote}/{rel}")
            self._pushed[rel] = stamp
            n += 1
        return n

    def _files(self, under: str = "") -> list[Path]:
        root = self.staging / under if under else self.staging
        if not root.is_dir():
            return []
        return sorted(
            p for p in root.rglob("*")
            if p.is_file() and TEMP_MARK not in p.name and p.name not in LOCAL_ONLY
            and not _spill_chunk(p.relative_to(self.staging))
        )


def _spill_chunk(rel: Path) -> bool:
    """A decoded chunk of a compressed input (connectors/spill.py): a copy of input data, not
    worth a store's space; a resume elsewhere decodes it again (its index, copied, keeps the
    same cuts)."""
    return rel.parts[:2] == ("_work", "spill") and rel.name.startswith("part-")


def _stamp(path: Path) -> tuple[int, int]:
    st = path.stat()
    return st.st_size, st.st_mtime_ns


def open_store_output(output: str, staging: str | None) -> RunMirror:
    """The mirror for a store `output`, its bucket checked writable before any work (a missing
    bucket or refused credentials is a ConfigError naming `output`)."""
    from curator.config import ConfigError

    mirror = RunMirror(output, staging_folder(output, staging))
    try:
        mirror.check_writable()
    except Exception as exc:  # fsspec backends raise their own types (FileNotFoundError, ...)
        raise ConfigError(
            f"output: cannot write to {output} ({type(exc).__name__}: {exc}); check that the "
            "bucket exists and that the credentials (AWS_* variables, ~/.aws, or the store's "
            "own) allow writing there"
        ) from None
    return mirror
