"""Paired differences of one method against every other, on a chosen range of draws, from the
natural selection benchmark's loss cache (`--work`/losses.json of benchmarks/selection_natural).

A confirmation run adds new draws to a cached run (`--draws 16` after `--draws 8`): the cache
keeps every (method, ranking stamp, draw, budget) loss, and this reads the new draws apart from
the ones that suggested the hypothesis.

    .venv/bin/python -m benchmarks.selection_paired --losses WORK/losses.json \\
        --method "REINFORCE + upweight action" --draws 8:16
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict

import numpy as np

from benchmarks.paired_stats import sign_flip_p


def paired_table(losses: dict[str, float], method: str, draws: range) -> list[tuple]:
    """(budget, other method, mean Δ = method − other, draws where method is lower, n, p).
    A method re-ranked across runs has a loss per ranking stamp; the entry written last wins
    (the cache is appended in run order, so that is the latest run's ranking)."""
    by: dict[tuple[str, str], dict[int, float]] = defaultdict(dict)
    for key, loss in losses.items():
        name, _stamp, draw, frac = key.split("|")
        by[(name, frac)][int(draw)] = loss
    rows = []
    for frac in sorted({f for _, f in by}, key=float):
        mine = by.get((method, frac), {})
        for (other, f), theirs in sorted(by.items()):
            if f != frac or other == method:
                continue
            shared = [d for d in draws if d in mine and d in theirs]
            if not shared:
                continue
            diff = np.array([mine[d] - theirs[d] for d in shared])
            rows.append((frac, other, float(diff.mean()), int((diff < 0).sum()), len(diff),
                         sign_flip_p(diff)))  # fmt: skip
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--losses", required=True, help="selection_natural's WORK/losses.json")
    ap.add_argument("--method", required=True)
    ap.add_argument("--draws", default="0:1000", help="START:STOP, Python range of draw indices")
    args = ap.parse_args()
    start, stop = (int(x) for x in args.draws.split(":"))
    rows = paired_table(json.loads(open(args.losses).read()), args.method, range(start, stop))
    print(f"| budget | {args.method} minus | Δ loss | lower in | p |")
    print("|---|---|---|---|---|")
    for frac, other, mean, wins, n, p in rows:
        print(f"| {float(frac):.0%} | {other} | {mean:+.4f} | {wins}/{n} | {p:.3f} |")


if __name__ == "__main__":
    main()
