"""`curator loop` / `python -m jobs.loop`: the closed train-and-filter loop on Ray.

    curate the pool -> round-0 policy -> for each round:
        every (arm, seed) unit as a Ray task: score -> select -> stage -> export -> train -> eval
        every seed's loop agent as a Ray task: rewards from its new checkpoint -> policy update
    -> RUN/loop/result-<arm>-seed<k>.json per arm and seed, RUN/loop/summary.json, report.html

Resume: every unit ends with its `result.json`, every policy is written atomically; a re-run
skips what exists and recomputes only what is missing, and since each unit is a pure function
of its inputs the final results equal those of an uninterrupted run. Ray retries tasks whose
worker died (`max_retries`); a unit retried after a crash starts over in a clean directory.
"""

from __future__ import annotations

import json
import math
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from connectors.fs import atomic_open, write_text_atomic
from curator.config import ConfigError, check_or_record_config
from curator.loop.config import LoopConfig
from curator.loop.pool import LoopPool, curate_pool, load_loop_pool
from curator.loop.select import POLICY_ARMS
from curator.loop.unit import RESULT, run_unit, unit_dir
from curator.loop.update import update_policy, update_record
from curator.progress import phase, say
from curator.rundir import RunDir

if TYPE_CHECKING:
    from tqdm import tqdm

RETRIES = 2  # Ray re-runs a task whose worker process died (OOM, node loss)


def loop_dir(run: RunDir) -> Path:
    return run.root / "loop"


def policy_path(run: RunDir, arm: str, seed: int, rnd: int) -> Path:
    """The policy an arm scores with in round `rnd`."""
    if arm == "static" or rnd == 0:
        return loop_dir(run) / "policies" / "round-0.safetensors"
    return loop_dir(run) / "policies" / f"seed={seed}" / f"round-{rnd}.safetensors"


def initial_policy(cfg: LoopConfig, run: RunDir, pool: LoopPool) -> dict[str, Any]:
    """Round-0 policy: trained on the proxy environment over this pool, shipped, or given."""
    out = policy_path(run, "static", 0, 0)
    if out.exists():
        return {"skipped": True}
    t0 = time.perf_counter()
    if cfg.initial_policy == "train":
        from policies import reinforce
        from policies.pool import Pool

        # never the test half; a natural pool's target models fit on its target's fitting part
        proxy_pool = Pool(pool.texts, pool.labels if pool.labelled else None,
                          pool.validation_texts, pool.target_texts)
        agent = cfg.agent.model_copy(
            update={
                "output": str(out),
                "log_path": str(out.with_suffix(".metrics.jsonl")),
            }
        )
        reinforce.main(agent, pool=proxy_pool, tokenizer=run.tokenizer.read_bytes())
    else:
        from policies.checkpoint import DEFAULT_POLICY

        src = DEFAULT_POLICY if cfg.initial_policy == "default" else Path(cfg.initial_policy)
        with atomic_open(out) as f, open(src, "rb") as s:
            shutil.copyfileobj(s, f)
    return {"skipped": False, "seconds": time.perf_counter() - t0}


def remaining_after(results: list[dict], n_docs: int) -> np.ndarray:
    """Documents an arm has not trained on after the given rounds' results."""
    left = np.ones(n_docs, bool)
    for r in results:
        left[np.asarray(r["selected"], np.int64)] = False
    return left


def check_es_columns(cfg: LoopConfig, round0: Path) -> None:
    """update.algorithm=es shifts named feature columns of the loop policy: fail before any
    unit runs when the round-0 policy lacks one (its features are known only once it exists)."""
    if cfg.update.algorithm != "es" or "loop" not in cfg.arms or not cfg.update.steps:
        return
    from policies.checkpoint import load_policy
    from policies.es import column_indices

    try:
        column_indices(load_policy(str(round0)).spec.names, cfg.update.es.columns)
    except ValueError as e:
        raise ConfigError(f"update.{e}") from None


def _remote(fn: Callable[..., Any]) -> Any:
    """`fn` as a Ray remote function: one CPU, retried if its worker process dies."""
    import ray

    return ray.remote(num_cpus=1, max_retries=RETRIES, retry_exceptions=False)(fn)


