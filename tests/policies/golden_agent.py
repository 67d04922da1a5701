"""Tiny seeded REINFORCE and PPO trainings on a synthetic environment, and their golden weights.

The golden file `golden_default_agent.safetensors` holds the policy tensors these trainings
produced at the commit before the upweight action and the replay memory existed; a test checks
that the default config (both options off) still produces them bit for bit. The environment is
built from seeded numpy arrays, not from the demo pool, so changes to the feature extractor do
not move the golden. Regenerate (only when a change is meant to alter default training):
`python -m tests.policies.golden_agent`.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import torch

from policies import ppo, reinforce
from policies.agent import PolicyNet
from policies.checkpoint import MetricsLog
from policies.config import AgentConfig, EnvConfig, PPOConfig
from policies.env import CurationEnv, EnvData

GOLDEN = Path(__file__).with_name("golden_default_agent.safetensors")
N_FEATURES, VOCAB = 6, 64


def synthetic_data(seed: int = 0) -> EnvData:
    """64 documents: junk ones are uniform noise tokens, clean ones walk a fixed bigram chain
    (so the proxy learner's held-out loss rewards keeping them); feature 0 tells them apart."""
    rng = np.random.default_rng(seed)
    n = 64
    is_junk = rng.random(n) < 0.5
    features = rng.normal(size=(n, N_FEATURES)).astype(np.float32)
    features[:, 0] += np.where(is_junk, -1.0, 1.0).astype(np.float32)
    chain = rng.permutation(VOCAB)

    def clean(length: int) -> np.ndarray:
        start = rng.integers(0, VOCAB)
        return chain[(start + np.arange(length)) % VOCAB].astype(np.int64)

    docs = [rng.integers(0, VOCAB, int(m)).astype(np.int64) if j else clean(int(m))
            for j, m in zip(is_junk, rng.integers(20, 60, n), strict=True)]
    return EnvData(features, docs, clean(600), VOCAB, is_junk)


def env_config(**update: Any) -> EnvConfig:
    base = {"docs_per_step": 8, "step_tokens": 256, "episode_steps": 4, "learner": "proxy"}
    return EnvConfig(**{**base, **update})


def agent_config(tmp: Path, algorithm: str = "reinforce", **update: Any) -> AgentConfig:
    return AgentConfig(algorithm=algorithm, output=str(tmp / "policy.safetensors"),
                       total_steps=24, hidden=16, batch_steps=2, samples_per_step=4,
                       eval_interval=8, env=env_config(),
                       ppo=PPOConfig(num_steps=8, num_minibatches=2, update_epochs=2), **update)


def train_reinforce(cfg: AgentConfig, tmp: Path) -> tuple[PolicyNet, dict[str, Any]]:
    torch.manual_seed(cfg.seed)
    env = CurationEnv(synthetic_data(), cfg.env)
    net = PolicyNet(N_FEATURES, cfg.hidden, **_head_kwargs(cfg))
    log = MetricsLog(tmp / "reinforce.jsonl")
    summary = reinforce.train_policy(net, env, cfg, log, reset_seed=cfg.seed)
    log.close()
    return net, summary


def _head_kwargs(cfg: AgentConfig) -> dict[str, Any]:
    # the upweight head exists only from the commit that added it; the golden predates it
    return {"upweight": True} if getattr(cfg.env, "upweight", False) else {}


def train_ppo(cfg: AgentConfig, tmp: Path) -> PolicyNet:
    """ppo.main on the synthetic environment: its env factory is swapped for one that hands
    in the environment and a setup whose checkpoint writer hands the trained network out."""
    saved: dict[str, PolicyNet] = {}
    env = CurationEnv(synthetic_data(), cfg.env)
    setup = SimpleNamespace(env=env, save_policy=lambda path, net, config: saved.setdefault(
        "net", net))
    make_env = ppo.make_env
    ppo.make_env = lambda *a, **k: setup
    try:
        ppo.main(cfg.model_copy(update={"log_path": str(tmp / "ppo.jsonl")}))
    finally:
        ppo.make_env = make_env
    return saved["net"]


def default_tensors(tmp: Path) -> dict[str, torch.Tensor]:
    """Policy tensors of both algorithms trained with the default options."""
    net, _ = train_reinforce(agent_config(tmp), tmp)
    out = {f"reinforce.{k}": v.detach().clone() for k, v in net.state_dict().items()}
    net = train_ppo(agent_config(tmp, "ppo"), tmp)
    out.update({f"ppo.{k}": v.detach().clone() for k, v in net.state_dict().items()})
    return out


if __name__ == "__main__":
    import tempfile

    from safetensors.torch import save_file

    with tempfile.TemporaryDirectory() as d:
        save_file(default_tensors(Path(d)), str(GOLDEN))
    print(f"wrote {GOLDEN}")
