"""Selection on natural data: real crawl pools, a named clean target, the bundled transformer.

    .venv/bin/python -m benchmarks.selection_natural --corpora ../shared/corpora \
        --debian /work/data/debian/debian-handbook --crawl /work/data/crawl/*.jsonl.gz

Data (policies/natural_corpus.py): the pool is real crawl text only (WARC pages, Common Crawl
and Dolma documents, raw web pages, all read by curator's connectors), split by text hash into
the half the agents and fitted baselines train on and the half the selections are drawn from;
the target is clean text (web articles, book chunks, the Debian handbook), split into fit /
reward / evaluation parts. No corruption, no label: the primary table judges a selection only
by what it does to a model.

Protocol: `--draws` paired pool draws (a random half of the selection half each); for each
draw and each budget (a share of the draw's tokens), every method ranks the draw's documents,
its top documents up to the budget train the bundled transformer (tiny DSA GPT, seeded init and
batch order per draw, LR decayed at the end), and the loss on the target's evaluation part is
measured. Differences are paired per draw and budget; p is the exact sign-flip test.

Methods: random; rule families passed (heuristic); the DCLM-style n-gram classifier and DSIR
(target fit part vs the pool's training half); CCNet-style perplexity under the reference LM;
a logistic regression on the agent's features (the target's fit and reward parts vs the pool's
training half: the same features and fit as the agents' logistic init, no RL); the same policy
network untrained; REINFORCE (from that logistic init: the shipped recipe; and from scratch),
REINFORCE + replay, REINFORCE + the upweight action and PPO, all in the transformer environment
on the pool's training half (reward: loss on the target's reward part); the previous default
policy. A second table gives each method's ROC AUC against keep/reject judgments of the
selection half's English documents (`--labels`, keyed by text sha1; see BENCHMARKS.md for who
made them). A third, diagnostic table uses synthetic corruptions. Agents are cached in `--work`.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.paired_stats import auc, sign_flip_p  # noqa: E402
from policies import baselines as bl  # noqa: E402
from policies.agent import PolicyNet  # noqa: E402
from policies.features import FeatureExtractor, FeatureNorm, FeatureSpec  # noqa: E402
from policies.natural_corpus import NaturalData  # noqa: E402
from policies.reference import ReferenceLM  # noqa: E402
from policies.reinforce import LOGISTIC_L2, target_text  # noqa: E402
from policies.selection_return import draw_documents, train_on_selection  # noqa: E402
from policies.target import TargetModel, fit_classifier  # noqa: E402
from policies.target_fitting import FittedTarget  # noqa: E402
from policies.train_default import (  # noqa: E402
    add_data_args,
    natural_agent_config,
    natural_data,
    natural_tokenizer,
    train_default,
    training_pool,
)

RESULTS = Path(__file__).parent / "results" / "selection_natural.md"
LABELS = Path(__file__).parent / "data" / "natural_dev_labels.jsonl"
BUDGETS = (0.25, 0.5)
EVAL_BATCHES = 16
"""--eval-text first: the loss of the first 16 batches of 16 windows of 128 tokens (32,768
tokens) of the evaluation text, the measure of every table before stop 33. --eval-text all:
every window."""
TARGET_DIM = 4096
AGENT = "REINFORCE (from the logistic init)"
SHIPPED = "logistic init, no RL (the shipped default)"
# name -> overrides of policies.train_default.natural_agent_config (one environment for all)
ES_AGENT = "ES on six feature weights (from the logistic init)"
ES_SAMPLED_AGENT = "ES, reward sampled across every reward document"
ES_QUARTER_AGENT = "ES, sampled reward, trained keeping the top 25%"
ES_SELECTION_AGENT = "ES judged by 25% selections (trained model's loss)"
ES_FROM_CLASSIFIER_AGENT = "ES from the n-gram classifier, judged by 25% selections"
ES_CROSSFIT_AGENT = "ES, cross-fitted features, kept fit documents in its pool"
AGENTS: dict[str, list[str]] = {
    AGENT: [],
    SHIPPED: [],
    "REINFORCE from scratch": ["init=scratch"],
    "REINFORCE + replay": ["replay.enabled=true"],
    "REINFORCE + upweight action": ["env.upweight=true"],
    "PPO (from scratch)": ["algorithm=ppo", "init=scratch"],
    # the reward's signal against its noise: 8 optimizer steps per env step instead of 2, and
    # the reward's loss read on 4x as many batches
    "REINFORCE, 4x longer env steps and reward eval": ["env.step_tokens=8192",
                                                       "env.trainer_eval_batches=8"],
    # policy search on the episode return over six named feature weights (policies/es.py),
    # from the same logistic init; about REINFORCE's env steps (6 x 4 pairs x 2 episodes)
    ES_AGENT: ["algorithm=es"],
    # the same ES, its reward read on a fixed sample of windows from every reward document (each
    # cut to 4,000 characters) instead of the reward text's first 4,096 tokens (one or two
    # documents): same cost per reward
    ES_SAMPLED_AGENT: ["algorithm=es", "env.trainer_eval_windows=sampled",
                       "env.heldout_doc_chars=4000"],
    # and trained at the budget it is judged at: each episode step keeps the top quarter of its
    # candidates by rank (env.target_keep), not the top half
    ES_QUARTER_AGENT: ["algorithm=es", "env.trainer_eval_windows=sampled",
                       "env.heldout_doc_chars=4000", "env.target_keep=0.25"],
    # ES judged by what a curate does: each episode ranks half the training pool, keeps its
    # top 25% of tokens, trains the transformer from a fresh init on exactly those and reads its
    # loss on every window of the reward text (policies.selection_return, as this benchmark)
    ES_SELECTION_AGENT: ["algorithm=es", "es.episode=selection", "env.target_keep=0.25",
                         "env.heldout_doc_chars=4000"],
    # the same ES started from the best method without RL: ranking exactly as the target
    # classifier (the n-gram row), so its difference from that row is what RL adds to it
    ES_FROM_CLASSIFIER_AGENT: ["algorithm=es", "init=column", "es.episode=selection",
                               "env.target_keep=0.25", "env.heldout_doc_chars=4000"],
    # the column-start ES learning from a pool like the one it ranks: the reader-kept crawl
    # documents of the target's fit part join its pool (without them it is the training half
    # minus its best documents) and every pool document's target-aware and reference features
    # come from models fitted without its fold (policies.target_fitting)
    ES_CROSSFIT_AGENT: ["algorithm=es", "init=column", "es.episode=selection",
                        "env.target_keep=0.25", "env.heldout_doc_chars=4000",
                        "crossfit_folds=5"],
    # the same, a second training seed (ES's directions and episode draws); the name differs
    # within its first 40 letters, which name the cached agent file
    "ES, training seed 1, from the n-gram classifier, judged by 25% selections": [
        "seed=1", "algorithm=es", "init=column", "es.episode=selection", "env.target_keep=0.25",
        "env.heldout_doc_chars=4000"],
}
REGRESSION = "logistic regression on the agent's features (no RL)"
UPWEIGHT_AGENT = "REINFORCE + upweight action"
# The upweight action without RL: the regression's ranking, its top documents repeated by a
# fixed rule. What RL + upweight gains over these rows is what RL adds; what these gain over
# the regression is what repetition alone adds.
EVERY_KEPT_TWICE = "regression, every document twice (no RL)"
AGENT_SHARE_TWICE = "regression, its top documents twice at the upweight agent's share (no RL)"


def top_share_weights(scores: np.ndarray, share: float, factor: int) -> np.ndarray:
    """Sample weights: `factor` for the round(share * n) highest-scored documents (ties: lower
    index first, as `bl.select_by_score`), 1 for the rest."""
    order = np.argsort(-np.asarray(scores, np.float64), kind="stable")
    w = np.ones(len(order), np.int64)
    w[order[: int(round(share * len(order)))]] = factor
    return w


@dataclass
class Featurized:
    extractor: FeatureExtractor
    fit_s: float  # fitting the target model + reference LM
    feature_s_per_doc: float


def fitted_extractor(data: NaturalData, tokenizer: bytes) -> Featurized:
    """The agents' feature extractor, fitted exactly as
    `policies.target_fitting.fit_target_models` does for the agents' config (same seeds: the
    same target model and reference LM)."""
    from policies.target_fitting import fit_target_models

    cfg = natural_agent_config("unused", 1)
    t0 = time.time()
    target, reference = fit_target_models(cfg, training_pool(data), tokenizer)
    fit_s = time.time() - t0
    spec = FeatureSpec(sketch_dim=cfg.sketch_dim, target_dim=cfg.target_dim, reference=True)
    extractor = FeatureExtractor(tokenizer, spec, target=target, reference=reference)
    t0 = time.time()
    extractor(pa.array(data.pool_eval.texts[:64], pa.string()))
    return Featurized(extractor, fit_s, (time.time() - t0) / 64)


Scorer = Callable[[list[str]], np.ndarray]


def baseline_scorers(data: NaturalData, feats: Featurized, seed: int) -> dict[str, Scorer]:
    """Every non-RL method as texts -> scores, fitted on the pool's training half and the
    target's fit / reward parts only (never on what it will score)."""
    ext = feats.extractor
    assert isinstance(ext.target, TargetModel) and isinstance(ext.reference, ReferenceLM)
    target, reference = ext.target, ext.reference
    raw_train = ext(pa.array(data.pool_train.texts, pa.string()))
    raw_goal = ext(pa.array(target_text(training_pool(data)), pa.string()))
    norm = FeatureNorm.fit(raw_train)
    w, b = fit_classifier(norm(raw_goal), norm(raw_train), steps=500, seed=seed,
                          weight_decay=LOGISTIC_L2)
    torch.manual_seed(seed)
    untrained = PolicyNet(raw_train.shape[1])

    def arr(texts: list[str]) -> pa.Array:
        return ext.prepare(pa.array(texts, pa.string()))

    return {
        "random": lambda t: bl.random_scores(len(t), seed),
        "rule families passed": lambda t: bl.heuristic_scores(arr(t)),
        "n-gram classifier (DCLM-style)": lambda t: target(arr(t))[:, 0],
        "DSIR": lambda t: target(arr(t))[:, 1],
        "reference-LM perplexity (CCNet-style)": lambda t: -np.nan_to_num(
            reference.losses(ext.tokenize(arr(t))), nan=1e3),
        "logistic regression on the agent's features (no RL)": lambda t: (
            norm(ext(pa.array(t, pa.string()))) @ w + b),
        "untrained policy network": lambda t: untrained.score(
            torch.from_numpy(norm(ext(pa.array(t, pa.string()))))).numpy(),
    }


