"""What the inputs were when a RUN started, so a resume over changed inputs is refused.

Resume matches units by position (unit i wrote RUN/_work/pass1/source=i): a file added,
removed or rewritten in the input folder would shift or change units, so a resumed run would
read one file twice or mix two versions of it, and fail conservation on every later re-run.
Each unit is recorded by path, size and modification time (the object's ETag where a remote
store gives no time); the check runs on the driver before any work.
"""

from __future__ import annotations

import json
from pathlib import Path

import fsspec

from connectors.fs import write_text_atomic
from connectors.registry import SourceUnit
from curator.config import ConfigError

_MAX_LISTED = 5


def fingerprint(units: list[SourceUnit]) -> list[dict]:
    out = []
    for unit in units:
        entry: dict = {"source": unit.source, "format": unit.format}
        if unit.part is not None:  # a range of a file: where it was cut is part of the run
            entry["part"] = [unit.part.start, unit.part.end]
        if unit.format not in ("duckdb", "unreadable"):
            fs, path = fsspec.core.url_to_fs(unit.source)
            info = fs.info(path)
            entry["size"] = info.get("size")
            entry["mtime"] = _mtime(info)
        out.append(entry)
    return out


def _mtime(info: dict) -> str | None:
    for key in ("mtime", "LastModified", "last_modified", "updated", "ETag", "etag"):
        if info.get(key) is not None:
            return str(info[key])
    return None


def check_or_record_inputs(units: list[SourceUnit], path: Path) -> None:
    """Record the inputs on a first start; on a resume, refuse inputs that changed."""
    now = fingerprint(units)
    if not path.exists():
        if any(path.parent.glob("*/*.json")):
            # Work is marked done but the inputs were never recorded: a RUN begun by a curator
            # before this check (and before doc_id was namespaced by source), whose files a
            # resume would mix with this version's.
            raise ConfigError(
                f"{path.parent.parent} was started by an older curator (it has finished units "
                "but no record of its inputs): resuming would mix two formats of doc_id; give "
                "--output a new folder"
            )
        write_text_atomic(json.dumps(now, indent=1), path)
        return
    before = json.loads(path.read_text())
    if before == now:
        return
    old = {e["source"]: _whole_file(e) for e in before}
    new = {e["source"]: _whole_file(e) for e in now}
    added = [s for s in new if s not in old]
    removed = [s for s in old if s not in new]
    changed = [s for s in new if s in old and new[s] != old[s]]
    recut = sorted({e["source"] for e in now if e not in before}
                   | {e["source"] for e in before if e not in now})
    if not (added or removed or changed) and list(old) == list(new) and recut:
        raise ConfigError(
            f"{_listed(recut)} are cut into units differently than when this RUN started (the "
            "curator that started it cut large files another way): a resume would read some of "
            "their records twice or not at all; finish the run with that curator, or give "
            "--output a new folder"
        )
    parts = [
        f"{what} {_listed(paths)}"
        for what, paths in (("added", added), ("removed", removed), ("changed", changed))
        if paths
    ] or ["reordered"]
    raise ConfigError(
        f"inputs changed since this RUN started ({'; '.join(parts)}): a resume would mix "
        "two versions of the data; restore the inputs, or give --output a new folder"
    )


def _whole_file(entry: dict) -> dict:
    """An entry without its range: what the file itself was."""
    return {k: v for k, v in entry.items() if k != "part"}


def _listed(paths: list[str]) -> str:
    shown = ", ".join(paths[:_MAX_LISTED])
    more = len(paths) - _MAX_LISTED
    return f"{shown} (+{more} more)" if more > 0 else shown
