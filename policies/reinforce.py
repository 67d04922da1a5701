"""REINFORCE for the curation environment (DVRL, Yoon et al. 2020), one readable file.

The policy keeps each candidate with probability sigmoid(logit(features)); the environment
returns one scalar reward per step for the whole selection (held-out gain vs a random equal-
token selection, minus the keep-rate budget term). Estimator: `samples_per_step` masks of the
same candidates are scored from the same learner state (`env.peek`, the last one is stepped),
advantage = a mask's reward minus the mean reward of the others (leave-one-out, "RLOO", Kool
et al. 2019); with one mask it is DVRL's reward minus an exponential moving average. Gradient =
advantage * sum of the log-probs of the mask's keep/drop decisions, scaled by a running std so
the step size does not depend on the reward's units; gradients are averaged over
`batch_steps` steps per update, and the weights with the best greedy return on fixed
evaluation episodes are the ones saved (model selection on the reward alone, never on labels).
`main(cfg)` is importable (tests and jobs call it); metrics use cleanrl's names in a JSONL log;
the result is a safetensors policy checkpoint.

Options (both off by default, where this file runs exactly as without them): `env.upweight`
samples drop/keep/upweight per document (agent.ActionDist, one code path for both action
kinds); `replay.enabled` stores every sampled mask as a transition (replay.py) and after each
fresh update takes `replay.updates_per_step` mini-updates on replayed transitions, weighted by
the truncated importance ratio.
"""

from __future__ import annotations

import copy
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from policies.agent import PolicyNet
from policies.checkpoint import MetricsLog
from policies.config import AgentConfig, load_agent_config
from policies.env import CurationEnv, TrainingSetup, make_env
from policies.pool import Pool
from policies.replay import ReplayBuffer, Transitions, replay_loss
from policies.target_fitting import FittedTarget


def main(cfg: AgentConfig, pool: Pool | None = None, tokenizer: bytes | None = None,
         fitted: FittedTarget | None = None) -> dict[str, Any]:
    """Train a policy from scratch on the config's environment and save it to `cfg.output`."""
    setup, net, setup_s = seeded_policy(cfg, pool, tokenizer, fitted, cfg.env.upweight)
    affine = start_policy(net, setup, cfg)
    log = MetricsLog(cfg.log_path or Path(cfg.output).with_name("metrics.jsonl"))
    summary = train_policy(net, setup.env, cfg, log, reset_seed=cfg.seed, logit_affine=affine,
                           keep_start=cfg.init != "scratch")
    log.close()
    setup.save_policy(cfg.output, net, cfg.model_dump(mode="json"))
    return {"output": cfg.output, "setup_s": setup_s, **summary}


def seeded_policy(cfg: AgentConfig, pool: Pool | None, tokenizer: bytes | None,
                  fitted: FittedTarget | None, upweight: bool = False
                  ) -> tuple[TrainingSetup, PolicyNet, float]:
    """The config's environment and the policy network at its seeded init, and the seconds
    the environment took to build (the seed is set before it, as every agent run did)."""
    torch.manual_seed(cfg.seed)
    t0 = time.time()
    setup = make_env(cfg, pool, tokenizer, fitted)
    setup_s = time.time() - t0
    return setup, PolicyNet(setup.env.observation_space.shape[1], cfg.hidden,
                            upweight=upweight), setup_s


LOGISTIC_L2 = 0.1


def logistic_init(net: PolicyNet, setup: TrainingSetup) -> tuple[float, float]:
    """Start the linear path from the features fitted without RL: a class-balanced logistic
    regression of the target text the agent may see (the fitting part and the reward's
    held-out part) against the pool. Returns the sampling affine (median, std of the pool's
    logits) so that sampled masks keep about half the candidates and still differ from each
    other (else every leave-one-out advantage is 0)."""
    from policies.target import fit_classifier

    if setup.spec.model_features:
        raise ValueError("init=logistic needs features the pool alone defines; "
                         "set env.model_features=false")
    pool = setup.env.data.features
    goal = setup.norm(setup.extractor(target_text(setup.pool)))
    # strong L2: the target is a few hundred documents at most against ~170 features
    w, b = fit_classifier(goal, pool, steps=500, seed=0, weight_decay=LOGISTIC_L2)
    with torch.no_grad():
        net.linear.copy_(torch.from_numpy(w))
        net.keep_head.bias.fill_(b)
    return logit_affine(net, pool)