DIAGNOSTIC_KINDS = ("token_shuffle", "repeated_lines", "char_soup", "off_language")


def diagnostic_aucs(data: NaturalData, scorers: dict[str, Scorer], n: int = 60,
                    seed: int = 0) -> dict[str, dict[str, float]]:
    """AUC of clean text above each synthetic corruption, per method.

    Texts: the target's evaluation part, which no method trained or fitted on; the clean side
    and the corrupted side come from disjoint documents. The agents here were trained on the
    natural pool only, so none of these junk kinds was seen in training (the previous default
    policy was trained on exactly these kinds; its row is marked).
    """
    from policies.pool import CORRUPT_BY_KIND

    rng = np.random.default_rng(seed)
    docs = data.target.evaluation
    clean, bases = docs[0::2][:n], docs[1::2]
    junk = {k: [CORRUPT_BY_KIND[k](bases[i % len(bases)], rng) for i in range(n)]
            for k in DIAGNOSTIC_KINDS}
    texts = clean + [t for k in DIAGNOSTIC_KINDS for t in junk[k]]
    out: dict[str, dict[str, float]] = {}
    for name, score in scorers.items():
        s = np.asarray(score(texts), np.float64)
        c = s[: len(clean)]
        row = {}
        for j, kind in enumerate(DIAGNOSTIC_KINDS):
            lo = len(clean) + j * n
            row[kind] = auc(np.concatenate([c, s[lo:lo + n]]),
                            np.arange(len(c) + n) < len(c))
        row["all kinds"] = auc(s, np.arange(len(s)) < len(clean))
        out[name] = row
    return out


