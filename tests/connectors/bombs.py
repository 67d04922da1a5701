"""Decompression bombs built by streaming (never held whole), and a peak-RSS probe.

Each bomb is one enormous record between good ones, so a test can check three things at once:
the reader's memory stays bounded, the bomb is one too_large row, and the records after it are
kept. `peak_rss_growth` reads a unit in a fresh interpreter, so the measure is that read alone.
"""

from __future__ import annotations

import gzip
import json
import resource
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import zstandard

_MB = 1 << 20
REPO = Path(__file__).resolve().parents[2]


def good_lines(n: int, first: int = 0) -> list[bytes]:
    return [
        json.dumps({"id": f"g{i}", "text": f"good {i}"}).encode() for i in range(first, first + n)
    ]


def _repeat(byte: bytes, n_bytes: int) -> Iterator[bytes]:
    block = byte * _MB
    for start in range(0, n_bytes, _MB):
        yield block[: min(_MB, n_bytes - start)]


def jsonl_gz_long_line(path: Path, n_bytes: int) -> Path:
    """2 good lines, one JSON line with an `n_bytes` text (no newline inside), 2 good lines."""
    with gzip.open(path, "wb", compresslevel=1) as out:
        out.write(b"\n".join(good_lines(2)) + b'\n{"id": "bomb", "text": "')
        for block in _repeat(b"a", n_bytes):
            out.write(block)
        out.write(b'"}\n' + b"\n".join(good_lines(2, first=2)) + b"\n")
    return path


def jsonl_zst_zeros(path: Path, n_bytes: int) -> Path:
    """One zstd frame: a line of `n_bytes` zeros, then 2 good lines (streaming compressor)."""
    cobj = zstandard.ZstdCompressor(level=3).compressobj()
    with open(path, "wb") as out:
        for block in _repeat(b"\0", n_bytes):
            out.write(cobj.compress(block))
        out.write(cobj.compress(b"\n" + b"\n".join(good_lines(2)) + b"\n"))
        out.write(cobj.flush())
    return path


ARTICLE = (
    "<html><body><article><h1>Headline {i}</h1><p>The quick brown fox number {i} jumps over "
    "the lazy dog near the river bank.</p><p>A second paragraph keeps the extractor convinced "
    "this is the main content.</p></article></body></html>"
)


def warc_response(
    uri: str, body_len: int, body: Iterator[bytes], record_id: str
) -> Iterator[bytes]:
    http = b"HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\n\r\n"
    yield (
        "WARC/1.0\r\nWARC-Type: response\r\n"
        f"WARC-Record-ID: <urn:uuid:{record_id}>\r\nWARC-Target-URI: {uri}\r\n"
        "WARC-Date: 2024-01-01T00:00:00Z\r\nContent-Type: application/http; msgtype=response\r\n"
        f"Content-Length: {len(http) + body_len}\r\n\r\n"
    ).encode()
    yield http
    yield from body
    yield b"\r\n\r\n"


def warc_gz_big_body(path: Path, n_bytes: int, n_before: int = 1, n_after: int = 2) -> Path:
    """A .warc.gz, one gzip member per record: articles, one HTML response with an `n_bytes`
    body, articles. The target URIs are http://example.com/a<i> and .../bomb."""
    with open(path, "wb") as out:
        for i in range(n_before + 1 + n_after):
            if i == n_before:
                head = b"<html><body><p>"
                body = iter([head, *_repeat(b"a", n_bytes - len(head))])
                parts = warc_response("http://example.com/bomb", n_bytes, body, "bomb")
            else:
                page = ARTICLE.format(i=i).encode()
                parts = warc_response(f"http://example.com/a{i}", len(page), iter([page]), f"a{i}")
            with gzip.GzipFile(fileobj=out, mode="wb", compresslevel=1) as member:
                for part in parts:
                    member.write(part)
    return path


_PROBE = textwrap.dedent(
    """
    import json, resource, sys
    sys.path.insert(0, sys.argv[1])
    from connectors.registry import expand_inputs, read_unit
    from curator.config import InputSpec, ReadConfig

    def read(path):
        rows = []
        for unit in expand_inputs([InputSpec(path=path)]):
            for table in read_unit(unit, ReadConfig()):
                rows += table.select(["input_id", "decision", "reason"]).to_pylist()
        return rows

    read(sys.argv[3])  # warm-up on a small file of the same format: lazy imports, caches
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    rows = read(sys.argv[2])
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"growth_mb": (peak - base) / 1024, "rows": rows}))
    """
)


def peak_rss_growth(
    path: Path, warm_up: Path, repo: Path = REPO, max_address_space: int = 3 << 30
) -> dict:
    """Read `path` with default settings in a fresh interpreter; returns {"growth_mb": peak RSS
    growth over the warm-up read of `warm_up`, "rows": [{input_id, decision, reason}, ...]}.

    The interpreter's address space is capped (RLIMIT_AS) so that a reader which does hold the
    bomb fails fast with MemoryError instead of taking a shared machine's memory."""

    def cap() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (max_address_space, max_address_space))

    done = subprocess.run(
        [sys.executable, "-c", _PROBE, str(repo), str(path), str(warm_up)],
        capture_output=True,
        text=True,
        check=True,
        preexec_fn=cap,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])
