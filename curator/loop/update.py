"""The loop agent's update after a round: rewards from the current checkpoint, a REINFORCE or
ES proposal, the trial round's choice.

This is what closes the loop. The curation environment (policies/env.py) offers candidates
drawn from the documents the loop arm has not trained on yet -- by default only the best-ranked
of them (`update.candidate_rounds`), where the next rounds' selections are decided, so the
rewards teach the ranking at its margin and not again the junk-vs-clean split the round-0
policy already knows; its learner is the bundled trainer
restored from the loop arm's checkpoint after this round, continuing the loop's own LR schedule,
so each reward is "how much did keeping these documents (vs a random equal-token choice of the
same candidates) lower the validation loss of *this* model, now". The policy continues from its
current weights (`policies.reinforce.train_policy`) and the result is the next round's policy.
With `update.algorithm=es` the proposal is instead evolution strategies on a few feature weights
(`policies.es.train_shifts`): pairs of episodes under the same seed from the same checkpoint, so
each pair's return difference is the effect of the two rankings alone. With
`update.es_return=trial` an ES episode is no environment episode but a whole trial round: the
next selection its ranking makes from everything the arm has left, trained from the arm's
checkpoint and judged by the validation loss -- what the loop will do next, measured.
The test split is never seen here: rewards use the validation half of the held-out text.

REINFORCE from a few dozen noisy rewards can make the ranking worse as easily as better, so
with `update.trial_round` a trial round (curator/loop/trial.py) on the arm's own checkpoint
compares the next selection of every choice on the validation half and the best one becomes
the next round's policy if it leads the current one by more than `update.trial_margin` (the
trial's noise; otherwise the current policy stays). The choices: the current policy, the
REINFORCE proposal, and the current network with each of `update.signal_weights` as the weight
of the model signal (`update.signal`, curator/loop/signal.py) under the arm's model, which the
policy file then carries (and, once a weight is carried, the network alone: w=0). That weight
is the loop's other handle on its model: where REINFORCE's per-batch rewards are too noisy to
move the ranking, one scalar judged by a whole trial round is not. The signal computed here is
kept next to the policy file for the next round's unit, which ranks the same documents under
the same checkpoint (curator/loop/signal_cache.py).
"""

from __future__ import annotations

import copy
import json
import time
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from connectors.fs import write_text_atomic
from curator.loop.config import LoopConfig
from curator.loop.pool import LoopPool
from curator.loop.signal import SIGNAL_KEY, loop_ranking, model_signal
from curator.loop.signal_cache import save_signal, signal_cache_path
from curator.loop.trial import trial_loss
from curator.loop.unit import build_trainer, latest, trainer_spec

if TYPE_CHECKING:
    from policies.agent import PolicyNet
    from policies.checkpoint import Policy
    from policies.config import AgentConfig, EnvConfig
    from policies.env import CurationEnv
    from policies.es import EpisodeReturn


ES_TRIAL_ORDERS = 1_000_000
"""Reading orders of ES's trial-round episodes start here (order = this + the episode's seed),
far from the final trial's orders 0..update.trial_orders-1, which judge the proposal afresh."""


def update_candidates(
    cfg: LoopConfig, ranking: np.ndarray, n_tokens: np.ndarray, min_docs: int
) -> np.ndarray:
    """Mask of the update's candidates among the remaining documents (`ranking`, `n_tokens`
    aligned with them): the best-ranked ones holding `update.candidate_rounds` rounds' tokens,
    or all of them when that is off or would leave fewer than `min_docs` (one env step)."""
    from policies.baselines import select_by_score

    if cfg.update.candidate_rounds:
        top = select_by_score(ranking, n_tokens, int(cfg.update.candidate_rounds *
                                                     cfg.round_tokens))
        if top.sum() >= min_docs:
            return top
    return np.ones(len(ranking), bool)


def signal_choices(weight: float, signal_weights: list[float]) -> dict[str, float]:
    """The model-signal weights a trial tries besides the current policy's `weight`, by name.
    Once a weight is carried, w=0 (the network alone) is among them: a signal can turn on the
    loop when its model has learned some off-target text (curator/loop/signal.py)."""
    weights = sorted({0.0, *signal_weights} if weight else set(signal_weights))
    return {f"signal {w:g}": float(w) for w in weights if w != weight}


def trial_choice(losses: dict[str, float], margin: float) -> str:
    """The trial's choice: the lowest validation loss if it leads "current" by more than
    `margin` (the trial's own noise), else "current"."""
    best = min(losses, key=lambda k: (losses[k], k != "current"))
    return best if losses[best] < losses["current"] - margin else "current"


def pool_scores(
    net: PolicyNet,
    left_features: np.ndarray,
    gain: np.ndarray | None,
    weight: float,
    left: np.ndarray,
    n_pool: int,
) -> np.ndarray:
    """One score per pool document (NaN for those the arm has used): the loop ranking of the
    remaining documents `left` under `net`, with the model signal `gain` at `weight`."""
    import torch

    with torch.no_grad():
        logits = net.score(torch.from_numpy(left_features)).numpy()
    scores = np.full(n_pool, np.nan)
    scores[left] = loop_ranking(logits, gain, weight)
    return scores


