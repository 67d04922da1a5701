"""Closed loop vs static agent vs random vs heuristic rules, and curriculum vs uniform order.

    .venv/bin/python -m benchmarks.closed_loop --config configs/loop_corpora.yaml

Runs `curator loop` (curator/loop/driver.py) with the given config -- by default the
selection-quality pool of the agent issue at 50% noise, 4 rounds x 32K tokens, 5 paired seeds --
then reads RUN/loop/ and writes benchmarks/results/closed_loop.md:
- per arm: final held-out (test split) loss, mean and sd over seeds; tokens to reach random's
  final loss of the same seed (linear interpolation between evaluations; "> B" if never);
  junk share of the selected tokens;
- paired differences per seed: loop vs static, random, heuristic; loop vs loop_uniform (the
  curriculum ablation: the same documents, schedule order vs a global shuffle), with the
  population and sample sd, the paired t and an exact sign-flip p (benchmarks/paired_stats.py);
- wall time by stage, summed over all units and seeds.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.paired_stats import paired_t, sign_flip_p  # noqa: E402
from curator.loop.config import LoopConfig, load_loop_config  # noqa: E402
from curator.loop.driver import run_loop  # noqa: E402
from policies.natural_corpus import write_loop_inputs  # noqa: E402
from policies.train_default import add_data_args, natural_data  # noqa: E402

RESULTS = Path(__file__).parent / "results" / "closed_loop.md"
TITLE = "Closed loop: agent updated each round vs static agent vs baselines (CPU)"


def update_line(cfg: LoopConfig) -> str:
    """What the loop's proposal trains, per round."""
    u = cfg.update
    if u.algorithm == "es":
        episode = (f"{u.env.episode_steps} env steps" if u.es_return == "episode" else
                   "one trial round on the ranking's next selection (validation loss)")
        return (f"ES on the linear weights of {', '.join(u.es.columns)} ({u.es.iterations} "
                f"iterations x {u.es.pairs} antithetic pairs x 2 episodes, each {episode}, per "
                f"round, sigma {u.es.sigma:g} and step {u.es.step:g} in logit spreads, the last "
                f"weights proposed; the final trial reads each choice in {u.trial_orders} "
                f"order(s))")
    return (f"{u.steps} REINFORCE env steps per round, {u.samples_per_step} masks scored per "
            "step (leave-one-out baseline)")


def tokens_to_reach(tokens: list[int], losses: list[float], target: float) -> float:
    """First token count at which the linearly interpolated curve reaches target; inf if not."""
    for i in range(1, len(tokens)):
        t0, l0, t1, l1 = tokens[i - 1], losses[i - 1], tokens[i], losses[i]
        if l1 <= target:
            if l0 <= target:
                return float(t0)
            return t0 + (t1 - t0) * (l0 - target) / max(l0 - l1, 1e-12)
    return float("inf")


def load(loop: Path, arms: list[str], seeds: list[int], draw: int) -> dict[tuple, dict]:
    """Results by (arm, (draw, seed)): a pair is one pool draw and one seed."""
    return {
        (a, (draw, s)): json.loads((loop / f"result-{a}-seed{s}.json").read_text())
        for a in arms
        for s in seeds
    }


def pair_label(pair: tuple[int, int], draws: int) -> str:
    return f"draw {pair[0]} seed {pair[1]}" if draws > 1 else str(pair[1])


def merge(summaries: list[dict]) -> dict:
    """One summary over the draws: pool figures as ranges, updates with their draw, seconds
    summed (draws run one after another)."""

    def span(key: str, fmt: str) -> str:
        v = [x[key] for x in summaries]
        if any(x is None for x in v):  # pool_junk_share of a natural (unlabelled) pool
            return "n/a (unlabelled pool)"
        return format(min(v), fmt) + ("" if min(v) == max(v) else "-" + format(max(v), fmt))

    walls: dict[str, float] = {}
    stages: dict[str, float] = {}
    for x in summaries:
        for k, v in x["wall_by_phase_s"].items():
            walls[k] = walls.get(k, 0.0) + v
        for k, v in x["unit_seconds_by_stage"].items():
            stages[k] = stages.get(k, 0.0) + v
    return {
        "pool_docs": span("pool_docs", "d"),
        "pool_tokens": span("pool_tokens", ",d"),
        "pool_junk_share": span("pool_junk_share", ".2f"),
        "tokens_per_round_trained": summaries[0]["tokens_per_round_trained"],
        "updates": [{**u, "seed": pair_label((k, u["seed"]), len(summaries))}
                    for k, x in enumerate(summaries) for u in x["updates"]],
        "wall_by_phase_s": walls,
        "unit_seconds_by_stage": stages,
        "wall_s": sum(x.get("wall_s", 0.0) for x in summaries),
    }


