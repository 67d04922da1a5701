"""REINFORCE with a moving-average baseline (DVRL, Yoon et al. 2020), one readable file.

The policy keeps each candidate with probability sigmoid(logit(features)); the environment
returns one scalar reward per step for the whole selection (held-out gain vs a random equal-
token selection, minus the keep-rate budget term). DVRL's estimator: advantage = reward minus
an exponential moving average of past rewards, gradient = advantage * sum of the log-probs of
the sampled keep/drop decisions, scaled by a running std so the step size does not depend on
the reward's units. `main(cfg)` is importable (tests and jobs call it); metrics use cleanrl's
names in a JSONL log; the result is a safetensors policy checkpoint.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from policies.agent import PolicyNet
from policies.checkpoint import MetricsLog, save_policy
from policies.config import AgentConfig, load_agent_config
from policies.env import make_env
from policies.pool import Pool


def main(cfg: AgentConfig, pool: Pool | None = None, tokenizer: bytes | None = None
         ) -> dict[str, Any]:
    torch.manual_seed(cfg.seed)
    t0 = time.time()
    setup = make_env(cfg, pool, tokenizer)
    env = setup.env
    setup_s = time.time() - t0
    n_features = env.observation_space.shape[1]
    net = PolicyNet(n_features, cfg.hidden)
    optimizer = torch.optim.Adam(net.parameters(), lr=cfg.learning_rate)
    log = MetricsLog(cfg.log_path or Path(cfg.output).with_name("metrics.jsonl"))
    ent_coef = cfg.ent_coef  # keeps early decisions exploratory until the baseline settles
    baseline, var, beta = 0.0, 1.0, cfg.baseline_beta

    obs, _ = env.reset(seed=cfg.seed)
    episodic_return, returns = 0.0, []
    start = time.time()
    for step in range(cfg.total_steps):
        # 1. act: sample keep/drop per candidate
        obs_t = torch.from_numpy(obs)
        dist = net.dist(obs_t)
        action = dist.sample()
        next_obs, reward, terminated, truncated, info = env.step(action.numpy().astype(np.int8))
        episodic_return += reward

        # 2. advantage against the moving-average baseline (DVRL), scaled by a running std
        advantage = (reward - baseline) / np.sqrt(var + 1e-8)
        baseline += beta * (reward - baseline)
        var += beta * ((reward - baseline) ** 2 - var)

        # 3. policy-gradient step on the joint log-prob of this step's decisions
        policy_loss = -advantage * dist.log_prob(action).sum()
        entropy = dist.entropy().mean()
        loss = policy_loss - ent_coef * entropy
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
        optimizer.step()

        metrics = {"charts/reward": reward, "charts/keep_rate": info["keep_rate"],
                   "charts/gain_pct": info["gain_pct"], "losses/policy_loss": policy_loss.item(),
                   "losses/entropy": entropy.item(), "charts/baseline": baseline}
        if "junk_keep_rate" in info:
            metrics["charts/junk_keep_rate"] = info["junk_keep_rate"]
            metrics["charts/clean_keep_rate"] = info["clean_keep_rate"]
        if terminated or truncated:
            metrics["charts/episodic_return"] = episodic_return
            returns.append(episodic_return)
            episodic_return = 0.0
            next_obs, _ = env.reset()
        if step % 10 == 0 or terminated:
            metrics["charts/SPS"] = (step + 1) / (time.time() - start)
            log.log(step, **{k: v for k, v in metrics.items() if np.isfinite(v)})
        obs = next_obs
    log.close()
    train_s = time.time() - start
    config = cfg.model_dump(mode="json")
    save_policy(cfg.output, net, setup.norm, setup.spec,
                setup.extractor.tokenizer_proto, config)
    return {"output": cfg.output, "steps": cfg.total_steps, "setup_s": setup_s,
            "train_s": train_s, "episodic_returns": returns}


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=None)
    parser.add_argument("--set", action="append", default=[], dest="overrides")
    ns = parser.parse_args()
    cfg = load_agent_config(ns.config, ns.overrides)
    print(main(cfg.model_copy(update={"algorithm": "reinforce"})))