def policy_scores(path: str, texts: list[str]) -> np.ndarray:
    return policy_scores_and_weights(path, texts)[0]


def policy_scores_and_weights(path: str, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Keep logits and sample weights (the upweight head's repetition; 1 without one)."""
    from policies.scorer import PolicyScorer

    scorer = PolicyScorer(path)
    scores, raw = scorer.score_texts(pa.array(texts, pa.string()))
    return scores.astype(np.float64), scorer.sample_weights(raw, len(texts))


def train_agents(data: NaturalData, tokenizer: bytes, work: Path, steps: int,
                 names: list[str], fitted: FittedTarget) -> dict[str, dict]:
    """Each agent trained once (cached by name and steps) on the pool's training half, by
    the function that builds the shipped default policy."""
    out: dict[str, dict] = {}
    slugs: dict[str, str] = {}
    for name in names:
        slug = {AGENT: "reinforcelogisticinittheshippedrecipe"}.get(
            name, "".join(c for c in name.lower() if c.isalnum())[:40])
        if slugs.setdefault(slug, name) != name:  # one cached file would serve both agents
            raise ValueError(f"agents {slugs[slug]!r} and {name!r} share the cache name "
                             f"{slug!r} (the first 40 letters); rename one")
        path = work / f"agent-{slug}-{steps}.safetensors"
        info_path = path.with_suffix(".json")
        if not path.exists():
            t0 = time.time()
            summary = train_default(data, path, steps, tokenizer, AGENTS[name], fitted,
                                    rl=name != SHIPPED)
            info = {"wall_s": time.time() - t0, "setup_s": summary.get("setup_s"),
                    "train_s": summary.get("train_s"), "steps": steps,
                    "eval_returns": summary.get("eval_returns"),
                    "rl_replaced_start": summary.get("rl_replaced_start"),
                    "shifts": summary.get("shifts")}
            info_path.write_text(json.dumps(info))
        out[name] = {"path": str(path), **json.loads(info_path.read_text())}
    return out


def train_eval(docs: list[np.ndarray], copies: np.ndarray, budget: int, evaluation: np.ndarray,
               vocab: int, seed: int, eval_batches: int | None = EVAL_BATCHES) -> float:
    """The bundled transformer from a seeded init on exactly `budget` tokens of the selected
    documents (policies.selection_return, as ES's selection episodes); loss on the evaluation
    text."""
    return train_on_selection(docs, copies, budget, evaluation, vocab, seed, eval_batches)


def run(args: argparse.Namespace) -> dict:
    work = Path(args.work)
    t0 = time.time()
    data = natural_data(args, work / "inputs")
    load_s = time.time() - t0
    tok_path = work / "tokenizer.model"
    if not tok_path.exists():
        tok_path.write_bytes(natural_tokenizer(data))
    tokenizer = tok_path.read_bytes()
    feats = fitted_extractor(data, tokenizer)
    t0 = time.time()
    scorers = baseline_scorers(data, feats, seed=0)
    scores = {name: np.asarray(f(data.pool_eval.texts), np.float64)
              for name, f in scorers.items()}
    baselines_s = time.time() - t0
    agents = train_agents(data, tokenizer, work, args.agent_steps, args.agents,
                          (feats.extractor.target, feats.extractor.reference))
    weights: dict[str, np.ndarray] = {}
    for name, info in agents.items():
        t0 = time.time()
        scores[name], w = policy_scores_and_weights(info["path"], data.pool_eval.texts)
        if (w != 1).any():
            weights[name] = w
        scorers[name] = lambda t, p=info["path"]: policy_scores(p, t)
        info["score_s_per_doc"] = (time.time() - t0) / len(data.pool_eval.texts)
    for label, path in parse_policies(args.policy):
        scores[label] = policy_scores(path, data.pool_eval.texts)
        scorers[label] = lambda t, p=path: policy_scores(p, t)
    upweight_share = None
    if UPWEIGHT_AGENT in weights and REGRESSION in scores:
        w_agent = weights[UPWEIGHT_AGENT]
        factor, upweight_share = int(w_agent.max()), float((w_agent > 1).mean())
        for name, share in ((EVERY_KEPT_TWICE, 1.0), (AGENT_SHARE_TWICE, upweight_share)):
            scores[name] = scores[REGRESSION]
            weights[name] = top_share_weights(scores[REGRESSION], share, factor)
    np.savez(work / "scores.npz", **scores)

    t0 = time.time()
    diagnostic = diagnostic_aucs(data, scorers)
    diagnostic_s = time.time() - t0
    ext = feats.extractor
    docs = [np.asarray(t, np.int64) for t in ext.tokenize(ext.prepare(data.pool_eval.texts))]
    eval_texts = data.target.evaluation
    if args.eval_doc_chars:
        from policies.pool import clip_text

        eval_texts = [clip_text(t, args.eval_doc_chars) for t in eval_texts]
    evaluation = np.concatenate(ext.tokenize(ext.prepare(eval_texts))).astype(np.int64)
    eval_batches = EVAL_BATCHES if args.eval_text == "first" else None
    vocab = ext.sp.get_piece_size()
    n_tok = np.array([len(d) for d in docs])
    losses: dict[str, dict[str, list[float]]] = {m: {str(b): [] for b in BUDGETS} for m in scores}
    # one cache entry per (method, draw, budget): adding a method later trains only its runs
    # another evaluation text is another measure: its own cache file
    cache_path = work / ("losses.json" if (args.eval_text, args.eval_doc_chars) == ("first", 0)
                         else f"losses-{args.eval_text}-{args.eval_doc_chars}.json")
    cache: dict[str, float] = json.loads(cache_path.read_text()) if cache_path.exists() else {}
    # keyed by the ranking (a selection depends on nothing else): a method whose order changed
    # is evaluated again, one whose scores moved in the last bits (another BLAS) is not
    stamps = {name: ranking_stamp(s, weights.get(name)) for name, s in scores.items()}
    t0 = time.time()
    for draw in range(args.draw_start, args.draws):
        sub = draw_documents(len(docs), 1000 + draw)
        sub_docs = [docs[i] for i in sub]
        for frac in args.budgets or BUDGETS:
            budget = int(frac * n_tok[sub].sum())
            for name, s in scores.items():
                if args.methods and name not in args.methods:
                    continue  # a confirmation run: only the named methods' new draws
                key = f"{name}|{stamps[name]}|{draw}|{frac}"
                if key not in cache:
                    s_sub = bl.random_scores(len(sub), draw) if name == "random" else s[sub]
                    # an upweighted document costs its tokens once per copy it trains on
                    w = weights[name][sub] if name in weights else np.ones(len(sub), np.int64)
                    keep = bl.select_by_score(s_sub, n_tok[sub] * w, budget)
                    cache[key] = train_eval(sub_docs, keep * w, budget, evaluation, vocab,
                                            seed=draw, eval_batches=eval_batches)
                    cache_path.write_text(json.dumps(cache))
                losses[name][str(frac)].append(cache[key])
            print(f"draw {draw} budget {frac}: " + ", ".join(
                f"{n[:12]}={v[str(frac)][-1]:.4f}" for n, v in losses.items() if v[str(frac)]),
                flush=True)
    eval_s = time.time() - t0
    if args.methods:
        return {}  # the cache holds the new draws: benchmarks.selection_paired reads them
    labels = load_labels(args.labels, data) if args.labels else None
    result = {"losses": losses, "agents": agents, "labels": labels, "diagnostic": diagnostic,
              "upweight_share": upweight_share,
              "timing": {"load_s": load_s, "fit_target_models_s": feats.fit_s,
                         "feature_s_per_doc": feats.feature_s_per_doc,
                         "baselines_s": baselines_s, "eval_s": eval_s,
                         "diagnostic_s": diagnostic_s},
              # the fixed-upweight rows rank exactly as the regression: no row of their own
              "auc": (judged_aucs(labels, {n: v for n, v in scores.items()
                                           if n not in (EVERY_KEPT_TWICE, AGENT_SHARE_TWICE)},
                                  single_features(feats.extractor, data))
                      if labels else None),
              "sizes": {"pool_train": len(data.pool_train.texts),
                        "pool_eval": len(data.pool_eval.texts),
                        "pool_eval_tokens": int(n_tok.sum()),
                        "target_fit": len(data.target.fit),
                        "target_reward": len(data.target.reward),
                        "target_eval": len(data.target.evaluation),
                        "target_eval_tokens": int(len(evaluation))},
              "args": {k: v for k, v in vars(args).items()}}
    (work / "result.json").write_text(json.dumps(result, indent=1))
    return result


def parse_policies(pairs: list[str]) -> list[tuple[str, str]]:
    """--policy LABEL=PATH, each a row besides the methods trained here."""
    out = []
    for pair in pairs:
        label, sep, path = pair.rpartition("=")
        if not sep or not label or not path:
            raise SystemExit(f"--policy {pair!r}: expected LABEL=PATH (a policy directory or "
                             "safetensors file)")
        out.append((label, path))
    return out


def ranking_stamp(scores: np.ndarray, weights: np.ndarray | None) -> str:
    """What `bl.select_by_score` depends on: the order of the scores (stable, so ties keep
    document order) and the copies of each document."""
    order = np.argsort(-np.asarray(scores, np.float64), kind="stable").astype(np.int64)
    extra = b"" if weights is None else np.asarray(weights, np.int64).tobytes()
    return hashlib.sha1(order.tobytes() + extra).hexdigest()[:16]


# single feature columns reported beside the methods (sign: +1 higher is better)
SINGLE_FEATURES = (("lang_score", 1, "single feature: language-ID confidence"),
                   ("gopher_n_stop_words", 1, "single feature: stop words (log count)"))


def single_features(ext: FeatureExtractor, data: NaturalData) -> dict[str, np.ndarray]:
    raw = ext(pa.array(data.pool_eval.texts, pa.string()))
    names = ext.spec.names
    return {label: np.nan_to_num(sign * raw[:, names.index(col)], nan=-1e9)
            for col, sign, label in SINGLE_FEATURES}


def judged_aucs(labels: dict, scores: dict[str, np.ndarray],
                extra: dict[str, np.ndarray]) -> dict[str, float]:
    idx, keep = np.array(labels["idx"]), np.array(labels["keep"], bool)
    return {n: auc(np.asarray(s)[idx], keep) for n, s in {**scores, **extra}.items()}


def load_labels(path: str, data: NaturalData) -> dict:
    """keep/reject judgments of the selection half's documents, keyed by the sha1 of the text
    (the file holds no text: benchmarks/data/natural_dev_labels.jsonl)."""
    where = {hashlib.sha1(t.encode()).hexdigest(): i for i, t in enumerate(data.pool_eval.texts)}
    rows = [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]
    found = [(where[r["sha1"]], int(r["keep"])) for r in rows if r["sha1"] in where]
    return {"idx": [i for i, _ in found], "keep": [k for _, k in found],
            "missing": len(rows) - len(found)}


def es_compute() -> str:
    """ES's env steps next to REINFORCE's, from the configs the agents were trained with."""
    cfg = natural_agent_config("unused", 100)
    e, steps = cfg.es, cfg.env.episode_steps
    evals = 1 + -(-e.iterations // e.eval_every)  # the start, every eval_every, the last
    rl_evals = 1 + cfg.total_steps // cfg.eval_interval
    return (f"{e.iterations} iterations x {e.pairs} antithetic pairs = "
            f"{2 * e.iterations * e.pairs} episodes of {steps} env steps "
            f"({2 * e.iterations * e.pairs * steps} steps) plus {evals} model-selection "
            f"evaluations of 2 episodes ({evals * 2 * steps}), where REINFORCE scores "
            f"{cfg.samples_per_step} masks in each of its {cfg.total_steps} steps "
            f"({cfg.samples_per_step * cfg.total_steps}) plus {rl_evals} such evaluations "
            f"({rl_evals * 2 * steps})")


def report(result: dict, command: str) -> str:
    losses = result["losses"]
    agent = losses[AGENT]
    lines = ["# Selection on natural data (real crawl pool, named clean target)", "",
             f"Command: `{command}`", ""]
    sz = result["sizes"]
    lines += [
        f"Pool: {sz['pool_train']} crawl documents for training agents and fitting baselines, "
        f"{sz['pool_eval']} ({sz['pool_eval_tokens']:,} tokens) to select from, split by text "
        f"hash after near-duplicate removal. Target: {sz['target_fit']} documents to fit on, "
        f"{sz['target_reward']} for the RL reward, {sz['target_eval']} "
        f"({sz['target_eval_tokens']:,} tokens) for evaluation only. "
        f"{len(next(iter(agent.values())))} paired draws (half of the selection half each); "
        "budgets are shares of a draw's tokens. Loss = the bundled transformer's loss on the "
        f"first {EVAL_BATCHES * 16 * 128:,} tokens of the target's evaluation part (16 batches "
        "of 16 windows) after training on the selection (nats/token, lower is "
        "better). Δ = method − REINFORCE agent, paired per draw; p = exact sign-flip."]
    if result.get("upweight_share") is not None:
        lines[-1] += (f" The upweight agent repeats {result['upweight_share']:.0%} of the "
                      "selection half's documents; the two 'regression, ... twice' rows repeat "
                      "the regression's top documents by a fixed rule (all of them, or that "
                      "same share), with no RL.")
    lines.append("")
    head = "| method | " + " | ".join(
        f"loss @{int(100 * b)}% | Δ vs agent | p" for b in BUDGETS) + " |"
    lines += [head, "|---|" + "---|---|---|" * len(BUDGETS)]
    for name, per in sorted(losses.items(), key=lambda kv: np.mean(kv[1][str(BUDGETS[-1])])):
        cells = []
        for b in BUDGETS:
            v = np.array(per[str(b)])
            d = v - np.array(agent[str(b)])
            p = "" if name == AGENT else f"{sign_flip_p(d):.3f}"
            delta = "" if name == AGENT else f"{d.mean():+.4f}"
            cells += [f"{v.mean():.4f}", delta, p]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines.append("")
    t = result["timing"]
    lines += ["| cost | seconds |", "|---|---|",
              f"| fit target classifier + DSIR + reference LM | {t['fit_target_models_s']:.1f} |",
              f"| features per document (all columns) | {t['feature_s_per_doc']:.4f} |"]
    for name, info in result["agents"].items():
        lines.append(f"| train {name} ({info['steps']} env steps, transformer env) | "
                     f"{info['wall_s']:.0f} |")
        lines.append(f"| score with {name}, per document | {info['score_s_per_doc']:.4f} |")
    lines.append("")
    for name, info in result["agents"].items():
        if info.get("shifts"):  # ES: what it learned, in units of the pool's logit spread
            lines += [f"{name}: weight shifts from its start, in units of the pool's keep-logit "
                      "spread (a shift of s on a z-scored column moves a document's logit by "
                      "s spreads per standard deviation of that column): " + ", ".join(
                          f"{c} {v:+.2f}" for c, v in info["shifts"].items()) + ". Its "
                      f"compute: {es_compute()}.", ""]
    if result.get("auc"):
        lab = result["labels"]
        lines += [f"ROC AUC against keep/reject judgments of the selection half's English "
                  f"documents ({len(lab['keep'])} documents, {sum(lab['keep'])} keep). The "
                  "judgments (benchmarks/data/natural_dev_labels.jsonl, by text sha1) were "
                  "made by one careful reader -- an AI assistant reading each document's first "
                  "2,500 characters against a written rubric (readable, informative prose = "
                  "keep; spam, boilerplate, lists, catalogue records, fragments, non-English = "
                  "reject), not by the people behind any held-back set; the training half's "
                  "English documents were judged the same way and their kept ones are part of "
                  "the target. Single features are listed for comparison.", "",
                  "| method | ROC AUC |", "|---|---|"]
        for name, a in sorted(result["auc"].items(), key=lambda kv: -kv[1]):
            lines.append(f"| {name} | {a:.3f} |")
        lines.append("")
    diag = result.get("diagnostic")
    if diag:
        lines += ["Diagnostic (synthetic junk, not natural): ROC AUC of clean target-evaluation "
                  "documents above corrupted copies of other target-evaluation documents (60 "
                  "each). No agent here saw a synthetic corruption in training (they trained on "
                  "the natural pool); * = the previous default policy, trained on these very "
                  "kinds.", "",
                  "| method | " + " | ".join(DIAGNOSTIC_KINDS) + " | all kinds |",
                  "|---|" + "---|" * (len(DIAGNOSTIC_KINDS) + 1)]
        for name, row in sorted(diag.items(), key=lambda kv: -kv[1]["all kinds"]):
            mark = " *" if name.startswith("previous default") else ""
            lines.append(f"| {name}{mark} | " + " | ".join(
                f"{row[k]:.3f}" for k in (*DIAGNOSTIC_KINDS, "all kinds")) + " |")
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_data_args(parser)
    parser.add_argument("--labels", default=str(LABELS),
                        help="keep/reject jsonl: {sha1 of the text, keep}")
    parser.add_argument("--work", default="/tmp/curator-selection-natural")
    parser.add_argument("--draws", type=int, default=5)
    parser.add_argument("--agent-steps", type=int, default=100)
    parser.add_argument("--agents", nargs="*", default=list(AGENTS))
    parser.add_argument("--policy", action="append", default=[], metavar="LABEL=PATH",
                        help="a policy to compare besides the methods trained here (repeatable), "
                        "e.g. 'shipped default policy=default'")
    parser.add_argument("--results", default=str(RESULTS))
    parser.add_argument("--methods", nargs="*", default=[],
                        help="a confirmation run: evaluate only these methods on the draws "
                        "(into WORK/losses.json) and write no report; compare them with "
                        "benchmarks.selection_paired --draws START:STOP")
    parser.add_argument("--eval-text", choices=["first", "all"], default="first",
                        help="first: the loss on the evaluation text's first 32,768 tokens (16 "
                        "batches; every table before stop 33); all: on every window of it")
    parser.add_argument("--eval-doc-chars", type=int, default=0,
                        help="cut each evaluation document to its first N characters (at a "
                        "whitespace) so no long document outweighs the rest; 0 = whole")
    parser.add_argument("--draw-start", type=int, default=0,
                        help="a confirmation run: judge draws draw-start..draws-1 only")
    parser.add_argument("--budgets", type=float, nargs="*", default=[],
                        help="a confirmation run: only these budgets (default both)")
    args = parser.parse_args()
    if (args.eval_text, args.eval_doc_chars, args.budgets, args.draw_start) != \
            ("first", 0, [], 0) and not args.methods:
        parser.error("--eval-text/--eval-doc-chars/--budgets/--draw-start are for "
                     "confirmation runs: "
                     "name the --methods")
    result = run(args)
    if args.methods:
        return
    text = report(result, "python -m benchmarks.selection_natural " + " ".join(sys.argv[1:]))
    print(text)
    Path(args.results).write_text(text + "\n")


if __name__ == "__main__":
    main()