def trial_line(summary: dict) -> str:
    """What the trial rounds chose, and each choice's validation loss against the current's."""
    trials = [u for u in summary["updates"] if "accepted" in u]
    if not trials:
        return "no update reached it"
    if "trial_losses" not in trials[0]:  # a run from before the signal weights
        gain = [u["trial_loss_current"] - u["trial_loss_proposed"] for u in trials]
        return (f"{sum(u['accepted'] for u in trials)} of {len(trials)} updates adopted "
                f"(validation loss of the proposed minus the current policy's selection: mean "
                f"{-np.mean(gain):+.4f}, range {-max(gain):+.4f} to {-min(gain):+.4f})")
    names = sorted({k for u in trials for k in u["trial_losses"]})
    chosen = {n: sum(u["chosen"] == n for u in trials) for n in names}
    delta = {n: [u["trial_losses"][n] - u["trial_losses"]["current"] for u in trials
                 if n in u["trial_losses"]] for n in names if n != "current"}
    return (f"{len(trials)} updates; chosen: "
            + ", ".join(f"{n} {c}" for n, c in chosen.items())
            + "; validation loss of each choice's selection minus the current policy's (mean): "
            + ", ".join(f"{n} {np.mean(d):+.4f}" for n, d in delta.items()))


def choice_table(summary: dict) -> list[str]:
    """The loop policy's trial choice after every round, per seed."""
    trials = [u for u in summary["updates"] if "chosen" in u]
    if not trials:
        return []
    rounds = sorted({u["round"] for u in trials})
    seeds = list(dict.fromkeys(u["seed"] for u in trials))
    got = {(u["seed"], u["round"]): u["chosen"] for u in trials}
    return [
        "",
        "The loop policy's trial choice after each round (the next round ranks by it):",
        "",
        "| seed | " + " | ".join(f"after round {r}" for r in rounds) + " |",
        "|---|" + "---|" * len(rounds),
        *[f"| {s} | " + " | ".join(got.get((s, r), "-") for r in rounds) + " |" for s in seeds],
    ]


