"""Peak memory of `curator curate` (driver + embedded Ray cluster + workers, summed) on a corpus
and on one 10x larger: streaming means the ratio stays near 1, not near 10.

    .venv/bin/python benchmarks/streaming_rss.py --mb 4 --factor 10
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.texts import load_texts  # noqa: E402


def write_corpus(texts: list[str], root: Path, total_mb: float, file_mb: float = 4.0) -> Path:
    """Cycle `texts` (with a distinct prefix per copy, so nothing is an exact duplicate) into
    jsonl.gz files of about `file_mb` each until `total_mb` is written."""
    root.mkdir(parents=True, exist_ok=True)
    written, f_idx, i = 0.0, 0, 0
    while written < total_mb * 1e6:
        with gzip.open(root / f"part-{f_idx:04d}.jsonl.gz", "wt") as fh:
            size = 0
            while size < file_mb * 1e6 and written + size < total_mb * 1e6:
                text = (
                    f"Copy {i // len(texts)} of record {i % len(texts)}.\n" + texts[i % len(texts)]
                )
                fh.write(json.dumps({"id": f"r{i}", "text": text}) + "\n")
                size += len(text)
                i += 1
        written += size
        f_idx += 1
    return root


def peak_tree_rss(cmd: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Run `cmd`; return (peak summed RSS of it and all descendants in MB, seconds)."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    root = psutil.Process(proc.pid)
    peak = 0
    while proc.poll() is None:
        total = 0
        try:
            for p in [root, *root.children(recursive=True)]:
                try:
                    total += p.memory_info().rss
                except psutil.Error:
                    pass
        except psutil.Error:
            pass
        peak = max(peak, total)
        time.sleep(0.1)
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr.read().decode()[-3000:])
    return peak / 1e6, time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--mb", type=float, default=4.0, help="size of the small corpus")
    ap.add_argument("--factor", type=int, default=10)
    ap.add_argument("--out", default="benchmarks/results/streaming_rss.md")
    ap.add_argument("--set", action="append", default=[], help="config override for both runs")
    args = ap.parse_args()
    texts = load_texts()
    curator = str(Path(sys.executable).parent / "curator")
    env = {**os.environ, "RAY_ADDRESS": "", "RAY_USAGE_STATS_ENABLED": "0"}
    env.pop("RAY_ADDRESS")
    rows = []
    with tempfile.TemporaryDirectory(prefix="curator-rss-") as tmp:
        for mb in (args.mb, args.mb * args.factor):
            # Same file size for both corpora, and at least 4 files in the small one, so both
            # runs use every worker: the comparison isolates corpus size from parallelism.
            corpus = write_corpus(texts, Path(tmp) / f"c{mb}", mb, file_mb=args.mb / 4)
            cmd = [
                curator,
                "curate",
                "--input",
                str(corpus),
                "--output",
                str(Path(tmp) / f"run{mb}"),
                "--quiet",
                *[arg for kv in args.set for arg in ("--set", kv)],
            ]
            peak, secs = peak_tree_rss(cmd, env)
            rows.append((mb, peak, secs))
            print(f"{mb:.0f} MB corpus: peak RSS {peak:.0f} MB, {secs:.1f} s", flush=True)
    ratio = rows[1][1] / rows[0][1]
    table = [
        "| corpus | peak RSS (driver + Ray, summed) | wall |",
        "|---|---|---|",
        *[f"| {mb:.0f} MB | {peak:.0f} MB | {secs:.1f} s |" for mb, peak, secs in rows],
        "",
        f"Peak RSS ratio {args.factor}x corpus / 1x corpus: **{ratio:.2f}** (target <= 1.3)",
    ]
    text = "\n".join(table)
    print(text)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(
        f"## Streaming memory\n\nCommand: `.venv/bin/python benchmarks/streaming_rss.py "
        f"{' '.join(sys.argv[1:])}`\n\n{text}\n"
    )


if __name__ == "__main__":
    main()
