"""curator vs datatrove on the same input, one core each: heuristic rules + MinHash dedup
(docs/s per core and the ratio), rule agreement, dedup precision/recall on planted
near-duplicates, and curator's tokenize stage vs raw sentencepiece.

    .venv/bin/python -m benchmarks.curate_vs_datatrove --max-docs 3000

Writes benchmarks/results/curate_vs_datatrove.md (plus the detailed rules.md and minhash.md).
"""

from __future__ import annotations

import argparse
import os

os.environ.setdefault("POLARS_MAX_THREADS", "1")  # one core each: per-core numbers

import sys  # noqa: E402
from pathlib import Path  # noqa: E402

from benchmarks import bench_minhash, bench_rules, bench_tokenize  # noqa: E402
from benchmarks.texts import DEFAULT_INPUTS, load_texts  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument(
        "--input", action="append", help="jsonl(.gz) with a text field; default: shared corpora"
    )
    ap.add_argument("--max-docs", type=int, default=3000)
    ap.add_argument("--plant-frac", type=float, default=0.1)
    ap.add_argument("--out", default="benchmarks/results/curate_vs_datatrove.md")
    args = ap.parse_args()
    command = ".venv/bin/python -m benchmarks.curate_vs_datatrove " + " ".join(sys.argv[1:])

    texts = load_texts(args.input or DEFAULT_INPUTS, limit=args.max_docs)
    rules = bench_rules.run(texts)
    planted_texts, groups = bench_minhash.plant(texts, args.plant_frac, seed=0)
    minhash = bench_minhash.run(planted_texts, groups)
    tok = bench_tokenize.run(texts)

    n, mb = len(texts), rules["mb"]
    # Per-doc cost of the two stages chained, each measured on one core.
    ours_s = rules["ours"]["seconds"] + minhash["curator"]["e2e_s"] * n / minhash["docs"]
    dt_s = rules["datatrove"]["seconds"] + minhash["datatrove"]["e2e_s"] * n / minhash["docs"]
    agreement = rules["agreement"]
    tok_rows = {r["impl"]: r for r in tok["rows"]}
    names = ", ".join(Path(p).name for p in (args.input or DEFAULT_INPUTS))
    cur, dt = minhash["curator"], minhash["datatrove"]
    lines = [
        "## curator vs datatrove 0.10.1 in-process kernels: rules + MinHash, one core each",
        "",
        "What this table is: the two libraries' kernels called in one Python process on texts "
        "already in memory, one thread, no Ray, no file reading or writing, no tokenizer -- "
        "an in-process kernel ratio. What a user pays for a whole run (every process, every "
        "phase) is the whole-pipeline table (benchmarks/whole_pipeline.py).",
        "",
        f"Input: {n:,} docs, {mb:.1f} MB ({names}; "
        "books cut into ~2 KB line-aligned chunks). MinHash on the same docs plus "
        f"{minhash['planted']:,} planted near-duplicates. Command: `{command.strip()}`",
        "",
        "| stage | curator docs/s per core | datatrove docs/s per core | ratio |",
        "|---|---|---|---|",
        "| rules (normalize + Gopher quality + Gopher repetition + C4 + FineWeb; datatrove's "
        "rules only, without curator's extra C4 drop) | "
        f"{rules['ours']['docs_per_s']:,.0f} | {rules['datatrove']['docs_per_s']:,.0f} | "
        f"{rules['speedup']:.1f}x |",
        f"| MinHash signatures | {minhash['curator']['sig_docs_s']:,.0f} | "
        f"{minhash['datatrove']['sig_docs_s']:,.0f} | {minhash['sig_ratio']:.1f}x |",
        f"| MinHash end to end (signatures + buckets + clusters) | {cur['e2e_docs_s']:,.0f} | "
        f"{dt['e2e_docs_s']:,.0f} | {minhash['e2e_ratio']:.1f}x |",
        f"| **rules + MinHash end to end** | **{n / ours_s:,.0f}** | **{n / dt_s:,.0f}** | "
        f"**{dt_s / ours_s:.1f}x** (target >= 3x) |",
        "",
        "| rule family | keep/drop agreement with datatrove (target >= 98%) |",
        "|---|---|",
        *[f"| {fam} | {a['agree'] * 100:.1f}% |" for fam, a in agreement.items()],
        "",
        "| dedup on planted near-duplicates | precision | recall |",
        "|---|---|---|",
        f"| curator | {minhash['curator']['precision']:.3f} | {minhash['curator']['recall']:.3f} |",
        f"| datatrove | {dt['precision']:.3f} | {dt['recall']:.3f} |",
        "",
        f"| tokenize ({tok['docs']:,} docs, {tok['MB']} MB, {tok['threads']} thread) "
        "| MB/s | vs raw |",
        "|---|---|---|",
        *[
            f"| {name} | {r['MB_per_s']} | {r['speed_vs_raw']:.2f}x |"
            for name, r in tok_rows.items()
        ],
        "",
        "Rule-by-rule differences from datatrove are listed in the rules section below.",
        "",
    ]
    text = "\n".join(lines)
    print(text)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(text)


if __name__ == "__main__":
    main()