def run_loop(cfg: LoopConfig) -> dict[str, Any]:
    """Run (or resume) the loop; returns the summary also written to RUN/loop/summary.json."""
    import ray

    from curator.output_place import check_output_place
    from curator.ray_runtime import ensure_ray

    cfg = cfg.model_copy(update={"output": check_output_place(cfg.output, cfg.ray)})  # first
    t_start = time.perf_counter()
    run = RunDir.at(cfg.output)
    run.root.mkdir(parents=True, exist_ok=True)
    check_or_record_config(cfg, loop_dir(run) / "config.yaml", "loop")
    wall: dict[str, float] = {}

    quiet = cfg.quiet
    t0 = time.perf_counter()
    what = ("read and curate the pool's inputs" if cfg.pool.source == "inputs"
            else f"build and curate a {cfg.pool.n_docs}-document pool")
    with phase("loop pool", what, quiet):
        curate_pool(cfg)  # starts or joins Ray; resumes a half-done curation
    wall["curate"] = time.perf_counter() - t0
    ensure_ray(cfg.ray)
    pool = load_loop_pool(run)
    if len(pool) == 0:
        raise ConfigError(f"the curated pool in {run.root} kept no documents; enlarge pool.n_docs")

    t0 = time.perf_counter()
    if cfg.needs_agent:
        with phase("round-0 policy", f"{cfg.initial_policy} over {len(pool)} kept documents",
                   quiet):
            ray.get(_remote(initial_policy).remote(cfg, run, pool))
        check_es_columns(cfg, policy_path(run, "static", 0, 0))
    wall["initial_policy"] = time.perf_counter() - t0

    pool_ref = ray.put(pool)
    features_ref = None
    if cfg.needs_agent:
        from curator.loop.select import pool_features

        features_ref = _remote(pool_features).remote(
            str(policy_path(run, "static", 0, 0)), pool.texts
        )
    unit_task = _remote(run_unit)
    update_task = _remote(update_policy)
    results: dict[tuple[str, int], list[dict]] = {(a, s): [] for a in cfg.arms for s in cfg.seeds}
    updates: list[dict] = []
    unit_seconds: dict[str, float] = {}
    progress = _progress(cfg, len(cfg.arms) * len(cfg.seeds) * cfg.rounds)
    for rnd in range(cfg.rounds):
        # 1. every arm and seed trains its round (in parallel on the cluster)
        t0 = time.perf_counter()
        say(f"> round {rnd + 1}/{cfg.rounds}: arms {', '.join(cfg.arms)} x seeds "
            f"{list(cfg.seeds)} select, train and evaluate", quiet)
        pending = {}
        for (arm, seed), done in results.items():
            out = unit_dir(run.root, rnd, arm, seed)
            if (out / RESULT).exists():
                done.append(json.loads((out / RESULT).read_text()))
                progress.update(1)
                continue
            prev = unit_dir(run.root, rnd - 1, arm, seed) / "model" if rnd else None
            pol = str(policy_path(run, arm, seed, rnd)) if arm in POLICY_ARMS else None
            left = remaining_after(done, len(pool))
            pending[(arm, seed)] = unit_task.remote(
                cfg, pool_ref, arm, seed, rnd, pol, prev, left, out, features_ref
            )
        for key, ref in pending.items():
            results[key].append(ray.get(ref))
            progress.update(1)
        for (_arm, _seed), done in results.items():
            for name, sec in done[-1]["seconds"].items():
                unit_seconds[name] = unit_seconds.get(name, 0.0) + sec
        wall[f"round_{rnd}_units"] = time.perf_counter() - t0

        # 2. the loop agent learns from its own new checkpoint (rewards) before the next round
        t0 = time.perf_counter()
        if "loop" in cfg.arms and rnd + 1 < cfg.rounds:
            say(f"> round {rnd + 1}/{cfg.rounds}: the loop agent's policy update (rewards from "
                "its new checkpoint, a trial round)", quiet)
            refs = []
            for seed in cfg.seeds:
                out = policy_path(run, "loop", seed, rnd + 1)
                if out.exists():  # done before a kill: its record says what the update did
                    updates.append(json.loads(update_record(out).read_text()))
                    continue
                refs.append(
                    update_task.remote(
                        cfg,
                        pool_ref,
                        seed,
                        rnd,
                        str(policy_path(run, "loop", seed, rnd)),
                        unit_dir(run.root, rnd, "loop", seed) / "model",
                        remaining_after(results[("loop", seed)], len(pool)),
                        out,
                        features_ref,
                    )
                )
            updates += ray.get(refs)
        wall[f"round_{rnd}_update"] = time.perf_counter() - t0
    progress.close()

    write_results(cfg, run, pool, results)
    if cfg.needs_agent:
        write_scores(cfg, run, pool, ray.get(features_ref))
    summary = summarize(cfg, run, pool, results, updates, wall, unit_seconds)
    summary["wall_s"] = time.perf_counter() - t_start
    write_text_atomic(json.dumps(summary, indent=1), loop_dir(run) / "summary.json")
    from curator.report import write_report

    write_report(run, schedule=cfg.schedule if cfg.n_stages == 3 else "linear")
    return summary


