"""The closed loop's section of RUN/report.html (results written by curator/loop/driver.py).

Per arm and seed, `RUN/loop/result-<arm>-seed<k>.json`:

    {"arm": "loop", "seed": 0,
     "tokens": [0, 16384, ...],          # training tokens at each evaluation
     "heldout_loss": [7.6, 6.9, ...],    # held-out loss (nats/token) at those tokens
     "phase_tokens": [[[...]]],          # optional: tokens per (round, phase, stage)
     "target_loss": 5.1}                 # optional

The target of tokens-to-target is, in order: the `target_loss` of the files if they give one,
else the mean final loss of the `random` arm, else the worst arm's mean final loss. An arm's
tokens-to-target is the mean over its seeds of the first evaluated token count whose loss is at
or under the target (seeds that never reach it are counted as missing and shown as such).
`RUN/loop/scores.parquet` (doc_id, label, one column per policy) gives the score histograms,
and the `updates` of `RUN/loop/summary.json` the table of the loop agent's policy updates.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from curator.plots import html_table
from curator.rundir import RunDir
from curator.svg_charts import Line, color, hist_chart, line_chart, stacked_area_chart

N_BINS = 40


def load_loop_results(loop_dir: Path) -> list[dict]:
    out = []
    for path in sorted(loop_dir.glob("result-*.json")):
        rec = json.loads(path.read_text())
        missing = {"arm", "tokens", "heldout_loss"} - set(rec)
        if missing:
            raise ValueError(f"{path}: loop result lacks {sorted(missing)}; see curator/report.py")
        out.append(rec)
    return out


def loop_summary(records: list[dict]) -> tuple[float, list[dict]]:
    """(target loss, one row per arm: seeds, final loss mean/std, tokens-to-target mean)."""
    arms: dict[str, list[dict]] = {}
    for r in records:
        arms.setdefault(r["arm"], []).append(r)
    finals = {a: np.mean([r["heldout_loss"][-1] for r in rs]) for a, rs in arms.items()}
    given = [r["target_loss"] for r in records if r.get("target_loss") is not None]
    target = float(given[0]) if given else float(finals.get("random", max(finals.values())))
    rows = []
    for arm, rs in sorted(arms.items()):
        reach = []
        for r in rs:
            loss = np.asarray(r["heldout_loss"], dtype=float)
            hit = np.flatnonzero(loss <= target)
            reach.append(float(r["tokens"][hit[0]]) if len(hit) else None)
        reached = [t for t in reach if t is not None]
        final = [r["heldout_loss"][-1] for r in rs]
        rows.append(
            {
                "arm": arm,
                "seeds": len(rs),
                "final_loss": float(np.mean(final)),
                "final_loss_std": float(np.std(final)),
                "tokens_to_target": float(np.mean(reached)) if reached else None,
                "seeds_reaching_target": len(reached),
            }
        )
    return target, rows


def loop_section(run: RunDir) -> str:
    loop_dir = run.root / "loop"
    records = load_loop_results(loop_dir) if loop_dir.is_dir() else []
    if not records:
        return ""
    target, rows = loop_summary(records)
    colors: dict[str, str] = {}
    lines = []
    for r in records:  # one line per arm and seed; the legend names each arm once
        first = r["arm"] not in colors
        c = colors.setdefault(r["arm"], color(len(colors)))
        lines.append(Line(np.asarray(r["tokens"], float), np.asarray(r["heldout_loss"], float),
                          c, r["arm"] if first else None, opacity=0.8))
    chart = line_chart(lines, "closed loop: held-out loss vs tokens per arm", "training tokens",
                       "held-out loss (nats/token)",
                       hlines=[(target, f"target {target:.3f}", "#7f7f7f")])
    table = html_table(
        ["arm", "seeds", "final loss", "std", "tokens to target", "seeds reaching"],
        [
            (
                r["arm"],
                r["seeds"],
                f"{r['final_loss']:.4f}",
                f"{r['final_loss_std']:.4f}",
                "never" if r["tokens_to_target"] is None else f"{r['tokens_to_target']:.0f}",
                r["seeds_reaching_target"],
            )
            for r in rows
        ],
    )
    parts = ["<h2>Closed loop</h2>", chart, table, updates_table(loop_dir / "summary.json")]
    mix = curriculum_mix_plot(records)
    if mix:
        parts.append(mix)
    parts += score_plots(loop_dir / "scores.parquet")
    return "".join(parts)


def updates_table(summary_path: Path) -> str:
    """The loop agent's update after each round: its reward and its trial round's verdict."""
    if not summary_path.exists():
        return ""
    updates = json.loads(summary_path.read_text()).get("updates", [])
    if not updates:
        return ""

    def num(u: dict, key: str) -> str | None:
        return None if u.get(key) is None else f"{u[key]:.4f}"

    rows = [
        (
            u["seed"],
            u["round"],
            u.get("candidates"),
            "skipped" if u.get("skipped") else num(u, "mean_reward"),
            num(u, "trial_loss_current"),
            num(u, "trial_loss_proposed"),
            {True: "yes", False: "no"}.get(u.get("accepted"), "no trial"),
        )
        for u in sorted(updates, key=lambda u: (u["seed"], u["round"]))
    ]
    head = ["seed", "after round", "candidates", "mean reward", "trial loss, current policy",
            "trial loss, updated policy", "adopted"]
    return ("<h3>Policy updates of the loop agent</h3><p>Trial losses are on the validation "
            "half of the held-out text after one round of training on each policy's "
            "selection.</p>" + html_table(head, rows))


def curriculum_mix_plot(records: list[dict]) -> str | None:
    """Stage shares of the training tokens over the run of one arm (the loop arm's first seed
    if present): each round's phases in order, as the trainer read them."""
    with_mix = [r for r in records if r.get("phase_tokens") and r.get("schedule") != "uniform"]
    if not with_mix:
        return None
    rec = min(with_mix, key=lambda r: (r["arm"] != "loop", r.get("seed", 0)))
    cells = [np.asarray(p, float) for rnd in rec["phase_tokens"] for p in rnd]  # (stages,) each
    totals = np.array([c.sum() for c in cells])
    if totals.sum() == 0:
        return None
    shares = np.stack([c / max(c.sum(), 1) for c in cells], axis=1)  # (stages, segments)
    edges = np.concatenate([[0], np.cumsum(totals)]) / totals.sum()
    x = np.repeat(edges, 2)[1:-1]  # step shape: each segment holds its mix
    y = np.repeat(shares, 2, axis=1)
    k = shares.shape[0]
    names = ["easy", "medium", "hard"] if k == 3 else [f"stage {i}" for i in range(k)]
    n_rounds = len(rec["phase_tokens"])
    return stacked_area_chart(
        x, y, names,
        f"curriculum mix over training: arm '{rec['arm']}', seed {rec.get('seed', 0)}, "
        f"schedule '{rec.get('schedule')}' per round",
        "fraction of the arm's selected tokens, rounds in order", "token share",
        vlines=[b / n_rounds for b in range(1, n_rounds)])


def score_plots(path: Path) -> list[str]:
    """Histograms of each policy's scores over the pool, one line per pool label."""
    if not path.exists():
        return []
    import pyarrow.parquet as pq

    table = pq.read_table(path)
    # a natural pool has no labels: one histogram of all its documents
    labels = np.asarray([lab or "unlabelled" for lab in table["label"].to_pylist()], dtype=object)
    out = []
    for name in table.column_names:
        if name in ("doc_id", "label"):
            continue
        s = table[name].to_numpy(zero_copy_only=False).astype(float)
        lo, hi = np.nanmin(s), np.nanmax(s)
        edges = np.linspace(lo, hi if hi > lo else lo + 1, N_BINS + 1)
        counts = {str(lab): np.histogram(s[labels == lab], edges)[0] for lab in set(labels)}
        out.append(hist_chart(edges, counts, f"{name}: score per pool label", "score"))
    return out
