"""What the readers' byte caps cost: peak RSS on decompression bombs, and throughput on real files.

Bombs (built here by streaming, see tests/connectors/bombs.py) are read each in a fresh
interpreter with default settings; the table gives the peak RSS growth over a warm-up read and
what became of the bomb. Throughput reads real files from the development corpora (repeated or
recompressed to be long enough to time), median of `--repeats` runs in this process.

    .venv/bin/python benchmarks/reader_limits.py --corpora ../shared/corpora
    # the same measures on another checkout (e.g. the code before a change):
    .venv/bin/python benchmarks/reader_limits.py --corpora ../shared/corpora --repo /tmp/old
"""

from __future__ import annotations

import argparse
import gzip
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import zstandard

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from tests.connectors.bombs import (  # noqa: E402
    good_lines,
    jsonl_gz_long_line,
    jsonl_zst_zeros,
    peak_rss_growth,
    warc_gz_big_body,
)

_MB = 1 << 20


def html_gz_big_page(path: Path, n_bytes: int) -> Path:
    with gzip.open(path, "wb", compresslevel=1) as out:
        out.write(b"<html><body><p>")
        block = b"a" * _MB
        for start in range(0, n_bytes, _MB):
            out.write(block[: min(_MB, n_bytes - start)])
    return path


def bombs(tmp: Path, mb: int, zst_mb: int) -> list[tuple[str, Path, Path]]:
    """(label, bomb, small warm-up file of the same format)."""
    warm_jsonl = tmp / "warm.jsonl.gz"
    warm_jsonl.write_bytes(gzip.compress(b"\n".join(good_lines(3)) + b"\n"))
    warm_zst = tmp / "warm.jsonl.zst"
    warm_zst.write_bytes(zstandard.ZstdCompressor().compress(b"\n".join(good_lines(3)) + b"\n"))
    warm_html = tmp / "warm.html.gz"
    warm_html.write_bytes(gzip.compress(b"<html><body><p>small page</p></body></html>"))
    return [
        (
            f"jsonl.gz, one {mb} MB line",
            jsonl_gz_long_line(tmp / "line.jsonl.gz", mb * _MB),
            warm_jsonl,
        ),
        (
            f"jsonl.zst, {zst_mb} MB of zeros",
            jsonl_zst_zeros(tmp / "zeros.jsonl.zst", zst_mb * _MB),
            warm_zst,
        ),
        (
            f"warc.gz, one {mb} MB body",
            warc_gz_big_body(tmp / "body.warc.gz", mb * _MB),
            warc_gz_big_body(tmp / "warm.warc.gz", 100),
        ),
        (f"html.gz, one {mb} MB page", html_gz_big_page(tmp / "page.html.gz", mb * _MB), warm_html),
    ]


def real_files(corpora: Path, tmp: Path) -> list[tuple[str, Path]]:
    books = corpora / "books.jsonl.gz"
    books_zst = tmp / "books.jsonl.zst"
    books_zst.write_bytes(zstandard.ZstdCompressor(level=3).compress(gzip.open(books).read()))
    # Real Common Crawl lines repeated to 20,000 records (as benchmarks/results/connectors.md).
    lines = [
        line
        for name in ("cc_en_head-0091", "cc_en_head-0174", "dolma-documents-000")
        for line in gzip.open(corpora / f"{name}.jsonl.gz").read().splitlines()
        if line.strip()
    ]
    records = []
    for i in range(20_000):
        doc = json.loads(lines[i % len(lines)])
        doc["id"] = f"r{i}"
        records.append(json.dumps(doc).encode())
    cc_gz = tmp / "cc20k.jsonl.gz"
    cc_gz.write_bytes(gzip.compress(b"\n".join(records) + b"\n", compresslevel=6))
    # The three real crawl WARCs (one gzip member per record) concatenated 10 times.
    warcs = [
        corpora / f
        for f in (
            "crawl-sample-0000.warc.gz",
            "crawl-sample-0001.warc.gz",
            "crawl-spam-mix.warc.gz",
        )
    ]
    warc = tmp / "crawl-x10.warc.gz"
    warc.write_bytes(b"".join(p.read_bytes() for p in warcs) * 10)
    return [
        ("jsonl.gz, books (46 long docs)", books),
        ("jsonl.zst, books (recompressed)", books_zst),
        ("jsonl.gz, 20k real CC lines", cc_gz),
        ("warc.gz, 3 real crawls x10", warc),
    ]


def throughput(path: Path, repeats: int) -> tuple[int, float, float]:
    """(rows, median seconds, Mchars/s) of reading `path` with default settings."""
    import pyarrow.compute as pc

    from connectors.registry import expand_inputs, read_unit
    from curator.config import InputSpec, ReadConfig

    unit = expand_inputs([InputSpec(path=str(path))])[0]
    times, rows, chars = [], 0, 0
    for _ in range(repeats):
        start = time.perf_counter()
        rows = chars = 0
        for table in read_unit(unit, ReadConfig()):
            rows += table.num_rows
            chars += int(pc.sum(table.column("n_chars")).as_py() or 0)
        times.append(time.perf_counter() - start)
    median = statistics.median(times)
    return rows, median, chars / median / 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpora", type=Path, required=True)
    parser.add_argument("--repo", type=Path, default=REPO, help="checkout whose connectors to run")
    parser.add_argument("--mb", type=int, default=200, help="size of the line/body/page bombs")
    parser.add_argument("--zst-mb", type=int, default=1024, help="size of the zstd zeros bomb")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--skip-bombs", action="store_true")
    args = parser.parse_args()
    sys.path.insert(0, str(args.repo.resolve()))
    print(f"connectors from {args.repo.resolve()}")
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        if not args.skip_bombs:
            print("\n| bomb | peak RSS growth (MB) | rows | bomb row |\n|---|---|---|---|")
            for label, bomb, warm in bombs(tmp, args.mb, args.zst_mb):
                try:
                    got = peak_rss_growth(bomb, warm, args.repo.resolve(), 4 << 30)
                except subprocess.CalledProcessError as exc:
                    tail = exc.stderr.strip().splitlines()[-1:] or ["?"]
                    print(f"| {label} | failed (rc {exc.returncode}) | - | {tail[0][:80]} |")
                    continue
                bad = [r for r in got["rows"] if r["decision"] != "kept"]
                print(
                    f"| {label} | {got['growth_mb']:.0f} | {len(got['rows'])} | "
                    f"{', '.join(str(r['reason']) for r in bad) or 'none'} |"
                )
                bomb.unlink()
        print(
            f"\n| input | rows | seconds (median of {args.repeats}) | Mchars/s |\n|---|---|---|---|"
        )
        for label, path in real_files(args.corpora, tmp):
            rows, seconds, rate = throughput(path, args.repeats)
            print(f"| {label} | {rows} | {seconds:.3f} | {rate:.1f} |")


if __name__ == "__main__":
    main()
