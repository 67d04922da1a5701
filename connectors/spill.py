"""A single-stream compressed jsonl (a one-member .jsonl.gz, .jsonl.zst, .bz2, .xz) over
`read.unit_bytes` becomes several units: the driver decodes it once, streaming, into plain
line-aligned chunks of about `unit_bytes` under the run directory, and each chunk is an ordinary
range (connectors/split.py UnitPart with `spill` set) read by the pool like any other unit.

The chunks hold the decoded lines exactly as the whole-file reader's line framer reads them
(the same `readline(read.max_doc_bytes + 1)` calls on the same decoder, so a truncated stream
breaks off after the very same line), blank lines included, so each chunk's first line number
(`first_record`) gives every document the doc_id, `source` (the compressed file) and record it
gets when the file is read whole. Where decoding broke off (a truncated or corrupt stream), the
error is recorded in the index and the last chunk ends with it: the same `truncated_file` /
`unreadable_file` row at the same line. Cut points depend only on the decoded bytes and
`unit_bytes`, so a second plan cuts the same way.

Layout: `SPILL/<key>/part-00000.jsonl ...` (each written to a temp name and renamed), then
`SPILL/<key>/index.json`, written last: a spill is reused only when its index exists and every
chunk it lists is there at its size; anything else is decoded again (same cuts). The key hashes
the file's path, size and modification time with the settings that shape the cuts. Once pass 1
has read every unit, `release_spills` deletes the chunks and keeps the indexes (marked
released), which still give a resume the same units.

Read whole instead (recorded in the index, so a resume decides the same): a file that decodes
to one chunk; a line over `read.max_doc_bytes` (the whole-file reader reads it through without
holding it; a spill would have to write it: a decompression bomb is often one such line); a file
whose decoded bytes would take the run's spills over `read.spill_max_bytes` (a bomb of many
short lines); a file that cannot be opened or breaks before its first line; a chunk that cannot
be written (a full disk). What is read whole costs time, never the disk.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from dataclasses import replace
from pathlib import Path
from typing import IO, TYPE_CHECKING

import xxhash

from connectors.fs import compression_of, is_local, open_input, temp_name, write_text_atomic
from connectors.split import UnitPart
from connectors.validate import RecordedError

if TYPE_CHECKING:
    from connectors.registry import SourceUnit
    from curator.config import ReadConfig

_LAYOUT = 1  # bump when the chunk format changes: older spills are then decoded again
INDEX = "index.json"


def spillable(unit: SourceUnit, cfg: ReadConfig) -> bool:
    """A whole local compressed jsonl over `unit_bytes` that connectors/split.py did not cut."""
    if (cfg.unit_bytes <= 0 or cfg.spill_max_bytes <= 0 or unit.part is not None
            or unit.format != "jsonl" or not is_local(unit.source)):
        return False
    path = unit.source.removeprefix("file://")
    try:
        return compression_of(path) is not None and os.path.getsize(path) > cfg.unit_bytes
    except OSError:
        return False  # unreadable now: read whole, quarantined there


def spill_units(units: list[SourceUnit], root: Path, cfg: ReadConfig) -> list[SourceUnit]:
    """`units` with each spillable one replaced by the ranges of its spill under `root` (made
    now, or reused); the others as they are. Runs on the driver, before any unit is read."""
    out: list[SourceUnit] = []
    budget = cfg.spill_max_bytes  # for all the run's spills together
    for unit in units:
        if not spillable(unit, cfg):
            out.append(unit)
            continue
        index = _load_or_spill(unit, root, cfg, budget)
        budget -= index["bytes"]
        out += units_of(unit, index, root / index["key"])
    return out


def units_of(unit: SourceUnit, index: dict, folder: Path) -> list[SourceUnit]:
    """The ranges a spill index describes ([unit] when the file is read whole)."""
    parts = index["parts"]
    if index["whole"] is not None:
        return [unit]
    last = len(parts) - 1
    return [
        replace(unit, part=UnitPart(
            k, 0, p["bytes"], p["first_line"], index["lines"] + p["first_line"] + k,
            spill=str(folder / p["file"]), stop=index["stop"] if k == last else None))
        for k, p in enumerate(parts)
    ]


def release_spills(root: Path) -> int:
    """Delete every spill's chunks once pass 1 has read them all; the indexes stay (marked
    released) and still give a resume its units. Returns how many chunks were deleted."""
    n = 0
    for index_path in sorted(root.glob(f"*/{INDEX}")):
        index = json.loads(index_path.read_text())
        if index["whole"] is None and not index["released"]:
            # marked first: a kill between the two leaves chunks a later release deletes
            write_text_atomic(json.dumps({**index, "released": True}, indent=1), index_path)
        for chunk in index_path.parent.glob("part-*.jsonl"):
            chunk.unlink()
            n += 1
    return n


def _key(path: str, cfg: ReadConfig) -> str:
    st = os.stat(path)
    shape = (path, st.st_size, st.st_mtime_ns, cfg.unit_bytes, cfg.max_doc_bytes, _LAYOUT)
    return xxhash.xxh3_64_hexdigest("\0".join(map(str, shape)))


def _load_or_spill(unit: SourceUnit, root: Path, cfg: ReadConfig, budget: int) -> dict:
    path = unit.source.removeprefix("file://")
    key = _key(path, cfg)
    folder = root / key
    index_path = folder / INDEX
    if index_path.exists():
        index = json.loads(index_path.read_text())
        if index["whole"] is not None or index["released"] or all(
            _size(folder / p["file"]) == p["bytes"] for p in index["parts"]
        ):
            return index
    shutil.rmtree(folder, ignore_errors=True)  # half written, or a chunk lost: decode again
    folder.mkdir(parents=True)
    index = _spill(path, folder, cfg, budget)
    if index["whole"] is not None:
        for chunk in folder.glob("part-*.jsonl"):
            chunk.unlink()
    index = {"layout": _LAYOUT, "key": key, "source": unit.source, "unit_bytes": cfg.unit_bytes,
             "max_doc_bytes": cfg.max_doc_bytes, "released": False, **index}
    write_text_atomic(json.dumps(index, indent=1), index_path)
    return index


def _size(path: Path) -> int | None:
    try:
        return path.stat().st_size
    except OSError:
        return None


def _whole(why: str) -> dict:
    return {"whole": why, "parts": [], "lines": 0, "bytes": 0, "stop": None}


def _spill(path: str, folder: Path, cfg: ReadConfig, budget: int) -> dict:
    """Decode `path` into chunk files in `folder`; the index's content (without its header)."""
    limit = cfg.max_doc_bytes
    parts: list[dict] = []
    chunk: _Chunk | None = None
    line_no = total = 0
    stop: dict | None = None
    try:
        with contextlib.ExitStack() as stack:
            try:
                f = stack.enter_context(open_input(path))
            except Exception as exc:  # noqa: BLE001 - the whole-file read quarantines it
                return _whole(f"cannot be opened ({type(exc).__name__}: {exc})")
            while True:
                try:
                    # the line framer's very call (connectors/lines.py): the same lines, and a
                    # broken stream breaks off after the same one
                    line = f.readline(limit + 1)
                except Exception as exc:  # noqa: BLE001 - recorded: the last chunk raises it
                    stop = RecordedError.of(exc).to_json()
                    break
                if not line:
                    break
                if len(line) - line.endswith(b"\n") > limit:
                    return _whole(f"line {line_no} is over read.max_doc_bytes={limit}")
                total += len(line)
                if total > budget:
                    return _whole(f"decodes past read.spill_max_bytes (left: {budget} bytes)")
                if chunk is None:
                    chunk = stack.enter_context(_Chunk(folder / f"part-{len(parts):05d}.jsonl"))
                    parts.append({"file": chunk.path.name, "first_line": line_no, "bytes": 0})
                chunk.write(line)
                line_no += 1
                if chunk.bytes >= cfg.unit_bytes:  # a full chunk ends after a whole line
                    parts[-1]["bytes"] = chunk.close()
                    chunk = None
            if chunk is not None:
                parts[-1]["bytes"] = chunk.close()
    except OSError as exc:  # writing a chunk failed (a full disk): read the file whole
        return _whole(f"spill could not be written ({exc})")
    if len(parts) < 2:
        return _whole("decodes to one unit")
    lines = line_no + (stop is not None)  # the break row has an ordinal of its own
    return {"whole": None, "parts": parts, "lines": lines, "bytes": total, "stop": stop}


class _Chunk:
    """One chunk file, written to a temp name and renamed into place by close()."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.tmp = Path(temp_name(str(path)))
        self.bytes = 0
        self._f: IO[bytes] | None = None

    def __enter__(self) -> _Chunk:
        self._f = open(self.tmp, "wb")  # noqa: SIM115 - closed by close() or __exit__
        return self

    def write(self, data: bytes) -> None:
        assert self._f is not None
        self._f.write(data)
        self.bytes += len(data)

    def close(self) -> int:
        assert self._f is not None
        self._f.flush()
        os.fsync(self._f.fileno())
        self._f.close()
        self._f = None
        os.replace(self.tmp, self.path)
        return self.bytes

    def __exit__(self, *exc: object) -> None:
        if self._f is not None:  # not closed: abandoned
            self._f.close()
            self._f = None
            with contextlib.suppress(FileNotFoundError):
                self.tmp.unlink()