def table(cfg, res: dict, summary: dict, command: str, wall: float, draws: int,
          title: str = TITLE) -> list[str]:
    arms = cfg.arms
    seeds = [(d, s) for d in range(draws) for s in cfg.seeds]  # the paired units of comparison
    budget = res[(arms[0], seeds[0])]["tokens"][-1]
    final = {a: np.array([res[(a, s)]["heldout_loss"][-1] for s in seeds]) for a in arms}
    pairs = (f"{len(seeds)} pairs ({draws} pool draws, pool.seed {cfg.pool.seed} to "
             f"{cfg.pool.seed + draws - 1}, x seeds {cfg.seeds}; every arm of a pair shares its "
             "pool, round-0 policy and init)" if draws > 1 else
             f"{len(seeds)} paired seeds (same init per seed for every arm)")
    lines = [
        f"## {title}",
        "",
        f"Command (repo root): `{command}`",
        "",
        f"Pool: {summary['pool_docs']} documents after curate ({summary['pool_tokens']} tokens,"
        f" junk share {summary['pool_junk_share']}); {cfg.rounds} rounds x "
        f"{summary['tokens_per_round_trained']:,} training tokens per arm (B = {budget:,}); "
        f"tiny DSA GPT ({cfg.model.n_layer} layers, d={cfg.model.d_model}, seq {cfg.model.seq_len})"
        f", one cosine schedule over the whole loop, fully decayed at B; curriculum schedule "
        f"'{cfg.schedule}' by {cfg.difficulty}; {pairs}. Loop update: {update_line(cfg)}, "
        f"against the loop arm's own checkpoint (validation half of the held-out text; the "
        f"reported loss is on the test half); candidates: "
        + (f"the best-ranked remaining documents ({cfg.update.candidate_rounds:g} rounds' "
           "tokens)" if cfg.update.candidate_rounds else "all remaining documents")
        + (f"; {cfg.update.signal} weights tried: {cfg.update.signal_weights}"
           if cfg.update.signal_weights else "")
        + (f"; trial round before adoption: {trial_line(summary)}" if cfg.update.trial_round
           else "")
        + f". Wall time {wall / 60:.1f} min on a shared 2-core CPU.",
        "",
        "| arm | final loss (mean ± sd) | tokens to reach random's final loss | seeds reaching "
        "| junk share of selected tokens |",
        "|---|---|---|---|---|",
    ]
    for a in arms:
        reach = []
        for s in seeds:
            r = res[(a, s)]
            reach.append(
                tokens_to_reach(
                    r["tokens"], r["heldout_loss"], res[("random", s)]["heldout_loss"][-1]
                )
                if "random" in arms
                else float("nan")
            )
        ok = [t for t in reach if np.isfinite(t)]
        shares = [v for s in seeds for v in res[(a, s)]["junk_share_tokens"]]
        junk = "n/a" if None in shares else f"{np.mean(shares):.2f}"
        shown = f"{np.mean(ok) / budget:.2f} B" if ok else "> B"
        lines.append(
            f"| {a} | {final[a].mean():.4f} ± {final[a].std():.4f} | {shown} | "
            f"{len(ok)}/{len(seeds)} | {junk} |"
        )
    lines += [
        "",
        "Paired differences of final loss (negative = the first arm is better):",
        "",
        "| comparison | mean diff | sd | sample sd | paired t | sign-flip p | seeds where first "
        "is better |",
        "|---|---|---|---|---|---|---|",
    ]
    pairs = [("loop", b) for b in ("static", "random", "heuristic", "loop_uniform")]
    for a, b in pairs:
        if a in arms and b in arms:
            d = final[a] - final[b]
            lines.append(
                f"| {a} - {b} | {d.mean():+.4f} | {d.std():.4f} | {d.std(ddof=1):.4f} | "
                f"{paired_t(d):+.2f} | {sign_flip_p(d):.3f} | {int((d < 0).sum())}/{len(seeds)} |"
            )
    lines += choice_table(summary)
    stage = summary["unit_seconds_by_stage"]
    phases = summary["wall_by_phase_s"]
    upd = sum(v for k, v in phases.items() if k.endswith("_update"))
    units = sum(v for k, v in phases.items() if k.endswith("_units"))
    lines += [
        "",
        "Wall time by stage (unit stages are summed over all arms, seeds and rounds; units "
        "run in parallel on the cluster, so they add up to more than their phase's wall time):",
        "",
        "| stage | seconds |",
        "|---|---|",
        f"| curate the pool (normalize, dedup, tokenizer, shards) | {phases['curate']:.1f} |",
        f"| round-0 policy (initial_policy: {cfg.initial_policy}) "
        f"| {phases['initial_policy']:.1f} |",
        *[f"| unit: {k} | {v:.1f} |" for k, v in stage.items()],
        f"| all units (wall) | {units:.1f} |",
        f"| loop policy updates (wall) | {upd:.1f} |",
        f"| total (wall) | {wall:.1f} |",
    ]
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default="configs/loop_corpora.yaml")
    ap.add_argument("--set", dest="overrides", action="append", default=[])
    ap.add_argument("--out", default=str(RESULTS))
    ap.add_argument("--title", default=TITLE, help="the results section's heading")
    ap.add_argument("--draws", type=int, default=1,
                    help="pool draws (pool.seed, pool.seed+1, ...), each a loop of its own "
                    "under OUTPUT/draw-K with every seed; pairs = draws x seeds")
    ap.add_argument("--natural", default=None, metavar="DIR",
                    help="first write the natural setup's loop inputs (pool.jsonl: the "
                    "selection half of the natural pool; target.jsonl: the target's evaluation "
                    "part) into DIR, as configs/loop_natural.yaml reads them")
    add_data_args(ap)
    args = ap.parse_args()
    if args.natural:
        write_loop_inputs(natural_data(args, Path(args.natural) / "work"), Path(args.natural))
    cfg = load_loop_config(args.config, args.overrides)
    t0 = time.time()
    summaries, res = [], {}
    for k in range(args.draws):
        run_cfg = cfg if args.draws == 1 else cfg.model_copy(update={
            "output": str(Path(cfg.output) / f"draw-{k}"),
            "pool": cfg.pool.model_copy(update={"seed": cfg.pool.seed + k})})
        summaries.append(run_loop(run_cfg))
        res.update(load(Path(run_cfg.output) / "loop", cfg.arms, cfg.seeds, k))
    summary = merge(summaries)
    wall = time.time() - t0
    command = "python -m benchmarks.closed_loop " + " ".join(sys.argv[1:])
    lines = table(cfg, res, summary, command.strip(), summary.get("wall_s", wall), args.draws,
                  args.title)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