def column_init(net: PolicyNet, setup: TrainingSetup, column: str) -> tuple[float, float]:
    """Start from a policy that ranks exactly as one feature: weight 1 on its z-score, every
    other weight and the MLP's output 0. Returns the sampling affine, as `logistic_init`."""
    names = setup.spec.names
    if column not in names:
        raise ValueError(f"init_column={column!r} is not among the policy's features "
                         f"({', '.join(n for n in names if not n.startswith('sketch_'))}); "
                         "name one the config's features produce")
    with torch.no_grad():
        net.linear.zero_()
        net.linear[names.index(column)] = 1.0
        net.keep_head.weight.zero_()
        net.keep_head.bias.zero_()
    return logit_affine(net, setup.env.data.features)


def start_policy(net: PolicyNet, setup: TrainingSetup, cfg: AgentConfig) -> tuple[float, float]:
    """Set `net` to the config's `init` (scratch leaves the seeded init); the sampling affine."""
    if cfg.init == "logistic":
        return logistic_init(net, setup)
    if cfg.init == "column":
        return column_init(net, setup, cfg.init_column)
    return (0.0, 1.0)


def logit_affine(net: PolicyNet, features: np.ndarray) -> tuple[float, float]:
    """(median, spread) of the net's keep logits over `features`: where the pool's ranking
    is centred and how far apart its documents are (std, at least 1e-3)."""
    with torch.no_grad():
        return affine_of(net.keep_logits(torch.from_numpy(features)).numpy())


def affine_of(logits: np.ndarray) -> tuple[float, float]:
    """(median, std floored at 1e-3) of keep logits already computed."""
    return float(np.median(logits)), float(max(np.std(logits), 1e-3))


def target_text(pool: Pool) -> list[str]:
    """Every target document training may use: the fitting part and the reward's part
    (one list when the pool has only the held-out split)."""
    return pool.heldout + pool.target if pool.target else list(pool.heldout)


