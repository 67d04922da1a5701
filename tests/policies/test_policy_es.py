"""Evolution strategies (policies/es.py) must learn, and only what it is given to learn.

Learning: on the proxy environment of test_policy_learning (stdlib pools, seed 0), ES from the
untrained network, shifting four feature weights, must rank clean above junk on a held-out
pool draw clearly better than the same untrained network, and return more there. With a
step of 1e-9 it stays where it started and the margin fails. Measured (6 iterations x 4
pairs, 0.3 s): AUC 0.622 -> 0.805, mean return over 10 held-out episodes 1.03 -> 9.54.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from policies import es
from policies.agent import PolicyNet
from policies.algorithms import trainer_for
from policies.checkpoint import load_policy
from policies.config import AgentConfig, EnvConfig, ESConfig, PoolConfig
from policies.env import CurationEnv, env_data_from_pool
from policies.features import FeatureExtractor
from tests.policies.test_policy_learning import auc, one_thread, pools, tokenizer  # noqa: F401

COLUMNS = ["gopher_alpha_words_ratio", "lexical_diversity", "compression_ratio",
           "gopher_n_stop_words"]
AUC_MARGIN = 0.1


def _cfg(tmp_path, step: float = 0.25, **es_kw) -> AgentConfig:
    return AgentConfig(
        algorithm="es", output=str(tmp_path / "policy.safetensors"), sketch_dim=16, hidden=32,
        seed=0, eval_interval=1,
        env=EnvConfig(docs_per_step=16, step_tokens=1024, episode_steps=8, learner="proxy"),
        pool=PoolConfig(n_docs=240, heldout_docs=30),
        es=ESConfig(columns=COLUMNS, step=step, **es_kw),
    )


def _learned(tmp_path, pools, tokenizer, step: float) -> dict:  # noqa: F811
    train, heldout = pools
    cfg = _cfg(tmp_path, step)
    summary = trainer_for(cfg)(cfg, pool=train, tokenizer=tokenizer)
    policy = load_policy(summary["output"])
    torch.manual_seed(cfg.seed)
    untrained = PolicyNet(policy.spec.dim, cfg.hidden)
    extractor = FeatureExtractor(policy.tokenizer, policy.spec)
    x = torch.from_numpy(policy.norm(extractor(heldout.texts)))
    data, _ = env_data_from_pool(heldout, extractor, policy.norm)
    env = CurationEnv(data, cfg.env)
    # the return over 10 episodes: 2 seeds (the training's model selection) are too noisy a
    # judge on a pool it never saw (measured: untrained 7.48 vs trained 7.07 on 2 seeds,
    # 1.03 vs 9.54 on 10)
    out = {name: (auc(net.score(x).numpy(), ~heldout.is_junk),
                  float(np.mean([es.ranked_return(net, env, s) for s in range(10)])))
           for name, net in (("untrained", untrained), ("trained", policy.net))}
    # only the named columns moved
    moved = np.flatnonzero((policy.net.linear != untrained.linear).detach().numpy())
    return {**out, "moved": [policy.spec.names[i] for i in moved], "summary": summary}


def test_es_learns_to_rank_clean_above_junk(tmp_path, pools, tokenizer):  # noqa: F811
    got = _learned(tmp_path, pools, tokenizer, step=0.25)
    (auc0, return0), (auc1, return1) = got["untrained"], got["trained"]
    assert auc1 >= auc0 + AUC_MARGIN, got
    assert return1 > return0, got
    assert set(got["moved"]) <= set(COLUMNS) and got["moved"], got


def test_es_without_a_step_stays_at_its_start(tmp_path, pools, tokenizer):  # noqa: F811
    got = _learned(tmp_path, pools, tokenizer, step=1e-9)
    assert got["trained"][0] < got["untrained"][0] + AUC_MARGIN, got


def test_es_columns_must_exist(tmp_path, pools, tokenizer):  # noqa: F811
    cfg = _cfg(tmp_path).model_copy(update={"es": ESConfig(columns=["no_such_column"])})
    with pytest.raises(ValueError, match="es.columns.*no_such_column"):
        trainer_for(cfg)(cfg, pool=pools[0], tokenizer=tokenizer)


def test_top_share_mask_keeps_the_highest_share() -> None:
    logits = np.array([0.1, 3.0, -1.0, 3.0, 2.0, 0.0])
    assert es.top_share_mask(logits, 0.5).tolist() == [0, 1, 0, 1, 1, 0]
    assert es.top_share_mask(logits, 0.01).tolist() == [0, 1, 0, 0, 0, 0]  # at least one


def test_es_refuses_the_upweight_action() -> None:
    # ES keeps a top share by rank: a third action would be silently ignored
    with pytest.raises(ValueError, match="env.upweight.*algorithm=es"):
        AgentConfig(algorithm="es", env=EnvConfig(upweight=True))
    AgentConfig(algorithm="reinforce", env=EnvConfig(upweight=True))
