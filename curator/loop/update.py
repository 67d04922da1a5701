"""The loop agent's update after a round: rewards from the current checkpoint, REINFORCE step.

This is what closes the loop. The curation environment (policies/env.py) offers candidates
drawn from the documents the loop arm has not trained on yet; its learner is the bundled trainer
restored from the loop arm's checkpoint after this round, continuing the loop's own LR schedule,
so each reward is "how much did keeping these documents (vs a random equal-token choice of the
same candidates) lower the validation loss of *this* model, now". The policy continues from its
current weights (`policies.reinforce.train_policy`) and the result is the next round's policy.
The test split is never seen here: rewards use the validation half of the held-out text.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from curator.loop.config import LoopConfig
from curator.loop.pool import LoopPool
from curator.loop.unit import build_trainer, latest, trainer_spec


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
    idx = np.flatnonzero(remaining)
    env_cfg = cfg.update.env.model_copy(update={"learner": "trainer", "model_features": False})
    summary: dict = {"seed": seed, "round": rnd, "candidates": int(len(idx))}
    if cfg.update.steps == 0 or len(idx) < env_cfg.docs_per_step:
        # nothing (or too little) left to learn from: the policy goes on unchanged
        save_policy(
            policy_out, policy.net, policy.norm, policy.spec, policy.tokenizer, policy.config
        )
        return {**summary, "skipped": True, "seconds": time.perf_counter() - t0}

    if raw_features is None:
        raw_features = policy.feature_extractor()(pool.texts)
    features = policy.norm(raw_features[idx])
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
    policy.net.train()
    log = MetricsLog(policy_out.with_suffix(".metrics.jsonl"))
    # explore around the current ranking's median (see train_policy's logit_affine)
    logits = policy.net.score(torch.from_numpy(features)).numpy()
    affine = (float(np.median(logits)), max(float(np.std(logits)), 1e-3))
    result = train_policy(policy.net, env, agent_cfg, log, reset_seed=agent_cfg.seed,
                          logit_affine=affine)
    log.close()
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
        "seconds": time.perf_counter() - t0,
    }
