"""Evolution strategies for the curation environment (Salimans et al. 2017): policy search on
the episode return itself, over a few weights of the policy's linear path.

Why next to REINFORCE: REINFORCE credits one scalar reward to every keep/drop decision of a
step, and on the natural benchmark it did not move its logistic init measurably. ES asks a
smaller question with a cleaner answer: how much more or less should the ranking trust each
of a few named signals (`es.columns`: the target classifier, DSIR, the reference LM's loss,
length, ...) than the regression does, judged only by what the selections do to the model.

One iteration draws `es.pairs` directions e (one value per column). The policy with column
shifts beta + sigma*e and the one with beta - sigma*e each run one episode with the same seed
(same candidates, same learner init, same random branch: common random numbers), so the
difference of their returns is the effect of the selection alone. In every step a policy keeps
the top `env.target_keep` share of the candidates by its keep logit: a ranking, as the
benchmark and `curate` use the score, and the same keep rate (so the same budget term) for every
candidate policy. Gradient estimate: mean over pairs of (R+ - R-) / (2 sigma) * e, scaled by
the returns' spread (the step does not depend on the reward's units); Adam ascends it.
sigma and the step are in units of the pool's logit spread, so they mean the same for any init.

`es.episode: selection` asks the curate question directly instead: an episode ranks a draw of
half the pool, keeps its top `env.target_keep` of tokens, trains the transformer from a fresh
init on exactly those (policies/selection_return.py, the natural benchmark's own measure) and
returns minus its loss on every window of the reward text.

Model selection as in REINFORCE: returns (of the same ranked action) on fixed evaluation
seeds; the starting weights are a candidate, and ES replaces them only by beating them on the
environment's own reward.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch

from policies.agent import PolicyNet
from policies.baselines import select_by_score
from policies.checkpoint import MetricsLog
from policies.config import AgentConfig
from policies.env import OBS_CLIP, CurationEnv, EnvData, env_trainer_spec
from policies.pool import Pool
from policies.reinforce import EVAL_SEEDS, logit_affine, seeded_policy, start_policy
from policies.reward import TrainerSpec
from policies.selection_return import draw_documents, train_on_selection
from policies.target_fitting import FittedTarget


def main(cfg: AgentConfig, pool: Pool | None = None, tokenizer: bytes | None = None,
         fitted: FittedTarget | None = None) -> dict[str, Any]:
    """Train the column shifts of a policy on the config's environment; save to `cfg.output`."""
    setup, net, setup_s = seeded_policy(cfg, pool, tokenizer, fitted)
    start_policy(net, setup, cfg)
    spread = logit_affine(net, setup.env.data.features)[1]
    columns = column_indices(setup.spec.names, cfg.es.columns)
    log = MetricsLog(cfg.log_path or Path(cfg.output).with_name("metrics.jsonl"))
    env = setup.env
    episode_return: EpisodeReturn
    if cfg.es.episode == "selection":
        episode_return = partial(selection_return, net, env.data, cfg.env.target_keep,
                                 env_trainer_spec(cfg.env))
        steps_per_episode = 1  # one training run
    else:
        episode_return = partial(ranked_return, net, env)
        steps_per_episode = env.cfg.episode_steps
    summary = train_shifts(net, episode_return, cfg, columns, spread, log,
                           evaluate=partial(mean_return, episode_return))
    summary["steps"] = summary["episodes"] * steps_per_episode
    log.close()
    setup.save_policy(cfg.output, net, cfg.model_dump(mode="json"))
    return {"output": cfg.output, "setup_s": setup_s, **summary}


def column_indices(names: list[str], columns: list[str]) -> np.ndarray:
    missing = [c for c in columns if c not in names]
    if missing:
        raise ValueError(f"es.columns: {missing} are not among the policy's features "
                         f"({', '.join(n for n in names if not n.startswith('sketch_'))}); "
                         "name columns the config's features produce")
    return np.array([names.index(c) for c in columns], np.int64)


def top_share_mask(logits: np.ndarray, share: float) -> np.ndarray:
    """Keep the round(share * n) highest logits (at least one; ties: lower index first)."""
    k = max(1, int(round(share * len(logits))))
    keep = np.zeros(len(logits), np.int8)
    keep[np.argsort(-logits, kind="stable")[:k]] = 1
    return keep


EpisodeReturn = Callable[[int], float]
"""The return of the policy's current weights in one episode, given the episode's seed."""


def ranked_return(net: PolicyNet, env: CurationEnv, seed: int) -> float:
    """Return of one episode in which every step keeps the top `target_keep` share by logit."""
    obs, _ = env.reset(seed=seed)
    total, done = 0.0, False
    while not done:
        with torch.no_grad():
            logits = net.keep_logits(torch.from_numpy(obs)).numpy()
        obs, reward, terminated, truncated, _ = env.step(top_share_mask(logits,
                                                                        env.cfg.target_keep))
        total += reward
        done = terminated or truncated
    return total


