"""WARC reading: curator's own record scanner vs FastWARC 2.0, and where a WARC's read time goes.

    .venv/bin/python -m benchmarks.warc_reading --copies 40

Input: the shared corpora's three real crawl WARCs (.warc.gz, one gzip member per record),
concatenated `--copies` times into one file (a valid multi-member .warc.gz; the same records
again, so counts scale exactly). Measured in this process, one thread, best of `--repeats`:
- framing: curator's `scan_warc` (connectors/warc_scan.py: headers, Content-Length, member CRC,
  resynchronisation after damage) vs FastWARC's `ArchiveIterator` reading every record's
  content, both yielding response records with their full bodies;
- the whole reader: `read_unit` on the file (framing + HTTP parsing + HTML extraction with
  resiliparse + Arrow batches), to show the share the framing is of a WARC's read time.
Agreement: both framings must find the same response records with the same target URIs.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from connectors.registry import expand_inputs, read_unit  # noqa: E402
from connectors.tally import ReadTally  # noqa: E402
from connectors.warc_scan import Response, scan_warc  # noqa: E402
from curator.config import InputSpec, ReadConfig  # noqa: E402

CORPORA = Path(__file__).resolve().parents[2] / "shared" / "corpora"
RESULTS = Path(__file__).parent / "results" / "warc_reading.md"


def build(corpora: Path, copies: int, out: Path) -> tuple[Path, int]:
    files = sorted(corpora.glob("*.warc.gz"))
    if not files:
        raise SystemExit(f"no *.warc.gz under {corpora}")
    blob = b"".join(f.read_bytes() for f in files)
    path = out / "many.warc.gz"
    path.write_bytes(blob * copies)
    return path, len(files)


def curator_framing(path: Path) -> list[str]:
    uris = []
    for frame in scan_warc(str(path), 1 << 30, ReadTally()):
        if isinstance(frame, Response) and frame.headers.get("warc-type") == "response":
            uris.append(frame.headers.get("warc-target-uri", ""))
    return uris


def fastwarc_framing(path: Path) -> list[str]:
    from fastwarc.warc import ArchiveIterator, WarcRecordType

    uris = []
    with open(path, "rb") as f:  # FastWARC detects the gzip members itself
        for record in ArchiveIterator(f, record_types=WarcRecordType.response, parse_http=False):
            record.reader.read()  # the whole body, as curator's scanner holds it
            uris.append(record.headers.get("WARC-Target-URI", ""))
    return uris


def whole_reader(path: Path) -> int:
    (unit,) = expand_inputs([InputSpec(path=str(path))])
    rows = 0
    for table in read_unit(unit, ReadConfig(), ReadTally()):
        rows += table.num_rows
    return rows


def best(fn, path: Path, repeats: int) -> tuple[float, object]:
    times, out = [], None
    for _ in range(repeats):
        t0 = time.process_time()
        out = fn(path)
        times.append(time.process_time() - t0)
    return min(times), out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--corpora", default=str(CORPORA))
    ap.add_argument("--copies", type=int, default=40)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", default=str(RESULTS))
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path, n_files = build(Path(args.corpora), args.copies, Path(tmp))
        mb = path.stat().st_size / 1e6
        t_ours, ours = best(curator_framing, path, args.repeats)
        t_fast, fast = best(fastwarc_framing, path, args.repeats)
        t_read, rows = best(whole_reader, path, args.repeats)
    agree = ours == fast
    n = len(ours)
    lines = [
        "## WARC reading: curator's scanner vs FastWARC 2.0 (one thread, in process)",
        "",
        f"Command: `.venv/bin/python -m benchmarks.warc_reading --copies {args.copies}`. "
        f"Input: the {n_files} shared crawl WARCs concatenated {args.copies} times "
        f"({mb:.1f} MB gzip, {n:,} response records); CPU seconds, best of {args.repeats}.",
        "",
        "| step | CPU s | responses/s | compressed MB/s |",
        "|---|---|---|---|",
        f"| framing, curator `scan_warc` | {t_ours:.2f} | {n / t_ours:,.0f} | "
        f"{mb / t_ours:.1f} |",
        f"| framing, FastWARC `ArchiveIterator` | {t_fast:.2f} | {len(fast) / t_fast:,.0f} | "
        f"{mb / t_fast:.1f} |",
        f"| whole reader, curator `read_unit` (framing + HTTP + resiliparse + Arrow) | "
        f"{t_read:.2f} | {rows / t_read:,.0f} rows/s | {mb / t_read:.1f} |",
        "",
        f"Same response records and target URIs in the same order: {'yes' if agree else 'NO'} "
        f"({n:,} vs {len(fast):,}). Framing is {100 * t_ours / t_read:.0f}% of curator's whole "
        f"WARC read; FastWARC would take it to {100 * t_fast / t_read:.0f}%.",
        "",
    ]
    text = "\n".join(lines)
    print(text)
    Path(args.out).write_text(text + "\n")


if __name__ == "__main__":
    main()
