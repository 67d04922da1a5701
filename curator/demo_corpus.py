"""Build a real-text corpus on any machine, offline: installed packages' long descriptions and
license files, plus the Python reference's `pydoc_data.topics`.

License files are natural near-duplicates (many packages ship the same MIT/BSD/Apache text with
another name in it), so the corpus exercises dedup as well as the quality rules.
"""

from __future__ import annotations

import gzip
import importlib.metadata as md
import json
import re
from collections.abc import Iterator
from pathlib import Path

from connectors.fs import atomic_open

LICENSE_FILE = re.compile(r"(^|/)(LICEN[CS]E|COPYING|NOTICE|AUTHORS)[^/]*$", re.IGNORECASE)


# The packages whose texts make the corpus, with their run-time requirements followed: curator's
# core dependencies as of the corpus's design, frozen here. Not curator's own requirement list:
# adding a dependency (tokenizers, s3fs) must not change the corpus, nor every test margin
# measured on it (seen: megatron-core, then a README edit, each moved two learning margins).
DEMO_ROOTS = (
    "ray[data,default,train]", "torch", "polars", "pyarrow", "duckdb", "sentencepiece",
    "gymnasium", "pydantic", "pyyaml", "typer", "rich", "tqdm", "xxhash", "zstandard", "fsspec",
    "warcio", "trafilatura", "resiliparse", "lxml_html_clean", "py3langid", "safetensors",
    "matplotlib", "numpy", "psutil",
)


def _distributions() -> list[md.Distribution]:
    """DEMO_ROOTS and the packages they need at run time (transitively, with the extras they
    ask for), as installed in this interpreter's site-packages, by name.

    Not every installed package: the corpus must not change with what else is in the
    environment (a test or bench extra, a user's own packages). Not `sys.path` as a whole:
    `ray.init` appends ray/thirdparty_files to it, and the corpus must not change with whether
    Ray was started in this process."""
    import sysconfig

    from packaging.utils import canonicalize_name

    paths = sorted({sysconfig.get_paths()[k] for k in ("purelib", "platlib")})
    seen: dict[str, md.Distribution] = {}
    for dist in md.distributions(path=paths):
        name = canonicalize_name(dist.metadata["Name"] or "")
        if name and name not in seen:
            seen[name] = dist
    keep = _runtime_closure(seen, DEMO_ROOTS)
    return [seen[k] for k in sorted(seen) if k in keep]


def _runtime_closure(installed: dict[str, md.Distribution], roots: tuple[str, ...]) -> set[str]:
    """Canonical names of `roots` and their run-time requirements, followed through the
    installed packages' metadata (markers evaluated here, extras as requested)."""
    from packaging.requirements import InvalidRequirement, Requirement
    from packaging.utils import canonicalize_name

    todo: list[tuple[str, str]] = []
    for root in roots:
        req = Requirement(root)
        name = canonicalize_name(req.name)
        todo += [(name, "")] + [(name, canonicalize_name(e)) for e in req.extras]
    visited: set[tuple[str, str]] = set()
    names: set[str] = set()
    while todo:
        name, extra = todo.pop()
        if (name, extra) in visited or name not in installed:
            continue
        visited.add((name, extra))
        names.add(name)
        for line in installed[name].requires or []:
            try:
                req = Requirement(line)
            except InvalidRequirement:
                continue
            if req.marker is not None and not req.marker.evaluate({"extra": extra}):
                continue  # another extra's, or another platform's
            dep = canonicalize_name(req.name)
            todo += [(dep, "")] + [(dep, canonicalize_name(e)) for e in req.extras]
    return names


def package_descriptions() -> Iterator[dict]:
    for dist in _distributions():
        body = dist.metadata.get_payload() or dist.metadata.get("Description") or ""
        if body.strip():
            yield {"id": f"pkg:{dist.metadata['Name']}:description", "text": body}


def license_texts() -> Iterator[dict]:
    for dist in _distributions():
        for f in sorted(dist.files or [], key=str):
            if LICENSE_FILE.search(str(f)):
                try:
                    text = Path(dist.locate_file(f)).read_text(encoding="utf-8")
                except (OSError, UnicodeDecodeError):
                    continue
                yield {"id": f"pkg:{dist.metadata['Name']}:{f}", "text": text}


def pydoc_topics() -> Iterator[dict]:
    from pydoc_data.topics import topics

    for name in sorted(topics):
        yield {"id": f"pydoc:{name}", "text": topics[name]}


def _write_jsonl_gz(records: Iterator[dict], path: Path) -> int:
    n = 0
    with atomic_open(path, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as gz:
        for rec in records:
            gz.write((json.dumps(rec, ensure_ascii=False) + "\n").encode("utf-8"))
            n += 1
    return n


def build_demo_corpus(out_dir: str | Path) -> dict[str, int]:
    """Write descriptions.jsonl.gz, licenses.jsonl.gz and pydoc_topics.jsonl.gz; return counts."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    return {
        "descriptions.jsonl.gz": _write_jsonl_gz(
            package_descriptions(), out / "descriptions.jsonl.gz"
        ),
        "licenses.jsonl.gz": _write_jsonl_gz(license_texts(), out / "licenses.jsonl.gz"),
        "pydoc_topics.jsonl.gz": _write_jsonl_gz(pydoc_topics(), out / "pydoc_topics.jsonl.gz"),
    }