def train_policy(net: PolicyNet, env: CurationEnv, cfg: AgentConfig, log: MetricsLog,
                 reset_seed: int, logit_affine: tuple[float, float] = (0.0, 1.0),
                 keep_start: bool = False) -> dict[str, Any]:
    """REINFORCE on `env` for `cfg.total_steps` steps, updating `net` in place.

    `keep_start`: the starting weights enter the model selection (greedy evaluation before
    the first step), so weights RL does not improve on the reward are not replaced.

    Also the closed loop's per-round update (curator/loop/update.py): there `net` is the
    current policy and `env` starts every episode from the loop's current model checkpoint.
    `logit_affine` = (center, temperature): masks are sampled from sigmoid((logit - center) /
    temperature). The loop selects by the ranking of the logits only, which this leaves
    unchanged, while a trained policy's raw keep probabilities are near 0 or 1 -- every
    sampled mask would be the same and the leave-one-out advantages zero.
    """
    center, temperature = logit_affine
    upweight = env.cfg.upweight
    if upweight and not net.upweight:
        raise ValueError("env.upweight is on but the policy has no upweight head; build it "
                         "with PolicyNet(..., upweight=True)")
    replay = (ReplayBuffer(cfg.replay.capacity, env.observation_space.shape, seed=cfg.seed)
              if cfg.replay.enabled else None)
    replay_metrics: dict[str, float] = {}
    optimizer = torch.optim.Adam(net.parameters(), lr=cfg.learning_rate)
    ent_coef = cfg.ent_coef  # keeps early decisions exploratory until the baseline settles
    baseline, var, beta = 0.0, 1.0, cfg.baseline_beta

    obs, _ = env.reset(seed=reset_seed)
    episodic_return, returns, rewards, spreads = 0.0, [], [], []
    best_return, best_state, eval_returns = -np.inf, copy.deepcopy(net.state_dict()), []
    if keep_start and cfg.eval_interval:
        # the starting weights are a candidate too: from a fitted init, RL must beat it on
        # the environment's own reward to replace it
        best_return = greedy_return(net, env, cfg.seed, center)
        eval_returns.append(best_return)
        obs, _ = env.reset(seed=reset_seed)
    improved_on_start = not (keep_start and cfg.eval_interval)
    start = time.time()
    optimizer.zero_grad()
    k = cfg.samples_per_step
    for step in range(cfg.total_steps):
        # 1. act: sample k keep/drop masks of the same candidates; k-1 are only scored (same
        #    learner state), the last one is the action the episode goes on with
        obs_t = torch.from_numpy(obs)
        dist = net.dist(obs_t, upweight, center, temperature)
        actions = dist.sample((k,))
        masks = actions.numpy().astype(np.int8)
        peeked = [env.peek(m) for m in masks[:-1]]
        next_obs, reward, terminated, truncated, info = env.step(masks[-1])
        episodic_return += reward
        rewards.append(reward)
        step_rewards = np.array([*peeked, reward])
        spreads.append(float(step_rewards.std()))

        # 2. advantages. k > 1: leave-one-out (RLOO), each mask against the mean of the
        #    others -- a baseline of this very state, which the moving average is not (how
        #    much any selection can gain depends on how much junk the candidates hold).
        #    k = 1: DVRL's moving average. Both scaled by a running std so the step size
        #    does not depend on the reward's units.
        if k > 1:
            raw = step_rewards - (step_rewards.sum() - step_rewards) / (k - 1)
            baseline = float(step_rewards.mean())  # logged: this state's mean reward
        else:
            raw = step_rewards - baseline
            baseline += beta * (reward - baseline)
        var += beta * (float(np.mean(raw**2)) - var)
        advantage = torch.from_numpy(raw / np.sqrt(var + 1e-8)).float()

        # 3. policy gradient on the joint log-prob of each mask's decisions, averaged over
        #    the masks and over `batch_steps` env steps per update (one scalar reward is a
        #    noisy judge of 32 decisions)
        logp = dist.log_prob(actions).sum(-1)
        policy_loss = -(advantage * logp).mean()
        entropy = dist.entropy().mean()
        loss = (policy_loss - ent_coef * entropy) / cfg.batch_steps
        loss.backward()
        if replay is not None:
            replay.add(Transitions(obs_t.expand(k, *obs_t.shape), actions, advantage,
                                   logp.detach()))
        if (step + 1) % cfg.batch_steps == 0 or step + 1 == cfg.total_steps:
            torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
            optimizer.step()
            optimizer.zero_grad()
            if replay is not None:
                replay_metrics = replay_updates(net, optimizer, replay, cfg, upweight,
                                                logit_affine)

        metrics = {"charts/reward": reward, "charts/keep_rate": info["keep_rate"],
                   "charts/gain_pct": info["gain_pct"], "losses/policy_loss": policy_loss.item(),
                   "losses/entropy": entropy.item(), "charts/baseline": baseline,
                   "charts/reward_spread": spreads[-1]}
        if "upweight_rate" in info:
            metrics["charts/upweight_rate"] = info["upweight_rate"]
            for name in ("junk_upweight_rate", "clean_upweight_rate"):
                if name in info:
                    metrics[f"charts/{name}"] = info[name]
        metrics.update(replay_metrics)  # the latest replayed update's
        if "junk_keep_rate" in info:
            metrics["charts/junk_keep_rate"] = info["junk_keep_rate"]
            metrics["charts/clean_keep_rate"] = info["clean_keep_rate"]
        if terminated or truncated:
            metrics["charts/episodic_return"] = episodic_return
            returns.append(episodic_return)
            episodic_return = 0.0
            next_obs, _ = env.reset()
        # 4. model selection on the environment's own reward (never on labels): greedy
        #    episodes with fixed seeds; the best-scoring weights are the ones kept
        if cfg.eval_interval and (step + 1) % cfg.eval_interval == 0:
            eval_return = greedy_return(net, env, cfg.seed, center)
            eval_returns.append(eval_return)
            metrics["charts/eval_return"] = eval_return
            if eval_return > best_return:
                best_return, best_state = eval_return, copy.deepcopy(net.state_dict())
                improved_on_start = True
            next_obs, _ = env.reset()
            episodic_return = 0.0
        if step % 10 == 0 or terminated or "charts/eval_return" in metrics:
            metrics["charts/SPS"] = (step + 1) / (time.time() - start)
            log.log(step, **{k: v for k, v in metrics.items() if np.isfinite(v)})
        obs = next_obs
    if cfg.eval_interval and eval_returns:
        net.load_state_dict(best_state)
    return {"steps": cfg.total_steps, "train_s": time.time() - start,
            "episodic_returns": returns, "eval_returns": eval_returns,
            "best_eval_return": best_return, "mean_reward": float(np.mean(rewards)),
            "rl_replaced_start": improved_on_start,
            "mean_reward_spread": float(np.mean(spreads))}