def update_record(policy_out: Path) -> Path:
    """What an update did (trial losses, choice, timings), written before its policy file."""
    return policy_out.with_suffix(".update.json")


def _finish(policy_out: Path, record: dict, policy: Policy, config: dict) -> dict:
    """Write the update's record, then its policy (the marker that the update is done)."""
    from policies.checkpoint import save_policy

    write_text_atomic(json.dumps(record, default=float), update_record(policy_out))
    save_policy(policy_out, policy.net, policy.norm, policy.spec, policy.tokenizer, config,
                policy.target, policy.reference)
    return record


def update_policy(
    cfg: LoopConfig,
    pool: LoopPool,
    seed: int,
    rnd: int,
    policy_in: str,
    model_dir: Path,
    remaining: np.ndarray,
    policy_out: Path,
    raw_features: np.ndarray | None = None,
) -> dict:
    """The next round's loop policy: a proposal (REINFORCE or ES, `cfg.update.algorithm`) from
    the arm's checkpoint, then the trial round's choice among the current policy, that proposal
    and the model-signal weights; writes the record and `policy_out` atomically."""
    import torch

    from policies.checkpoint import load_policy

    torch.set_num_threads(1)
    t0 = time.perf_counter()
    policy = load_policy(policy_in)
    env_cfg = cfg.update.env.model_copy(update={"learner": "trainer", "model_features": False})
    left = np.flatnonzero(remaining)
    if raw_features is None:
        raw_features = policy.feature_extractor()(pool.texts)
    left_features = policy.norm(raw_features[left])
    # the ranking the loop selects by: the policy's keep logits (PolicyScorer), plus the
    # model signal under the arm's checkpoint when the policy carries a weight for it
    logits_left = policy.net.score(torch.from_numpy(left_features)).numpy()
    weight = float(policy.config.get(SIGNAL_KEY, 0.0))
    gain = None
    if weight or cfg.update.signal_weights:
        checkpoint = latest(model_dir)
        _, model, _ = build_trainer(cfg, pool.vocab_size, seed, checkpoint)
        gain = model_signal(cfg.update.signal, model, pool.docs(left), pool.validation,
                            pool.word_start)
        # the next round's unit ranks these documents under this checkpoint: it reads them back
        save_signal(signal_cache_path(policy_out), cfg.update.signal, left, checkpoint, gain)
    current = loop_ranking(logits_left, gain, weight)
    top = update_candidates(cfg, current, pool.n_tokens[left], env_cfg.docs_per_step)
    idx, features, logits = left[top], left_features[top], logits_left[top]
    summary: dict = {"seed": seed, "round": rnd, "candidates": int(len(idx))}
    propose = cfg.update.steps > 0 and len(idx) >= env_cfg.docs_per_step
    if not propose and not cfg.update.signal_weights:
        # nothing (or too little) left to learn from: the policy goes on unchanged
        return _finish(policy_out, {**summary, "skipped": True,
                                    "seconds": time.perf_counter() - t0}, policy, policy.config)

    before = copy.deepcopy(policy.net.state_dict())
    result: dict = {}
    agent_cfg = None
    affine = (float("nan"), float("nan"))
    if propose:
        from policies.reinforce import affine_of

        # explore around the current ranking's median (see train_policy's logit_affine)
        affine = affine_of(logits)
        env, episode_return = None, None
        if cfg.update.algorithm == "es" and cfg.update.es_return == "trial":
            def episode_return(episode_seed: int) -> float:
                # one trial round on the next selection of the net's current weights, in a
                # reading order the final trial (orders 0..trial_orders-1) never uses
                scores = pool_scores(policy.net, left_features, gain, weight, left, len(pool))
                return -trial_loss(cfg, pool, seed, rnd, model_dir, scores, remaining,
                                   orders=[ES_TRIAL_ORDERS + episode_seed])
        else:
            env = _update_env(cfg, pool, seed, rnd, idx, features, model_dir, env_cfg)
        agent_cfg, result = _propose(cfg, seed, rnd, policy, policy_out, affine, env_cfg, env,
                                     episode_return)

    # the choices the trial round compares: (net weights, signal weight)
    choices = {"current": (before, weight)}
    if propose:
        choices["proposed"] = (copy.deepcopy(policy.net.state_dict()), weight)
    for name, w in signal_choices(weight, cfg.update.signal_weights).items():
        choices[name] = (before, w)
    trial: dict = {}
    chosen = "proposed" if propose else "current"
    if cfg.update.trial_round and len(choices) > 1:
        losses = {}
        for name, (state, w) in choices.items():
            policy.net.load_state_dict(state)
            scores = pool_scores(policy.net, left_features, gain, w, left, len(pool))
            losses[name] = trial_loss(cfg, pool, seed, rnd, model_dir, scores, remaining)
        chosen = trial_choice(losses, cfg.update.trial_margin)
        trial = {"trial_losses": losses, "chosen": chosen, "accepted": chosen != "current",
                 "trial_loss_current": losses["current"],
                 "trial_loss_proposed": losses[min(
                     (k for k in losses if k != "current"), key=losses.__getitem__)]}
    state, weight = choices[chosen]
    policy.net.load_state_dict(state)
    config = {**policy.config, SIGNAL_KEY: weight}
    if agent_cfg is not None:
        config[f"loop_update_round_{rnd}"] = agent_cfg.model_dump(mode="json")
    return _finish(policy_out, {
        **summary,
        "skipped": False,
        "mean_reward": result.get("mean_reward", float("nan")),
        "logit_center": affine[0],
        "logit_temperature": affine[1],
        "episodic_returns": result.get("episodic_returns", []),
        "proposal": propose,
        "algorithm": cfg.update.algorithm,
        **({"es_shifts": result["shifts"], "es_return": cfg.update.es_return}
           if "shifts" in result else {}),
        "signal_weight": weight,
        **trial,
        "seconds": time.perf_counter() - t0,
    }, policy, config)


