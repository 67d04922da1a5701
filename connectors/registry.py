"""Public entry points of the connectors: expand inputs into units of work, read a unit.

`expand_inputs` runs on the driver before any work starts, so every configuration mistake (a
path that matches nothing, an extension no reader knows, bad SQL) is raised there as a
ConfigError naming the path and the fix. `read_unit` runs in workers and never raises for bad
data: each bad record, or the point where a file stops being readable, is a quarantined row,
and its ReadTally says how many rows the unit must have, counted apart from the parser.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import fsspec
import pyarrow as pa
import pyarrow.compute as pc

from connectors.duckdb_sql import query_columns, read_duckdb
from connectors.fs import COMPRESSION_SUFFIXES
from connectors.html import read_html
from connectors.jsonl import read_jsonl
from connectors.parquet import read_parquet
from connectors.split import UnitPart, split_unit
from connectors.tally import ReadTally
from connectors.text import read_text
from connectors.validate import (
    LOST_IN_PARSE,
    UNREADABLE_FOLDER,
    quarantine_one,
    quarantine_records,
    read_failure,
)
from connectors.warc import read_warc
from curator.config import ConfigError, InputSpec, ReadConfig

# A reader yields `DOC_SCHEMA` batches in record order and counts what its framing layer finds
# into the tally (connectors/tally.py), apart from the rows its parser makes.
Reader = Callable[[str, InputSpec, ReadConfig, ReadTally], Iterator[pa.Table]]

UNREADABLE = "unreadable"  # a folder found but not listable while inputs were expanded


def read_unlisted_folder(
    source: str, spec: InputSpec, cfg: ReadConfig, tally: ReadTally | None = None
) -> Iterator[pa.Table]:
    """The one quarantined row of a folder that could not be listed, with the error listing it
    gives now (its files, if any, were not read)."""
    try:
        fsspec.core.url_to_fs(source)[0].ls(source)
        error = "folder could not be listed when the inputs were expanded; its files were not read"
    except OSError as exc:
        error = f"{type(exc).__name__}: {exc}; its files were not read"
    if tally is not None:
        tally.framed += 1  # the folder is one record: what it holds was never seen
    yield quarantine_one(source, 0, UNREADABLE_FOLDER, error)


READERS: dict[str, Reader] = {
    "jsonl": read_jsonl,
    "parquet": read_parquet,
    "text": read_text,
    "warc": read_warc,
    "html": read_html,
    "duckdb": read_duckdb,
    UNREADABLE: read_unlisted_folder,
}

# Base suffixes per format; those in STREAM_FORMATS may also end in a compression suffix.
FORMAT_SUFFIXES: dict[str, tuple[str, ...]] = {
    "jsonl": (".jsonl", ".ndjson", ".json"),
    "parquet": (".parquet", ".pq"),
    "text": (".txt", ".md", ".text"),
    "warc": (".warc",),
    "html": (".html", ".htm"),
}
STREAM_FORMATS = ("jsonl", "text", "warc", "html")
_GLOB_CHARS = "*?["


@dataclass(frozen=True)
class SourceUnit:
    """One unit of work: one input file, a range of a large one (connectors/split.py), or one
    DuckDB query."""

    source: str  # the file path/URI as expanded (this is the manifest's `source`)
    format: str  # jsonl | parquet | text | warc | html | duckdb (resolved, never 'auto')
    spec: InputSpec
    part: UnitPart | None = None  # the range of the file; None = the whole file

    @property
    def first_record(self) -> int:
        return self.part.first_record if self.part is not None else 0


def format_of(path: str) -> str | None:
    """Format named by the file extension (`a.jsonl.zst` -> jsonl), or None if unknown."""
    name = path.rsplit("/", 1)[-1].lower()
    stem, compressed = name, False
    for suffix in COMPRESSION_SUFFIXES:
        if name.endswith(suffix):
            stem, compressed = name[: -len(suffix)], True
            break
    for fmt, suffixes in FORMAT_SUFFIXES.items():
        if stem.endswith(suffixes) and (not compressed or fmt in STREAM_FORMATS):
            return fmt
    return None


def _known_suffixes() -> str:
    return ", ".join(s for suffixes in FORMAT_SUFFIXES.values() for s in suffixes)


def expand_inputs(specs: list[InputSpec], unit_bytes: int = 0) -> list[SourceUnit]:
    """Input specs -> units of work, in a deterministic order (spec order, then sorted paths,
    then ranges in file order). Files over `unit_bytes` (> 0) are cut into ranges where their
    format allows (connectors/split.py).

    A file reached twice (a folder and a glob over it) is read once: the first spec wins.
    """
    units: list[SourceUnit] = []
    seen: set[str] = set()
    for spec in specs:
        for source, fmt in _expand_one(spec):
            if source not in seen:
                seen.add(source)
                units.append(SourceUnit(source=source, format=fmt, spec=spec))
    return split_units(units, unit_bytes)


def split_units(units: list[SourceUnit], unit_bytes: int) -> list[SourceUnit]:
    """Whole-file units (`expand_inputs(specs)`) cut as `expand_inputs(specs, unit_bytes)`
    cuts them: a caller can judge the files before paying for the cutting (one read of each
    large file)."""
    return [part for unit in units for part in split_unit(unit, unit_bytes)]


def _expand_one(spec: InputSpec) -> list[tuple[str, str]]:
    if spec.format == "duckdb":
        return [_expand_duckdb(spec)]
    fs, root = fsspec.core.url_to_fs(spec.path)
    has_protocol = "://" in spec.path

    def name(p: str) -> str:
        # Keep the protocol for remote inputs so workers can reopen them; local paths are
        # absolute so doc_id hashes do not depend on the driver's working directory.
        return fs.unstrip_protocol(p) if has_protocol else os.path.abspath(p)

    if any(c in spec.path for c in _GLOB_CHARS):
        # Hidden parts are judged below the glob's literal prefix, as a shell's `**` would.
        literal = root[: min(root.index(c) for c in _GLOB_CHARS if c in root)]
        files = _walk(fs, sorted(fs.glob(root)), spec.format, literal.rsplit("/", 1)[0])
        if not files:
            raise ConfigError(
                f"input.path {spec.path!r}: the glob matches no readable file "
                f"(suffixes: {_known_suffixes()}); check the pattern or set input.format"
            )
        return [(name(p), fmt) for p, fmt in files]
    if fs.isdir(root):
        files = _walk(fs, [root], spec.format, root)
        if not files:
            raise ConfigError(
                f"input.path {spec.path!r}: the folder holds no readable file "
                f"(suffixes: {_known_suffixes()}); point at the data files or set input.format"
            )
        return [(name(p), fmt) for p, fmt in files]
    if not fs.exists(root):
        raise ConfigError(
            f"input.path {spec.path!r} does not exist; check the path (globs and fsspec URIs "
            "such as s3://bucket/dir/*.jsonl.gz are accepted)"
        )
    fmt = spec.format if spec.format != "auto" else format_of(root)
    if fmt is None:
        raise ConfigError(
            f"input.path {spec.path!r}: no reader for this extension (known: "
            f"{_known_suffixes()}, optionally + .gz/.zst/.bz2/.xz); set input.format"
        )
    return [(name(root), fmt)]


def _walk(
    fs: fsspec.AbstractFileSystem, paths: list[str], fmt: str, base: str
) -> list[tuple[str, str]]:
    """Readable files under `paths` (files or folders, recursive), sorted, with their format.

    Files of an unknown type and hidden/marker files or folders (`.x`, `_SUCCESS`) below `base`
    are skipped: folders of real data hold READMEs, caches and job markers. An explicit format
    still only takes its own suffixes, so format=text on a mixed folder does not swallow its
    .jsonl files.
    """
    out: list[tuple[str, str]] = []
    base = base.rstrip("/")
    unlisted: list[tuple[str, OSError]] = []
    for top in paths:
        for path in _find(fs, top, unlisted) if fs.isdir(top) else [top]:
            rel = path[len(base) :] if path.startswith(base + "/") else path.rsplit("/", 1)[-1]
            if any(part.startswith((".", "_")) for part in rel.split("/") if part):
                continue
            found = format_of(path)
            if found is not None and (fmt == "auto" or found == fmt):
                out.append((path, found))
    # A folder that cannot be listed (no permission, a symlink loop) may hold data: it becomes
    # a unit of its own, quarantined when read, instead of vanishing from the run.
    for folder, error in unlisted:
        if folder.rstrip("/") == base:
            raise ConfigError(
                f"input.path {base!r} cannot be listed ({error.strerror or error}); give this "
                "user read and execute permission on it, or point input.path elsewhere"
            )
        out.append((folder, UNREADABLE))
    return sorted(set(out))


def _find(
    fs: fsspec.AbstractFileSystem, top: str, unlisted: list[tuple[str, OSError]]
) -> list[str]:
    """Files below folder `top`, sorted; folders that cannot be listed go to `unlisted`.

    Not `fs.find`: its walk forgets `on_error` below the first level (fsspec 2025), so an
    unreadable subfolder would vanish silently. A local folder reached twice through symlinks
    (a link to a parent) is listed once, so a cycle neither loops nor reads files twice.
    """
    files: list[str] = []
    pending = [top]
    seen: set[str] = set()
    local = fs.protocol in ("file", "local") or "file" in fs.protocol
    while pending:
        folder = pending.pop()
        if local:
            real = os.path.realpath(folder)
            if real in seen:
                continue
            seen.add(real)
        try:
            listing = fs.ls(folder, detail=True)
        except OSError as exc:
            unlisted.append((folder, exc))
            continue
        for info in listing:
            name = info["name"].rstrip("/")
            if name == folder.rstrip("/"):
                continue  # some stores list a folder's own marker object
            (pending if info["type"] == "directory" else files).append(name)
    return sorted(files)


def _expand_duckdb(spec: InputSpec) -> tuple[str, str]:
    assert spec.query is not None  # InputSpec's validator requires it
    if spec.path != ":memory:" and not os.path.isfile(spec.path):
        raise ConfigError(
            f"input.path {spec.path!r} is not a DuckDB file; give an existing local .duckdb "
            "file or ':memory:'"
        )
    try:
        query_columns(spec.path, spec.query)
    except Exception as exc:  # noqa: BLE001 - any DuckDB error here is a config mistake
        raise ConfigError(
            f"input.query for {spec.path!r} fails in DuckDB: {exc}; fix the SQL"
        ) from None
    return f"duckdb:{spec.path}#{spec.query}", "duckdb"


def read_unit(
    unit: SourceUnit, cfg: ReadConfig, tally: ReadTally | None = None
) -> Iterator[pa.Table]:
    """`DOC_SCHEMA` batches of one unit, in record order. Never raises for bad input.

    Pass a fresh `ReadTally` to learn the unit's independent count; once the iterator is
    exhausted (not before) it holds:

    - `tally.framed`, `tally.skipped`: what the reader's framing layer counted (lines of a
      jsonl, response records of a WARC, 1 per text/html file, the parquet footer's rows, the
      rows a DuckDB query streamed; each damaged or unreadable stretch counts one), and the
      framed records that are not documents by design (non-HTML WARC responses).
    - `tally.expected == framed - skipped`: the rows this unit must have; conservation
      (manifest rows of the source == expected) is checked against it, not against the parser.
    - `tally.rows`: rows yielded. It is never below `expected`: if the parser returned fewer,
      the missing ones are added at the end as quarantined `lost_in_parse` rows (`tally.lost`),
      with record ordinals after every ordinal already yielded. `tally.surplus > 0` means a
      reader yielded more rows than it framed (a bug the conservation check should report).

    A failure a reader did not anticipate still ends as one unreadable_file row after the last
    record read (framed as one record), so the conservation law holds and the error text says
    what happened.
    """
    tally = tally if tally is not None else ReadTally()
    # past every record ordinal yielded so far; a range's own rows start past the whole file's
    next_record = unit.part.spare_record if unit.part is not None else 0
    ranged = {"part": unit.part} if unit.part is not None else {}
    try:
        for table in READERS[unit.format](unit.source, unit.spec, cfg, tally, **ranged):
            if table.num_rows:
                tally.rows += table.num_rows
                last = pc.max(table.column("record")).as_py()
                next_record = max(next_record, int(last) + 1)
                yield table
    except Exception as exc:  # noqa: BLE001
        tally.framed += 1  # the stretch the reader could not frame is one record
        tally.rows += 1
        yield read_failure(exc, unit.source, next_record)
        next_record += 1
    missing = tally.expected - tally.rows
    if missing > 0:
        yield from _lost_in_parse(unit.source, next_record, missing, tally, cfg.batch_size)


def _lost_in_parse(
    source: str, first: int, n: int, tally: ReadTally, batch_size: int
) -> Iterator[pa.Table]:
    """Quarantined rows for records the framing layer counted but the parser never returned."""
    error = (
        f"the reader framed {tally.expected} records but its parser returned "
        f"{tally.rows}; {n} lost in parsing (a reader bug: please report it with the file). "
        "The record ordinal is a placeholder after the last one read"
    )
    for start in range(first, first + n, batch_size):
        stop = min(start + batch_size, first + n)
        table = quarantine_records(
            source, pa.array(range(start, stop), pa.int64()), LOST_IN_PARSE, error
        )
        tally.rows += table.num_rows
        tally.lost += table.num_rows
        yield table