def update_choice(update: dict) -> str:
    """What one policy update (its record, curator/loop/update.py) made the next round's loop
    policy: "current" (the policy it had, kept) or the choice it adopted ("proposed",
    "signal <w>")."""
    if update.get("skipped"):
        return "current"
    if "chosen" in update:  # the trial round's verdict
        return str(update["chosen"])
    # no trial round: a proposal that ran is adopted untested (records before "proposal"
    # existed say so by REINFORCE's mean reward)
    return "proposed" if _proposal_ran(update) else "current"


def _proposal_ran(update: dict) -> bool:
    """Whether the update trained a proposal (older records: it has REINFORCE's mean reward,
    or a trial judged it)."""
    if update.get("skipped"):
        return False
    if "proposal" in update:
        return bool(update["proposal"])
    reward = update.get("mean_reward")
    return "chosen" in update or (reward is not None and math.isfinite(reward))


def loop_arm_verdict(updates: list[dict], with_static_arm: bool = True) -> str:
    """One console line saying whether the loop arm ever left the static (round-0) policy. If
    every update kept "current", it scored with the round-0 policy in every round, so it
    selected exactly what the static arm selected: the loop comparison measured nothing."""
    if not updates:
        return "loop arm: no policy update ran (one round): it used the static policy"
    ordered = sorted(updates, key=lambda u: (u["seed"], u["round"]))
    adopted = [(u, c) for u in ordered if (c := update_choice(u)) != "current"]
    if not adopted:
        same = ("its selection equals the static arm's" if with_static_arm
                else "it selected with the round-0 policy throughout")
        every = f"all {len(updates)} updates" if len(updates) > 1 else "its one update"
        return f"loop arm: kept the static policy in {every} ({same})"
    what = "; ".join(f"seed {u['seed']} after round {u['round']}: {c}" for u, c in adopted)
    rate = proposal_adoption(updates)
    if rate["proposals"]:
        what += (f"; {rate['algorithm']} proposals adopted {rate['adopted']} of "
                 f"{rate['proposals']}")
    rest = "; the others kept the policy they had" if len(adopted) < len(updates) else ""
    n = f"{len(adopted)} of {len(updates)}"
    return f"loop arm: adopted a new policy in {n} updates ({what}){rest}"


def _progress(cfg: LoopConfig, total: int) -> tqdm:
    from tqdm import tqdm

    return tqdm(total=total, desc="loop units", disable=cfg.quiet, unit="unit")