def replay_updates(net: PolicyNet, optimizer: torch.optim.Optimizer, replay: ReplayBuffer,
                   cfg: AgentConfig, upweight: bool, logit_affine: tuple[float, float]
                   ) -> dict[str, float]:
    """`replay.updates_per_step` optimizer steps on replayed transitions (truncated-IS policy
    gradient, replay.py); returns their metrics. Transitions are sampled from the same
    (tempered) distribution they are replayed under, so the ratio compares like with like."""
    rc = cfg.replay
    losses, weights = [], []
    for _ in range(rc.updates_per_step):
        batch = replay.sample(rc.batch)
        logp_now = net.dist(batch.obs, upweight, *logit_affine).log_prob(batch.actions).sum(-1)
        loss, weight = replay_loss(logp_now, batch, rc.clip)
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad()
        losses.append(loss.item())
        weights.append(weight)
    w = torch.cat(weights)
    return {"losses/replay_loss": float(np.mean(losses)),
            "charts/replay_is_mean": w.mean().item(),
            "charts/replay_is_max": w.max().item(),
            "charts/replay_clipped_frac": (w >= rc.clip).float().mean().item(),
            "charts/replay_size": float(len(replay))}


EVAL_SEEDS = (10_001, 10_002)


def greedy_return(net: PolicyNet, env: CurationEnv, seed: int, center: float = 0.0) -> float:
    """Mean return of deterministic episodes on fixed evaluation seeds: keep if the logit is
    above `center` (the sampling center; 0 = p > 0.5), then upweight if p > 0.5.

    Only the policy's forward pass is gradient-free: the environment's transformer learner
    trains inside `env.step`."""
    total = 0.0
    for s in EVAL_SEEDS:
        obs, _ = env.reset(seed=seed + s)
        done = False
        while not done:
            with torch.no_grad():
                dist = net.dist(torch.from_numpy(obs), env.cfg.upweight, center)
                action = dist.greedy().numpy().astype(np.int8)
            obs, reward, terminated, truncated, _ = env.step(action)
            total += reward
            done = terminated or truncated
    return total / len(EVAL_SEEDS)


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=None)
    parser.add_argument("--set", action="append", default=[], dest="overrides")
    ns = parser.parse_args()
    cfg = load_agent_config(ns.config, ns.overrides)
    print(main(cfg.model_copy(update={"algorithm": "reinforce"})))