def _update_env(
    cfg: LoopConfig,
    pool: LoopPool,
    seed: int,
    rnd: int,
    idx: np.ndarray,
    features: np.ndarray,
    model_dir: Path,
    env_cfg: EnvConfig,
) -> CurationEnv:
    """The curation environment over the candidates `idx` whose learner restarts, every
    episode, from the arm's checkpoint after round `rnd` and its place in the LR schedule."""
    from policies.env import CurationEnv, EnvData
    from policies.reward import TrainerLearner

    is_junk = pool.is_junk
    data = EnvData(features, pool.docs(idx), pool.validation, pool.vocab_size,
                   is_junk[idx] if is_junk is not None else None)
    _, model, optimizer = build_trainer(cfg, pool.vocab_size, seed, latest(model_dir))
    start = (model.state_dict(), optimizer.state_dict())
    spec = trainer_spec(cfg)
    # an episode's reward reads at most 4 batches of the validation stream: its first ones,
    # or (env.trainer_eval_windows=sampled) a fixed sample from across every validation document
    spec = type(spec)(**{**spec.__dict__, "eval_batches": min(4, spec.eval_batches),
                         "eval_windows": env_cfg.trainer_eval_windows})
    first = (rnd + 1) * cfg.steps_per_round  # where the next round's training starts
    learner = TrainerLearner(
        pool.vocab_size,
        pool.validation,
        env_cfg.step_tokens,
        env_cfg.episode_steps,
        spec,
        start_state=start,
        schedule=(first, cfg.total_steps),
    )
    return CurationEnv(data, env_cfg, learner=learner)


def _propose(
    cfg: LoopConfig,
    seed: int,
    rnd: int,
    policy: Policy,
    policy_out: Path,
    affine: tuple[float, float],
    env_cfg: EnvConfig,
    env: CurationEnv | None,
    episode_return: EpisodeReturn | None,
) -> tuple[AgentConfig, dict]:
    """Train `policy.net` in place by `cfg.update.algorithm`: the trial's proposal. REINFORCE
    learns on `env`; ES on `episode_return` when given (update.es_return=trial), else on the
    ranked episodes of `env`. Returns (agent config, train result)."""
    import torch

    from policies.checkpoint import MetricsLog
    from policies.config import AgentConfig

    agent_cfg = AgentConfig(
        algorithm=cfg.update.algorithm,
        total_steps=max(1, cfg.update.steps),
        learning_rate=cfg.update.learning_rate,
        batch_steps=cfg.update.batch_steps,
        samples_per_step=cfg.update.samples_per_step,
        eval_interval=0,  # the trial round judges the proposal
        seed=seed * 1000 + rnd,
        hidden=policy.net.hidden,
        sketch_dim=policy.spec.sketch_dim,
        env=env_cfg,
        es=cfg.update.es,
    )
    torch.manual_seed(agent_cfg.seed)
    log = MetricsLog(policy_out.with_suffix(".metrics.jsonl"))
    try:
        if cfg.update.algorithm == "es":
            from policies.es import column_indices, ranked_return, train_shifts

            columns = column_indices(policy.spec.names, cfg.update.es.columns)
            if episode_return is None:
                assert env is not None
                episode_return = partial(ranked_return, policy.net, env)
            result = train_shifts(policy.net, episode_return, agent_cfg, columns, affine[1], log)
        else:
            from policies.reinforce import train_policy

            assert env is not None
            policy.net.train()
            result = train_policy(policy.net, env, agent_cfg, log, reset_seed=agent_cfg.seed,
                                  logit_affine=affine)
    finally:
        log.close()
    return agent_cfg, result
