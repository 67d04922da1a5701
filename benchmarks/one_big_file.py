"""One large plain jsonl on 1 vs 2 CPUs: does one big file use every worker (issue 17, item 3)?

Builds one ~200 MB uncompressed jsonl of real text (benchmarks/whole_pipeline.py's corpus: the
shared corpora and the Debian documentation; past the distinct text the same documents repeat
as exact duplicates, which dedup removes), then runs `curator curate` on it, whole process tree
measured from outside (whole_pipeline.measure_tree), interleaved, `--repeats` times each:

- `2 CPUs, ranges`: `ray.num_cpus=2`, the default `read.unit_bytes` (the file cut into ranges);
- `1 CPU, ranges`: `ray.num_cpus=1`;
- `2 CPUs, whole file`: `ray.num_cpus=2`, `read.unit_bytes=0` (one unit: what it was before).

With `--warc`, the file is one .warc.gz instead: the shared corpora's crawl WARCs (one gzip
member per record) concatenated until it reaches `--mb` MB compressed (past the first copy the
pages repeat as exact duplicates), cut into runs of records; the driver's cut finding (one
framing scan of the file, connectors/warc_scan.py `record_starts`) is timed apart, in process.

    PYTHONPATH=. .venv/bin/python -m benchmarks.one_big_file --mb 200 --repeats 3
    PYTHONPATH=. .venv/bin/python -m benchmarks.one_big_file --warc --mb 100 --repeats 3
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from benchmarks.whole_pipeline import (
    CORPORA,
    CURATOR_SETS,
    DEBIAN,
    Sources,
    build_corpus,
    run_curator,
)

ARMS = {
    "2 CPUs, ranges": ["ray.num_cpus=2"],
    "1 CPU, ranges": ["ray.num_cpus=1"],
    "2 CPUs, whole file": ["ray.num_cpus=2", "read.unit_bytes=0"],
}
OUT = Path(__file__).resolve().parent / "results" / "one_big_file.md"
OUT_WARC = OUT.with_name("one_big_file_warc.md")


def one_plain_file(mb: float, work: Path, seed: int) -> tuple[Path, dict]:
    """The corpus as one uncompressed jsonl (the builder writes gzip parts; joined here)."""
    parts = work / "parts"
    info = build_corpus(mb, parts, Sources.from_dirs(CORPORA, DEBIAN), seed=seed, n_files=1)
    folder = work / "one"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "big.jsonl"
    with gzip.open(parts / "part-00.jsonl.gz", "rb") as src, open(path, "wb") as dst:
        shutil.copyfileobj(src, dst, 16 << 20)
    shutil.rmtree(parts)
    return path, info


def one_warc_file(mb: float, work: Path) -> tuple[Path, dict]:
    """The shared crawl WARCs concatenated into one multi-member .warc.gz of about `mb` MB."""
    from connectors.registry import expand_inputs
    from curator.config import InputSpec, ReadConfig

    files = sorted(CORPORA.glob("*.warc.gz"))
    if not files:
        raise SystemExit(f"no *.warc.gz under {CORPORA}")
    blob = b"".join(f.read_bytes() for f in files)
    copies = max(1, round(mb * 1e6 / len(blob)))
    folder = work / "one"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "big.warc.gz"
    with open(path, "wb") as f:
        for _ in range(copies):
            f.write(blob)
    t0 = time.process_time()
    units = expand_inputs([InputSpec(path=str(path))], ReadConfig().unit_bytes)
    cut_s = time.process_time() - t0
    responses = units[-1].part.spare_record - units[-1].part.first_record - len(units) + 1 \
        if units[-1].part is not None else None  # the file's frame count (split.py)
    return path, {"copies": copies, "files": [f.name for f in files], "units": len(units),
                  "cut_cpu_s": cut_s, "responses": responses}


def describe(data: dict) -> str:
    """What the input was, in words (the table's header)."""
    info = data["corpus"]
    if data.get("warc"):
        return (f"one {data['size_mb']:.0f} MB .warc.gz (the shared corpora's "
                f"{len(info['files'])} crawl WARCs concatenated {info['copies']} times: "
                f"{info['responses']:,} response records, one gzip member per record), cut by "
                f"the default `read.unit_bytes` into {info['units']} units; the driver's cut "
                f"finding took {info['cut_cpu_s']:.2f} CPU s in process")
    return (f"one {data['size_mb']:.0f} MB plain jsonl of real text ({info['docs']:,} "
            f"documents, {info['repeats']:,} of them exact repeats past the distinct text)")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--mb", type=float, default=200)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--warc", action="store_true", help="one .warc.gz instead of a plain jsonl")
    ap.add_argument("--work-dir", type=Path)
    ap.add_argument("--poll-s", type=float, default=1.0,
                    help="seconds between the monitor's samples of the tree (PSS, CPU). At "
                    "0.2 s it took ~4.6 CPU-s of a 42 s run: on a 2-core machine that competes "
                    "with the 2-CPU arms' workers and not with the 1-CPU arm's, so it skews "
                    "the ratio this benchmark reports. CPU-s stay exact either way (rusage).")
    args = ap.parse_args(argv)
    work = args.work_dir or Path(tempfile.mkdtemp(prefix="one-big-file-"))
    if args.warc:
        path, info = one_warc_file(args.mb, work)
    else:
        path, info = one_plain_file(args.mb, work, args.seed)
    size_mb = path.stat().st_size / 1e6
    # what `curator curate --input FOLDER` will read: the file alone, nothing left over
    info["input_files"] = sorted(p.name for p in path.parent.iterdir())
    print(f"{path}: {size_mb:.1f} MB, {info}", flush=True)
    runs: dict[str, list[dict]] = {arm: [] for arm in ARMS}
    for r in range(args.repeats):
        for arm, sets in ARMS.items():  # interleaved: a drift in the machine hits every arm
            load = os.getloadavg()[0]  # others' work on a shared machine skews the 2-CPU arms
            m = run_curator(path.parent, work, f"{r}", sets, poll_s=args.poll_s)
            m["load_1m"] = load
            runs[arm].append(m)
            print(f"repeat {r} {arm}: wall {m['wall_s']:.1f} s, cpu {m['cpu_s']:.1f} s",
                  flush=True)
    data = {"runs": runs, "corpus": info, "size_mb": size_mb, "mb": args.mb,
            "repeats": args.repeats, "sets": CURATOR_SETS, "warc": args.warc,
            "poll_s": args.poll_s}
    out = OUT_WARC if args.warc else OUT
    out.parent.mkdir(parents=True, exist_ok=True)
    (out.with_suffix(".json")).write_text(json.dumps(data, indent=1, default=str))
    out.write_text(render(data))
    print(out.read_text())


