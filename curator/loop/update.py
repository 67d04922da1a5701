"""The loop agent's update after a round: rewards from the current checkpoint, REINFORCE step.

This is what closes the loop. The curation environment (policies/env.py) offers candidates
drawn from the documents the loop arm has not trained on yet -- by default only the best-ranked
of them (`update.candidate_rounds`), where the next rounds' selections are decided, so the
rewards teach the ranking at its margin and not again the junk-vs-clean split the round-0
policy already knows; its learner is the bundled trainer
restored from the loop arm's checkpoint after this round, continuing the loop's own LR schedule,
so each reward is "how much did keeping these documents (vs a random equal-token choice of the
same candidates) lower the validation loss of *this* model, now". The policy continues from its
current weights (`policies.reinforce.train_policy`) and the result is the next round's policy.
The test split is never seen here: rewards use the validation half of the held-out text.

REINFORCE from a few dozen noisy rewards can make the ranking worse as easily as better, so
with `update.trial_round` the proposal is adopted only if a trial round (curator/loop/trial.py)
on the arm's own checkpoint says its selection lowers the validation loss at least as much as
the current policy's; otherwise the next round's policy is the current one again.
"""

from __future__ import annotations

import copy
import time
from pathlib import Path

import numpy as np

from curator.loop.config import LoopConfig
from curator.loop.pool import LoopPool
from curator.loop.trial import trial_loss
from curator.loop.unit import build_trainer, latest, trainer_spec


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
    """Train `policy_in` for `cfg.update.steps` env steps; write `policy_out` atomically."""
    import torch

    from policies.checkpoint import MetricsLog, load_policy, save_policy
    from policies.config import AgentConfig
    from policies.env import CurationEnv, EnvData
    from policies.reinforce import train_policy
    from policies.reward import TrainerLearner

    torch.set_num_threads(1)
    t0 = time.perf_counter()
    policy = load_policy(policy_in)
    env_cfg = cfg.update.env.model_copy(update={"learner": "trainer", "model_features": False})
    left = np.flatnonzero(remaining)
    if raw_features is None:
        raw_features = policy.feature_extractor()(pool.texts)
    left_features = policy.norm(raw_features[left])
    # the ranking the loop selects by (PolicyScorer: the keep logit of the normalized features)
    current = policy.net.score(torch.from_numpy(left_features)).numpy()
    top = update_candidates(cfg, current, pool.n_tokens[left], env_cfg.docs_per_step)
    idx, features, logits = left[top], left_features[top], current[top]
    summary: dict = {"seed": seed, "round": rnd, "candidates": int(len(idx))}
    if cfg.update.steps == 0 or len(idx) < env_cfg.docs_per_step:
        # nothing (or too little) left to learn from: the policy goes on unchanged
        save_policy(policy_out, policy.net, policy.norm, policy.spec, policy.tokenizer,
                    policy.config, policy.target)
        return {**summary, "skipped": True, "seconds": time.perf_counter() - t0}

    data = EnvData(features, pool.docs(idx), pool.validation, pool.vocab_size, pool.is_junk[idx])
    _, model, optimizer = build_trainer(cfg, pool.vocab_size, seed, latest(model_dir))
    start = (model.state_dict(), optimizer.state_dict())
    spec = trainer_spec(cfg)
    spec = type(spec)(**{**spec.__dict__, "eval_batches": min(4, spec.eval_batches)})
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
    env = CurationEnv(data, env_cfg, learner=learner)
    agent_cfg = AgentConfig(
        total_steps=cfg.update.steps,
        learning_rate=cfg.update.learning_rate,
        batch_steps=cfg.update.batch_steps,
        samples_per_step=cfg.update.samples_per_step,
        eval_interval=0,
        seed=seed * 1000 + rnd,
        hidden=policy.net.hidden,
        sketch_dim=policy.spec.sketch_dim,
        env=env_cfg,
    )
    torch.manual_seed(agent_cfg.seed)
    before = copy.deepcopy(policy.net.state_dict())
    policy.net.train()
    log = MetricsLog(policy_out.with_suffix(".metrics.jsonl"))
    # explore around the current ranking's median (see train_policy's logit_affine)
    affine = (float(np.median(logits)), max(float(np.std(logits)), 1e-3))
    result = train_policy(policy.net, env, agent_cfg, log, reset_seed=agent_cfg.seed,
                          logit_affine=affine)
    log.close()
    trial: dict = {}
    if cfg.update.trial_round:
        proposed = policy.net.score(torch.from_numpy(left_features)).numpy()
        losses = {}
        for name, ranking in (("current", current), ("proposed", proposed)):
            scores = np.full(len(pool), np.nan)
            scores[left] = ranking
            losses[name] = trial_loss(cfg, pool, seed, rnd, model_dir, scores, remaining)
        accepted = losses["proposed"] <= losses["current"]
        if not accepted:
            policy.net.load_state_dict(before)
        trial = {"trial_loss_current": losses["current"],
                 "trial_loss_proposed": losses["proposed"], "accepted": bool(accepted)}
    config = {**policy.config, f"loop_update_round_{rnd}": agent_cfg.model_dump(mode="json")}
    save_policy(
        policy_out, policy.net, policy.norm, policy.spec, policy.tokenizer, config, policy.target
    )
    return {
        **summary,
        "skipped": False,
        "mean_reward": result["mean_reward"],
        "logit_center": affine[0],
        "logit_temperature": affine[1],
        "episodic_returns": result["episodic_returns"],
        **trial,
        "seconds": time.perf_counter() - t0,
    }
