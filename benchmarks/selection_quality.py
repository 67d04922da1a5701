"""Selection quality of the RL agent vs baselines: data efficiency and junk discovery.

    .venv/bin/python benchmarks/selection_quality.py --corpora ../shared/corpora \
        --noise 0 0.25 0.5 --seeds 3 --budget 60000

For each noise rate and paired seed: a pool (policies/pool.py: book chunks + English web
articles as clean; page boilerplate, WARC spam, non-English articles and labelled corruptions as
junk; by default each seed has its own draw, `--pool-draws`), a clean held-out split never in
the pool, and a clean reference split (the "target" the DSIR / classifier /
perplexity-band baselines may look at). Every method ranks the pool; the top-ranked documents
up to budget*f tokens (f = 1/4, 1/2, 1) train the tiny DSA model from the same seeded init on
the same seeded batch order, cosine LR fully decayed at the end of every run; held-out loss is
measured at the end. "Tokens to reach random" interpolates (linearly in loss between budget
points) the tokens a method needs to match random selection's loss at the full budget.

The agent is trained once (REINFORCE, proxy env, on its own pool draw at 50% noise) and scored
with PolicyScorer; its training time and the scorer's docs/s on one core are reported.
Results go to benchmarks/results/selection_quality.md.
"""

from __future__ import annotations

import argparse
import collections
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import sentencepiece as spm
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.paired_stats import auc  # noqa: E402
from curator.config import TokenizerConfig  # noqa: E402
from curator.stages.dedup_memory import near_duplicate_copies  # noqa: E402
from curator.tokenizer_train import train_tokenizer  # noqa: E402
from curator.trainer.engine import evaluate, per_document_loss  # noqa: E402
from curator.trainer.fit import fit_tokens  # noqa: E402
from policies import baselines as bl  # noqa: E402
from policies import reinforce  # noqa: E402
from policies.config import AgentConfig, EnvConfig, PoolConfig  # noqa: E402
from policies.pool import Pool, Sources, build_pool, corpora_sources  # noqa: E402
from policies.reward import TrainerLearner, TrainerSpec  # noqa: E402
from policies.scorer import PolicyScorer  # noqa: E402

FRACTIONS = (0.25, 0.5, 1.0)
AGENT = "agent (RL, REINFORCE)"
RESULTS = Path(__file__).parent / "results" / "selection_quality.md"
NEAR_DUP_NOTE = "MinHash LSH, 3-word shingles, 20x5 bands, signature Jaccard >= 0.6"