def render(data: dict) -> str:
    """The markdown table of a run's results (also from a saved one_big_file.json)."""
    runs = data["runs"]

    def med(ms: list[dict], key: str) -> float:
        return statistics.median(m[key] for m in ms)

    def phase(ms: list[dict], name: str) -> float:
        return statistics.median(m["phases"].get(name, 0.0) for m in ms)

    base = med(runs["1 CPU, ranges"], "wall_s")
    poll = f" --poll-s {data['poll_s']:g}" if "poll_s" in data else ""  # older files: 0.2 s
    lines = [
        f"## One big {'.warc.gz' if data.get('warc') else 'file'} on 1 vs 2 CPUs (whole "
        "process tree)",
        "",
        f"`PYTHONPATH=. .venv/bin/python -m benchmarks.one_big_file "
        f"{'--warc ' if data.get('warc') else ''}--mb {data['mb']:g} "
        f"--repeats {data['repeats']}{poll}`: {describe(data)}, `curator curate` with the "
        f"whole-pipeline comparison's settings "
        f"({', '.join(f'`{x}`' for x in data['sets'])}, then the arm's; defaults otherwise); "
        f"medians of {data['repeats']} interleaved runs. `outside` = wall minus the phases "
        "the run times itself (Ray start and connect, splitting, catalog, report, exit).",
        "",
        "| arm | wall s | CPU s | speed-up over 1 CPU (wall) | pass 1 s | pass 2 s | dedup + "
        "tokenizer s | outside s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for arm, ms in runs.items():
        wall = med(ms, "wall_s")
        inside = statistics.median(sum(m["phases"].values()) for m in ms)
        lines.append(
            f"| {arm} | {wall:.1f} | {med(ms, 'cpu_s'):.1f} | {base / wall:.2f}x | "
            f"{phase(ms, 'pass1'):.1f} | {phase(ms, 'pass2'):.1f} | "
            f"{phase(ms, 'dedup') + phase(ms, 'tokenizer_train'):.1f} | {wall - inside:.1f} |")
    lines += ["", "Every run: " + "; ".join(
        f"{arm}: " + ", ".join(f"{m['wall_s']:.1f}" for m in ms) + " s wall"
        for arm, ms in runs.items()), ""]
    lines += ["The monitor's own CPU (sampling the tree every "
              f"{data.get('poll_s', 0.2):g} s; not in the CPU column), median per run: "
              + "; ".join(f"{arm}: {med(ms, 'monitor_cpu_s'):.1f} s"
                          for arm, ms in runs.items()), ""]
    if all("load_1m" in m for ms in runs.values() for m in ms):
        lines += ["Machine load (1-minute average) as each run began: " + "; ".join(
            f"{arm}: " + ", ".join(f"{m['load_1m']:.1f}" for m in ms)
            for arm, ms in runs.items()), ""]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
