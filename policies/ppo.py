"""PPO for the curation environment, in the shape of cleanrl's ppo.py (one readable file).

Differences from cleanrl's discrete-action PPO, and why: the action is a vector of independent
keep/drop Bernoullis (one per candidate), so log-probs and entropies are summed over the
candidates of a step (with `env.upweight`, drop/keep/upweight per candidate through the same
agent.ActionDist REINFORCE uses); one environment (each step already trains two model branches, more
copies would only multiply the cost on CPU). `main(cfg)` is importable; metrics use cleanrl's
names (`charts/episodic_return`, `losses/policy_loss`, `losses/value_loss`, `losses/entropy`,
`losses/approx_kl`, `losses/clipfrac`, `charts/SPS`) in a JSONL log.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from policies.agent import PolicyNet
from policies.checkpoint import MetricsLog
from policies.config import AgentConfig, load_agent_config
from policies.env import make_env
from policies.pool import Pool
from policies.target_fitting import FittedTarget


def main(cfg: AgentConfig, pool: Pool | None = None, tokenizer: bytes | None = None,
         fitted: FittedTarget | None = None) -> dict[str, Any]:
    args = cfg.ppo
    torch.manual_seed(cfg.seed)
    t0 = time.time()
    setup = make_env(cfg, pool, tokenizer, fitted)
    env = setup.env
    setup_s = time.time() - t0
    k, n_features = env.observation_space.shape
    agent = PolicyNet(n_features, cfg.hidden, upweight=cfg.env.upweight)
    optimizer = torch.optim.Adam(agent.parameters(), lr=cfg.learning_rate, eps=1e-5)
    log = MetricsLog(cfg.log_path or Path(cfg.output).with_name("metrics.jsonl"))

    # rollout storage (cleanrl layout, one env)
    obs = torch.zeros((args.num_steps, k, n_features))
    actions = torch.zeros((args.num_steps, k))  # 0/1, or 0/1/2 with env.upweight
    logprobs = torch.zeros(args.num_steps)
    rewards = torch.zeros(args.num_steps)
    dones = torch.zeros(args.num_steps)
    values = torch.zeros(args.num_steps)

    global_step, returns = 0, []
    start = time.time()
    next_obs = torch.from_numpy(env.reset(seed=cfg.seed)[0])
    next_done = torch.zeros(())
    episodic_return = 0.0
    num_iterations = max(1, cfg.total_steps // args.num_steps)
    for iteration in range(1, num_iterations + 1):
        # anneal the learning rate linearly to 0 over training (cleanrl's anneal_lr)
        optimizer.param_groups[0]["lr"] = (1.0 - (iteration - 1.0) / num_iterations) * \
            cfg.learning_rate
        for step in range(args.num_steps):
            global_step += 1
            obs[step], dones[step] = next_obs, next_done
            with torch.no_grad():
                dist = agent.dist(next_obs)
                action = dist.sample()
                values[step] = agent.value(next_obs)
            actions[step], logprobs[step] = action, dist.log_prob(action).sum()
            o, reward, terminated, truncated, info = env.step(action.numpy().astype(np.int8))
            rewards[step] = reward
            episodic_return += reward
            next_done = torch.tensor(float(terminated or truncated))
            if terminated or truncated:
                rates = {f"charts/{n}": info[n] for n in ("keep_rate", "upweight_rate")
                         if n in info}
                log.log(global_step, **{"charts/episodic_return": episodic_return, **rates})
                returns.append(episodic_return)
                episodic_return = 0.0
                o, _ = env.reset()
            next_obs = torch.from_numpy(o)

        # bootstrap value, GAE
        with torch.no_grad():
            next_value = agent.value(next_obs)
            advantages = torch.zeros_like(rewards)
            lastgaelam = 0.0
            for t in reversed(range(args.num_steps)):
                if t == args.num_steps - 1:
                    nextnonterminal, nextvalues = 1.0 - next_done, next_value
                else:
                    nextnonterminal, nextvalues = 1.0 - dones[t + 1], values[t + 1]
                delta = rewards[t] + args.gamma * nextvalues * nextnonterminal - values[t]
                lastgaelam = delta + args.gamma * args.gae_lambda * nextnonterminal * lastgaelam
                advantages[t] = lastgaelam
            returns_t = advantages + values

        # optimize policy and value network
        b_inds = np.arange(args.num_steps)
        minibatch = max(1, args.num_steps // args.num_minibatches)
        clipfracs = []
        for _ in range(args.update_epochs):
            np.random.default_rng(cfg.seed + iteration).shuffle(b_inds)
            for lo in range(0, args.num_steps, minibatch):
                mb = b_inds[lo : lo + minibatch]
                dist = agent.dist(obs[mb])
                newlogprob = dist.log_prob(actions[mb]).sum(-1)
                entropy = dist.entropy().sum(-1)
                newvalue = agent.value(obs[mb])
                logratio = newlogprob - logprobs[mb]
                ratio = logratio.exp()
                with torch.no_grad():
                    approx_kl = ((ratio - 1) - logratio).mean()
                    clipfracs.append(((ratio - 1.0).abs() > args.clip_coef).float().mean().item())
                mb_adv = advantages[mb]
                if args.norm_adv and len(mb) > 1:
                    mb_adv = (mb_adv - mb_adv.mean()) / (mb_adv.std() + 1e-8)
                pg_loss = torch.max(-mb_adv * ratio, -mb_adv * torch.clamp(
                    ratio, 1 - args.clip_coef, 1 + args.clip_coef)).mean()
                v_loss = 0.5 * ((newvalue - returns_t[mb]) ** 2).mean()
                entropy_loss = entropy.mean()
                loss = pg_loss - args.ent_coef * entropy_loss + v_loss * args.vf_coef
                optimizer.zero_grad()
                loss.backward()
                torch.nn.utils.clip_grad_norm_(agent.parameters(), args.max_grad_norm)
                optimizer.step()

        y_pred, y_true = values.numpy(), returns_t.numpy()
        var_y = np.var(y_true)
        explained_var = np.nan if var_y == 0 else 1 - np.var(y_true - y_pred) / var_y
        metrics = {
            "charts/learning_rate": optimizer.param_groups[0]["lr"],
            "losses/value_loss": v_loss.item(), "losses/policy_loss": pg_loss.item(),
            "losses/entropy": entropy_loss.item(), "losses/approx_kl": approx_kl.item(),
            "losses/clipfrac": float(np.mean(clipfracs)),
            "losses/explained_variance": explained_var,
            "charts/SPS": global_step / (time.time() - start),
        }
        log.log(global_step, **{k_: v for k_, v in metrics.items() if np.isfinite(v)})
    log.close()
    train_s = time.time() - start
    setup.save_policy(cfg.output, agent, cfg.model_dump(mode="json"))
    return {"output": cfg.output, "steps": global_step, "setup_s": setup_s, "train_s": train_s,
            "episodic_returns": returns}


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=None)
    parser.add_argument("--set", action="append", default=[], dest="overrides")
    ns = parser.parse_args()
    cfg = load_agent_config(ns.config, ns.overrides)
    print(main(cfg.model_copy(update={"algorithm": "ppo"})))