def train_eval(
    docs: list[np.ndarray],
    keep: np.ndarray,
    budget: int,
    heldout: np.ndarray,
    vocab: int,
    seed: int,
) -> float:
    """Tiny DSA GPT from seed, exactly `budget` tokens of the kept docs, LR fully decayed."""
    learner = TrainerLearner(
        vocab, heldout, budget, episode_steps=1, spec=TrainerSpec(eval_batches=8)
    )
    learner.reset(seed)
    stream = np.concatenate([docs[i] for i in np.flatnonzero(keep)])
    cfg = learner.cfg
    n_steps = max(1, budget // cfg.tokens_per_step())
    # a selection short of budget repeats (fit_tokens cuts or cycles to exactly n_steps' tokens)
    fit_tokens(learner.model, learner.optimizer, stream, cfg, n_steps, total_steps=n_steps,
               seed=seed, order="shuffled")
    return evaluate(learner.model, learner.heldout, cfg.batch_size * 2, 8)


def reference_model_losses(
    pool_docs: list[np.ndarray],
    ref_docs: list[np.ndarray],
    heldout: np.ndarray,
    vocab: int,
    budget: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Per-doc losses under a small model trained on a random pool sample (perplexity band)."""
    learner = TrainerLearner(vocab, heldout, budget, episode_steps=1)
    learner.reset(12345)
    rng = np.random.default_rng(12345)
    keep = bl.select_by_score(
        rng.random(len(pool_docs)), np.array([len(d) for d in pool_docs]), budget
    )
    stream = np.concatenate([pool_docs[i] for i in np.flatnonzero(keep)])
    learner.train(stream, 0, 12345)
    return (
        per_document_loss(learner.model, pool_docs, batch_size=16),
        per_document_loss(learner.model, ref_docs, batch_size=16),
    )


def tokens_to_reach(losses: dict[float, float], target: float, budget: int) -> float:
    """Smallest tokens at which the loss curve (fractions of budget) reaches target; inf if not."""
    pts = sorted(losses.items())
    if pts[0][1] <= target:
        return pts[0][0] * budget
    for (f0, l0), (f1, l1) in zip(pts, pts[1:], strict=False):
        if l1 <= target:
            return budget * (f0 + (f1 - f0) * (l0 - target) / max(l0 - l1, 1e-12))
    return float("inf")


def prec_recall(dropped: np.ndarray, junk: np.ndarray) -> tuple[float, float]:
    p = float(junk[dropped].mean()) if dropped.any() else float("nan")
    r = float(dropped[junk].mean()) if junk.any() else float("nan")
    return p, r


def split_reference(sources: Sources, n_ref: int, seed: int) -> tuple[Sources, list[str]]:
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(sources.clean))
    ref = [sources.clean[i] for i in order[:n_ref]]
    rest = [sources.clean[i] for i in order[n_ref:]]
    return Sources(rest, sources.junk), ref


def benchmark_data(corpora: str) -> tuple[Sources, list[str], bytes]:
    """(pool sources, the 60-document clean reference the target-aware baselines see, the
    benchmark's sentencepiece model) -- the same for every run of this benchmark."""
    sources, reference = split_reference(corpora_sources(corpora), 60, seed=999)
    with tempfile.TemporaryDirectory() as tmp:
        tok_path = train_tokenizer(
            sources.clean[:2000], TokenizerConfig(vocab_size=2048), Path(tmp) / "tok.model"
        )
        return sources, reference, tok_path.read_bytes()


def agent_config(corpora: str, output: str, overrides: list[str]) -> AgentConfig:
    """The benchmark's agent: REINFORCE in the proxy environment on its own 50%-noise pool
    draw (`agent_pool`); `overrides`: `--set` strings of AgentConfig fields."""
    from curator.config import load_model

    base = AgentConfig(
        algorithm="reinforce",
        output=output,
        total_steps=1500,
        seed=0,
        target_dim=4096,
        env=EnvConfig(learner="proxy", docs_per_step=32, step_tokens=4096, episode_steps=16),
        pool=PoolConfig(source="corpora", corpora_dir=corpora, n_docs=1200, noise=0.5, seed=100),
    ).model_dump(mode="json")
    cfg = load_model(AgentConfig, None, overrides, base=base)
    assert isinstance(cfg, AgentConfig)
    return cfg


def deduplicated(pool: Pool, dedup: bool) -> Pool:
    """The pool after near-duplicate removal (curate's order: dedup, then quality scoring)."""
    return pool.without(near_duplicate_copies(pool.texts)) if dedup else pool


def agent_pool(sources: Sources, dedup: bool = True) -> Pool:
    """The agent's training pool (as `agent_config`'s pool section says), deduplicated like
    the pools it is evaluated on."""
    return deduplicated(build_pool(sources, 1200, 0.5, seed=100, heldout_docs=60), dedup)


def eval_pool(sources: Sources, sp: spm.SentencePieceProcessor, noise: float, n_docs: int,
              dedup: bool = True, draw: int = 1) -> tuple[Pool, list[np.ndarray], np.ndarray]:
    """An evaluation pool at `noise` (draw seed `draw`, never the agent's draw 100; `n_docs`
    before dedup), its documents' token ids (EOS appended) and its clean held-out stream."""
    pool = deduplicated(build_pool(sources, n_docs, noise, seed=draw, heldout_docs=50), dedup)
    docs = [np.asarray(d, np.int64) for d in sp.EncodeAsNumpy(pool.texts.to_pylist(), add_eos=True)]
    heldout = np.concatenate(sp.EncodeAsNumpy(pool.heldout, add_eos=True)).astype(np.int64)
    return pool, docs, heldout


def removed_by_label(sources: Sources, noise: float, n_docs: int, draw: int = 1
                     ) -> dict[str, int]:
    """What near-duplicate removal takes out of `eval_pool`'s pool, counted by label."""
    pool = build_pool(sources, n_docs, noise, seed=draw, heldout_docs=50)
    labels = np.asarray(pool.labels.to_pylist())[near_duplicate_copies(pool.texts)]
    return dict(sorted(collections.Counter(labels.tolist()).items()))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--corpora", default="../shared/corpora")
    ap.add_argument("--noise", type=float, nargs="+", default=[0.0, 0.25, 0.5])
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--budget", type=int, default=60_000, help="tokens at the full budget")
    ap.add_argument("--pool-docs", type=int, default=600)
    ap.add_argument("--agent-steps", type=int, default=1500)
    ap.add_argument("--target-dim", type=int, default=4096,
                    help="agent's target-aware features (0 = off, as the shipped default policy)")
    ap.add_argument("--dedup", action=argparse.BooleanOptionalAction, default=True,
                    help="remove near-duplicate copies from every pool first, as curate does "
                    "before scoring (curator/stages/dedup_memory.py)")
    ap.add_argument("--pool-draws", choices=["per-seed", "one"], default="per-seed",
                    help="per-seed: seed k evaluates on its own pool draw (draw seed k+1: its "
                    "own candidates, corruptions and held-out text), so the spread includes "
                    "the data; one: every seed on draw 1 (only init and batch order vary)")
    ap.add_argument("--out", default=str(RESULTS))
    args = ap.parse_args()
    torch.set_num_threads(1)  # shared machine; also makes "per core" numbers honest
    t_start = time.time()

    sources, reference, tokenizer = benchmark_data(args.corpora)

    # 1. train the agent once, on its own pool draw at 50% noise (`curator agent train` path)
    agent_cfg = agent_config(
        args.corpora,
        str(Path(tempfile.gettempdir()) / "sq_agent.safetensors"),
        [f"total_steps={args.agent_steps}", f"target_dim={args.target_dim}"],
    )
    train_pool = agent_pool(sources, args.dedup)
    agent_summary = reinforce.main(agent_cfg, pool=train_pool, tokenizer=tokenizer)
    agent_train_s = agent_summary["setup_s"] + agent_summary["train_s"]
    agent = PolicyScorer(agent_cfg.output)
    default = PolicyScorer(None)
    sp = spm.SentencePieceProcessor(model_proto=tokenizer)
    vocab = sp.get_piece_size()

    rows, pr_rows, speed, removed = [], [], {}, {}
    ref_docs = [np.asarray(d, np.int64) for d in sp.EncodeAsNumpy(reference, add_eos=True)]
    ref_arr = pa.array(reference, pa.string())
    for noise in args.noise:
        removed[noise] = collections.Counter()
        draws = {seed: seed + 1 if args.pool_draws == "per-seed" else 1
                 for seed in range(args.seeds)}
        for draw in sorted(set(draws.values())):
            pool, docs, heldout = eval_pool(sources, sp, noise, args.pool_docs, args.dedup, draw)
            if args.dedup:
                removed[noise].update(removed_by_label(sources, noise, args.pool_docs, draw))
            n_tok = np.array([len(d) for d in docs])
            junk = pool.is_junk

            t0 = time.time()
            agent_scores, _ = agent.score_texts(pool.texts)
            speed.setdefault(noise, len(pool) / (time.time() - t0))
            pool_loss, ref_loss = reference_model_losses(docs, ref_docs, heldout, vocab,
                                                         args.budget)
            scores = {
                AGENT: agent_scores.astype(np.float64),
                "default policy": default.score_texts(pool.texts)[0].astype(np.float64),
                "heuristic rules": bl.heuristic_scores(pool.texts),
                "perplexity band": bl.perplexity_band_scores(pool_loss, ref_loss),
                "n-gram classifier": bl.ngram_classifier_scores(pool.texts, ref_arr),
                "DSIR": bl.dsir_scores(pool.texts, ref_arr),
            }
            pr_rows += junk_rows(noise, draw, scores, junk, scores["heuristic rules"])
            for seed in (k for k, d in draws.items() if d == draw):
                per_seed = dict(scores)
                per_seed["random"] = bl.random_scores(len(pool), seed)
                per_seed[bl.CLEAN_FIRST] = bl.clean_first_scores(junk, seed)
                for name, s in per_seed.items():
                    curve = {}
                    for f in FRACTIONS:
                        keep = bl.select_by_score(s, n_tok, int(f * args.budget))
                        curve[f] = train_eval(docs, keep, int(f * args.budget), heldout, vocab,
                                              seed)
                    sel = bl.select_by_score(s, n_tok, args.budget)
                    rows.append(
                        {
                            "noise": noise,
                            "seed": seed,
                            "draw": draw,
                            "method": name,
                            "curve": curve,
                            "junk_tokens": float(n_tok[sel & junk].sum() / n_tok[sel].sum()),
                        }
                    )
                    print(json.dumps(rows[-1]), flush=True)
        removed[noise] = dict(sorted(removed[noise].items()))
    write_results(args, removed, rows, pr_rows, speed, agent_train_s, time.time() - t_start)


def junk_rows(noise: float, draw: int, scores: dict[str, np.ndarray], junk: np.ndarray,
              heuristic: np.ndarray) -> list[dict]:
    """AUC and precision/recall of each method's drops on one pool draw."""
    out = []
    for name, s in scores.items():
        if "policy" in name or "agent" in name:
            cut = 0.0  # the policies' own decision: keep logit < 0
        else:
            cut = np.quantile(s, noise) if noise else -np.inf
        p, r = prec_recall(s < cut, junk)
        out.append({"noise": noise, "draw": draw, "method": name, "auc": auc(s, ~junk),
                    "precision": p, "recall": r})
    hp, hr = prec_recall(heuristic < 5.0, junk)
    out.append({"noise": noise, "draw": draw, "method": "heuristic rules (own decisions)",
                "auc": float("nan"), "precision": hp, "recall": hr})
    return out


def paired_lines(rows: list[dict], noises: list[float], first: str = AGENT) -> list[str]:
    """Per-seed differences of loss@B, `first` minus every other method (negative = `first`
    better): paired seeds share init and batch order, so this is the comparison that counts."""
    lines = [
        f"## Paired differences at B: {first} minus each method",
        "",
        "Negative = the agent ends lower. Same seed = same pool draw, init and batch order "
        "for both.",
        "",
        "| noise | method | mean diff | sd | seeds where the agent is better |",
        "|---|---|---|---|---|",
    ]
    for noise in noises:
        final = {
            (r["method"], r["seed"]): r["curve"][1.0] for r in rows if r["noise"] == noise
        }
        seeds = sorted({s for m, s in final if m == first})
        for m in dict.fromkeys(m for m, _ in final):
            if m == first:
                continue
            d = np.array([final[(first, s)] - final[(m, s)] for s in seeds if (m, s) in final])
            lines.append(
                f"| {noise:.2f} | {m} | {d.mean():+.4f} | {d.std():.4f} | "
                f"{int((d < 0).sum())}/{len(d)} |"
            )
    return lines + [""]


def write_results(
    args: argparse.Namespace,
    removed: dict[float, dict[str, int]],
    rows: list[dict],
    pr_rows: list[dict],
    speed: dict[float, float],
    agent_train_s: float,
    total_s: float,
) -> None:
    B = args.budget
    pool_desc = f"pool {args.pool_docs} docs"
    if args.dedup:
        pool_desc += (f" before near-duplicate removal, which every method's pool (and the "
                      f"agent's training pool) goes through first ({NEAR_DUP_NOTE}; removed "
                      f"by label: {removed})")
    lines = [
        "# Selection quality: RL agent vs baselines",
        "",
        "Command (repo root):",
        "",
        f"    .venv/bin/python benchmarks/selection_quality.py --corpora {args.corpora} "
        f"--noise {' '.join(str(n) for n in args.noise)} --seeds {args.seeds} "
        f"--budget {B} --pool-docs {args.pool_docs} --agent-steps {args.agent_steps} "
        f"--target-dim {args.target_dim} {'--dedup' if args.dedup else '--no-dedup'} "
        f"--pool-draws {args.pool_draws}",
        "",
        f"Budget B = {B} tokens; {pool_desc}; tiny DSA GPT (2 layers, d=64, "
        "seq 128, block 32, top-2 blocks), cosine LR fully decayed in every run; 1 torch "
        f"thread; {args.seeds} paired seed(s) (same init and batch order for every method; "
        + ("each seed on its own pool draw: candidates, corruptions and held-out text, draw "
           "seed = seed + 1). " if args.pool_draws == "per-seed" else "all on pool draw 1). ")
        + f"Removed counts are summed over the draws. "
        f"Total wall time {total_s / 60:.1f} min on a shared 2-core CPU.",
        "",
        f"Agent: REINFORCE with a leave-one-out baseline ({AgentConfig().samples_per_step} "
        f"masks scored per candidate batch), proxy learner, {args.agent_steps} env steps on its "
        f"own pool draw (50% noise); target-aware features (policies/target.py) of width "
        f"{args.target_dim} fitted on that draw's 60 clean held-out documents (0 = off); "
        f"training incl. featurization {agent_train_s:.0f} s.",
        "",
    ]
    lines += [
        "## Held-out loss at budget B and tokens to reach random's loss at B",
        "",
        "| noise | method | loss@B/4 | loss@B/2 | loss@B (mean ± sd) | tokens to reach "
        "random@B | gain vs clean-first gain | junk share of selection |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for noise in args.noise:
        sub = [r for r in rows if r["noise"] == noise]
        methods = list(dict.fromkeys(r["method"] for r in sub))
        by = {m: [r for r in sub if r["method"] == m] for m in methods}
        rand_b = np.mean([r["curve"][1.0] for r in by["random"]])
        clean_b = np.mean([r["curve"][1.0] for r in by[bl.CLEAN_FIRST]])
        for m in methods:
            c = {f: np.mean([r["curve"][f] for r in by[m]]) for f in FRACTIONS}
            sd = np.std([r["curve"][1.0] for r in by[m]])
            reach = [
                tokens_to_reach(
                    r["curve"],
                    np.mean([q["curve"][1.0] for q in by["random"] if q["seed"] == r["seed"]]),
                    B,
                )
                for r in by[m]
            ]
            reach_m = np.mean(reach)
            reach_s = "> B" if not np.isfinite(reach_m) else f"{reach_m / B:.2f} B"
            lead = rand_b - clean_b
            gain = (rand_b - c[1.0]) / lead if lead > 1e-6 else float("nan")
            junk = np.mean([r["junk_tokens"] for r in by[m]])
            lines.append(
                f"| {noise:.2f} | {m} | {c[0.25]:.4f} | {c[0.5]:.4f} | {c[1.0]:.4f} ± "
                f"{sd:.4f} | {reach_s} | {gain:.2f} | {junk:.2f} |"
            )
    lines += ["", *paired_lines(rows, args.noise)]
    lines += [
        "## Junk discovery (scores vs corruption labels, evaluation pool)",
        "",
        "AUC: P(clean doc scores above junk doc). Precision/recall of dropped docs: the "
        "policies drop where their keep logit < 0 (their own decision); the heuristic "
        "rules drop a doc failing any rule family; other baselines drop their lowest "
        "`noise` fraction. Means over the pool draws.",
        "",
        "| noise | method | AUC | precision | recall |",
        "|---|---|---|---|---|",
    ]
    for key in dict.fromkeys((r["noise"], r["method"]) for r in pr_rows):
        sub = [r for r in pr_rows if (r["noise"], r["method"]) == key]
        mean = {k: np.nanmean([r[k] for r in sub]) if any(np.isfinite(r[k]) for r in sub)
                else float("nan") for k in ("auc", "precision", "recall")}
        lines.append(
            f"| {key[0]:.2f} | {key[1]} | {mean['auc']:.3f} | "
            f"{mean['precision']:.3f} | {mean['recall']:.3f} |"
        )
    lines += [
        "",
        "## Scorer throughput",
        "",
        "PolicyScorer.score_texts (features + MLP) on one core, the same in `curator score` "
        "and the curate stage: the features run language id and every rule family on the "
        "text themselves.",
        "",
        "| noise | docs/s |",
        "|---|---|",
    ]
    lines += [f"| {n:.2f} | {a:.0f} |" for n, a in speed.items()]
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
