"""Which junk each arm of finished loop runs trained on: selected-token share by junk kind.

    .venv/bin/python -m benchmarks.loop_junk_kinds /tmp/loop12-constrained/draw-* \
        --arms static,loop

The closed-loop benchmark reports one junk share per arm; this splits it by the pool's labels
(policies/pool.py: real boilerplate, crawl spam and off-language pages, and the labelled
corruptions), summed over every round and seed of each run and then averaged over the runs (the
pool draws), so a change of ranking signal shows which kinds it keeps out. `near_duplicate` is a
corrupted copy of a pool document; whichever of the pair survives dedup is kept, so its share is
mostly the same for every ranking. Prints a markdown table (stdout).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from curator.loop.config import load_loop_config  # noqa: E402
from curator.loop.pool import load_loop_pool  # noqa: E402
from curator.loop.unit import RESULT, unit_dir  # noqa: E402
from curator.rundir import RunDir  # noqa: E402


def junk_shares(root: Path, arms: list[str]) -> dict[str, dict[str, float]]:
    """Per arm, the share of its selected tokens (all rounds and seeds of the run at `root`)
    per label; the pool is loaded once for all arms."""
    cfg = load_loop_config(root / "loop" / "config.yaml")
    pool = load_loop_pool(RunDir.at(root))
    kinds, codes = np.unique(np.asarray(pool.labels.to_pylist()), return_inverse=True)
    shares = {}
    for arm in arms:
        tokens = np.zeros(len(kinds))
        for seed in cfg.seeds:
            for rnd in range(cfg.rounds):
                unit = json.loads((unit_dir(root, rnd, arm, seed) / RESULT).read_text())
                sel = np.asarray(unit["selected"], np.int64)
                tokens += np.bincount(codes[sel], pool.n_tokens[sel], minlength=len(kinds))
        shares[arm] = dict(zip(kinds.tolist(), (tokens / tokens.sum()).tolist(), strict=True))
    return shares


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("runs", nargs="+", type=Path, help="finished loop run roots (RUN/)")
    ap.add_argument("--arms", default="static,loop")
    args = ap.parse_args(argv)
    arms = args.arms.split(",")
    per_run = [junk_shares(r, arms) for r in args.runs]
    shares = {a: [run[a] for run in per_run] for a in arms}
    kinds = sorted({k for a in arms for s in shares[a] for k in s} - {"clean"})
    print(f"Selected-token share by junk kind, mean over {len(args.runs)} runs "
          f"({', '.join(str(r) for r in args.runs)}):\n")
    print("| arm | " + " | ".join(kinds) + " | all junk |")
    print("|---" * (len(kinds) + 2) + "|")
    for a in arms:
        mean = {k: float(np.mean([s.get(k, 0.0) for s in shares[a]])) for k in kinds}
        print(f"| {a} | " + " | ".join(f"{mean[k]:.3f}" for k in kinds)
              + f" | {sum(mean.values()):.3f} |")


if __name__ == "__main__":
    main()