def selection_return(net: PolicyNet, data: EnvData, share: float, spec: TrainerSpec,
                     seed: int) -> float:
    """Return of one `es.episode=selection` episode: the policy ranks draw `seed` of the pool,
    keeps its top documents up to `share` of the draw's tokens, and the transformer trained from
    init `seed` on exactly those tokens is judged on every window of the reward text. In
    percent of a nat, so the printed returns read like the environment's."""
    sub = draw_documents(data.n_docs, seed)
    obs = np.clip(data.features[sub], -OBS_CLIP, OBS_CLIP).astype(np.float32)
    with torch.no_grad():
        logits = net.keep_logits(torch.from_numpy(obs)).numpy()
    docs = [data.doc_tokens[i] for i in sub]
    n_tokens = np.array([len(d) for d in docs], np.int64)
    budget = int(share * n_tokens.sum())
    keep = select_by_score(logits, n_tokens, budget)
    loss = train_on_selection(docs, keep.astype(np.int64), budget, data.heldout_tokens,
                              data.vocab_size, seed, spec=spec)
    return -100.0 * loss


def mean_return(episode_return: EpisodeReturn, seed: int) -> float:
    """The model-selection return: the mean over the fixed evaluation seeds."""
    return float(np.mean([episode_return(seed + s) for s in EVAL_SEEDS]))


def shift_columns(net: PolicyNet, base: torch.Tensor, columns: np.ndarray,
                  shift: np.ndarray) -> None:
    """Set `net`'s linear-path weights to `base` with `shift` added on `columns`."""
    with torch.no_grad():
        net.linear.copy_(base)
        net.linear[torch.from_numpy(columns)] += torch.from_numpy(shift).to(net.linear.dtype)


def train_shifts(net: PolicyNet, episode_return: EpisodeReturn, cfg: AgentConfig,
                 columns: np.ndarray, spread: float, log: MetricsLog,
                 evaluate: EpisodeReturn | None = None) -> dict[str, Any]:
    """ES on the linear-path weights of `columns` (shifts from their current values), each
    pair's two episodes run by `episode_return` under one seed. With `cfg.eval_interval` and
    `evaluate` (the return on fixed evaluation seeds), leaves `net` with the best-evaluated
    shifts (zero if none beat the start); otherwise with the last."""
    es = cfg.es
    base = net.linear.detach().clone()
    sigma = es.sigma * spread
    beta = torch.zeros(len(columns), dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.Adam([beta], lr=es.step * spread)
    rng = np.random.default_rng(cfg.seed)

    def set_shift(shift: np.ndarray) -> None:
        shift_columns(net, base, columns, shift)

    start = time.time()
    set_shift(np.zeros(len(columns)))
    best_shift, best_return, eval_returns = np.zeros(len(columns)), -np.inf, []
    evaluating = bool(cfg.eval_interval) and evaluate is not None
    if evaluating:  # the start is a candidate: ES must beat it to replace it
        best_return = evaluate(cfg.seed)
        eval_returns.append(best_return)
    episode = 0
    for iteration in range(es.iterations):
        current = beta.detach().numpy().copy()
        eps = rng.standard_normal((es.pairs, len(columns)))
        diffs = np.empty(es.pairs)
        for p in range(es.pairs):
            seed = cfg.seed + 1 + episode  # one fresh episode seed per pair, shared by both
            episode += 1
            set_shift(current + sigma * eps[p])
            plus = episode_return(seed)
            set_shift(current - sigma * eps[p])
            minus = episode_return(seed)
            diffs[p] = plus - minus
        scale = float(np.sqrt(np.mean(diffs**2))) + 1e-8
        grad = (diffs / scale) @ eps / es.pairs  # ascent direction, reward units removed
        optimizer.zero_grad()
        beta.grad = torch.from_numpy(-grad)
        optimizer.step()
        metrics = {"charts/pair_return_diff_rms": scale,
                   "charts/shift_norm": float(beta.detach().norm()) / spread}
        if evaluating and ((iteration + 1) % es.eval_every == 0
                           or iteration + 1 == es.iterations):
            set_shift(beta.detach().numpy())
            ret = evaluate(cfg.seed)
            eval_returns.append(ret)
            metrics["charts/eval_return"] = ret
            if ret > best_return:
                best_return, best_shift = ret, beta.detach().numpy().copy()
        log.log(iteration, **metrics)
    final = best_shift if evaluating else beta.detach().numpy()
    set_shift(final)
    return {"episodes": episode * 2, "train_s": time.time() - start,
            "eval_returns": eval_returns, "best_eval_return": best_return,
            "rl_replaced_start": bool(np.any(final != 0)),
            "shifts": dict(zip(cfg.es.columns, (final / spread).round(4).tolist(), strict=True))}