def write_results(
    cfg: LoopConfig, run: RunDir, pool: LoopPool, results: dict[tuple[str, int], list[dict]]
) -> None:
    """RUN/loop/result-<arm>-seed<k>.json: the curve the report plots, plus per-round facts."""
    for (arm, seed), rounds in results.items():
        curve = [p for r in rounds for p in r["curve"]]
        rec = {
            "arm": arm,
            "seed": seed,
            "tokens": [int(t) for t, _ in curve],
            "heldout_loss": [float(v) for _, v in curve],
            "junk_share_tokens": [r["junk_share_tokens"] for r in rounds],
            "docs": [r["docs"] for r in rounds],
            "phase_tokens": [r["plan"]["phase_tokens"] for r in rounds],
            "schedule": "uniform" if arm == "loop_uniform" else cfg.schedule,
        }
        write_text_atomic(json.dumps(rec), loop_dir(run) / f"result-{arm}-seed{seed}.json")


def write_scores(cfg: LoopConfig, run: RunDir, pool: LoopPool, raw: np.ndarray) -> None:
    """RUN/loop/scores.parquet: the round-0 policy's and the first seed's last loop policy's
    score of every pool document, with its label (the report's score histograms)."""
    import pyarrow as pa

    from connectors.fs import write_parquet_atomic
    from policies.scorer import PolicyScorer

    cols = {"doc_id": pool.doc_ids, "label": pool.labels}
    policies = {"round-0 policy": policy_path(run, "static", 0, 0)}
    if "loop" in cfg.arms:
        seed = cfg.seeds[0]
        policies[f"loop policy, round {cfg.rounds - 1}, seed {seed}"] = policy_path(
            run, "loop", seed, cfg.rounds - 1
        )
    for name, path in policies.items():
        cols[name] = pa.array(PolicyScorer(str(path)).score_features(raw).astype(np.float64))
    write_parquet_atomic(pa.table(cols), loop_dir(run) / "scores.parquet")


def summarize(
    cfg: LoopConfig,
    run: RunDir,
    pool: LoopPool,
    results: dict[tuple[str, int], list[dict]],
    updates: list[dict],
    wall: dict[str, float],
    unit_seconds: dict[str, float],
) -> dict[str, Any]:
    from curator.loop.report import load_loop_results, loop_summary

    target, rows = loop_summary(load_loop_results(loop_dir(run)))
    per_arm = {}
    for arm in cfg.arms:
        finals = [results[(arm, s)][-1]["curve"][-1][1] for s in cfg.seeds]
        junk = ([np.mean([r["junk_share_tokens"] for r in results[(arm, s)]]) for s in cfg.seeds]
                if pool.labelled else None)
        per_arm[arm] = {"final_loss_per_seed": finals,
                        "junk_share_tokens": float(np.mean(junk)) if junk else None}
    return {
        "pool_docs": len(pool),
        "pool_tokens": int(pool.n_tokens.sum()),
        "pool_junk_share": float(pool.is_junk.mean()) if pool.is_junk is not None else None,
        "rounds": cfg.rounds,
        "round_tokens": cfg.round_tokens,
        "tokens_per_round_trained": cfg.steps_per_round * cfg.model.seq_len * cfg.model.batch_size,
        "seeds": cfg.seeds,
        "target_loss": target,
        "arms": rows,
        "per_arm": per_arm,
        "wall_by_phase_s": wall,
        "unit_seconds_by_stage": unit_seconds,
        "updates": [{k: v for k, v in u.items() if k != "episodic_returns"} for u in updates],
        "proposal_adoption": proposal_adoption(updates),
    }


def proposal_adoption(updates: list[dict]) -> dict[str, Any]:
    """How often the loop adopted its own learning: the proposals (REINFORCE or ES) its updates
    made and how many became the next round's policy, and what the other updates chose."""
    ran = [u for u in updates if _proposal_ran(u)]
    choices = [update_choice(u) for u in ran]
    adopted = choices.count("proposed")
    # records before update.algorithm existed were REINFORCE's
    algorithms = sorted({u.get("algorithm", "reinforce") for u in ran})
    return {"algorithm": " + ".join(a.upper() if a == "es" else "REINFORCE" for a in algorithms),
            "proposals": len(ran), "adopted": adopted,
            "rate": adopted / len(ran) if ran else None,
            "other_choices": {c: choices.count(c) for c in sorted(set(choices)) if
                              c != "proposed"}}
