"""REINFORCE and PPO must each learn: on the same seed and proxy environment, the trained policy
ranks clean above junk on a held-out pool draw clearly better than the untrained policy of the
same init seed, and its greedy return there is higher. Relative to the untrained policy, not an
absolute AUC: one feature column alone already ranks this pool well above chance (the untrained
net scores 0.62 through its random projection), so an absolute bar could pass without learning.
The pools and the tokenizer come from the standard library's text only, so every install draws
the same ones. With learning_rate 1e-9 both stay at the untrained AUC and the margin fails.
"""

import numpy as np
import pytest
import torch

from policies import ppo, reinforce
from policies.agent import PolicyNet
from policies.checkpoint import load_policy
from policies.config import AgentConfig, EnvConfig, PoolConfig
from policies.env import CurationEnv, env_data_from_pool
from policies.features import FeatureExtractor
from policies.pool import Sources, build_pool, chunk_lines, synthetic_sources

# Measured on the stdlib pools (seed 0, held-out draw 1): REINFORCE 400 steps AUC 0.622 ->
# 0.865; PPO 1600 steps 0.622 -> 0.735, 3200 steps -> 0.800 (PPO scores one mask per step where
# REINFORCE scores 8 with a leave-one-out baseline, so it gets twice the steps of 1600)
AUC_MARGIN = 0.1


@pytest.fixture(autouse=True)
def one_thread():
    """One core, as measured: torch's default thread pool on a shared 2-core box is 5-10x slower
    for these tiny networks."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory) -> bytes:
    """A sentencepiece model of the demo text itself (2k pieces), not the shipped policy's:
    the measured margins must not move whenever the default policy is rebuilt from other
    text (with the natural default's 4k crawl tokenizer PPO's untrained AUC starts at 0.71)."""
    from curator.config import TokenizerConfig
    from curator.tokenizer_train import train_tokenizer

    path = train_tokenizer(stdlib_sources().clean, TokenizerConfig(vocab_size=2048, seed=0),
                           tmp_path_factory.mktemp("tok") / "demo.model")
    return path.read_bytes()


def stdlib_sources() -> Sources:
    """Clean text from the Python standard library's pydoc topics only: the same on every
    install (the demo corpus also reads installed packages' descriptions, so a CI venv and a
    development venv drew different pools and PPO's margin differed with them)."""
    from curator.demo_corpus import pydoc_topics

    return synthetic_sources([d for rec in pydoc_topics() for d in chunk_lines(rec["text"], 20)])


@pytest.fixture(scope="module")
def pools():
    sources = stdlib_sources()
    train = build_pool(sources, n_docs=240, noise=0.5, seed=0, heldout_docs=30)
    heldout = build_pool(sources, n_docs=240, noise=0.5, seed=1, heldout_docs=30)
    return train, heldout


def auc(scores: np.ndarray, positive: np.ndarray) -> float:
    return float((scores[positive][:, None] > scores[~positive][None, :]).mean())


def learned(tmp_path, pools, tokenizer: bytes, algorithm: str, steps: int,
            learning_rate: float = 3e-3) -> dict[str, tuple[float, float]]:
    """(held-out AUC of clean above junk, greedy return on the held-out pool) of the untrained
    and the trained policy."""
    train, heldout = pools
    cfg = AgentConfig(
        algorithm=algorithm, output=str(tmp_path / "policy.safetensors"), total_steps=steps,
        sketch_dim=16, hidden=32, learning_rate=learning_rate, batch_steps=2, seed=0,
        env=EnvConfig(docs_per_step=16, step_tokens=1024, episode_steps=8, learner="proxy"),
        pool=PoolConfig(n_docs=240, heldout_docs=30),
    )
    algo = ppo if algorithm == "ppo" else reinforce
    policy = load_policy(algo.main(cfg, pool=train, tokenizer=tokenizer)["output"])
    torch.manual_seed(cfg.seed)  # the init main() starts from
    untrained = PolicyNet(policy.spec.dim, cfg.hidden)
    extractor = FeatureExtractor(policy.tokenizer, policy.spec)
    x = torch.from_numpy(policy.norm(extractor(heldout.texts)))
    data, _ = env_data_from_pool(heldout, extractor, policy.norm)
    env = CurationEnv(data, cfg.env)
    return {
        name: (auc(net.score(x).numpy(), ~heldout.is_junk), reinforce.greedy_return(net, env, 0))
        for name, net in (("untrained", untrained), ("trained", policy.net))
    }


@pytest.mark.parametrize(("algorithm", "steps"), [("reinforce", 400), ("ppo", 3200)])
def test_policy_learns_to_rank_clean_above_junk(tmp_path, pools, tokenizer, algorithm, steps):
    got = learned(tmp_path, pools, tokenizer, algorithm, steps)
    (auc0, return0), (auc1, return1) = got["untrained"], got["trained"]
    assert auc1 >= auc0 + AUC_MARGIN, got
    assert return1 > return0, got
