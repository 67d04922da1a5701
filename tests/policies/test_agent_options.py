"""The agent's two options, upweight (drop/keep/upweight) and replay memory: each runs end to
end in the proxy environment, and with both off training is what it was (golden tensors)."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pytest
import torch
from gymnasium.utils.env_checker import check_env
from safetensors.torch import load_file

from policies import ppo, reinforce
from policies.agent import ActionDist, PolicyNet
from policies.checkpoint import DEFAULT_POLICY, load_policy
from policies.config import AgentConfig, EnvConfig, PoolConfig, ReplayConfig
from policies.env import CurationEnv
from policies.pool import build_pool, demo_sources
from policies.reward import ProxyLearner, upweighted_stream
from policies.scorer import PolicyScorer
from tests.policies.golden_agent import GOLDEN, default_tensors, env_config, synthetic_data


def test_default_options_reproduce_the_golden_tensors(tmp_path):
    """Both options off: REINFORCE (with eval and RLOO) and PPO give, bit for bit, the weights
    they gave before the options existed."""
    golden = load_file(str(GOLDEN))
    now = default_tensors(tmp_path)
    assert sorted(now) == sorted(golden)
    for name, tensor in golden.items():
        assert torch.equal(now[name], tensor), name


def test_action_dist_is_the_factored_categorical():
    torch.manual_seed(0)
    keep, up = torch.randn(5), torch.randn(5)
    dist = ActionDist(torch.distributions.Bernoulli(logits=keep),
                      torch.distributions.Bernoulli(logits=up))
    logp = torch.stack([dist.log_prob(torch.full((5,), float(a))) for a in (0, 1, 2)])
    probs = logp.exp()
    torch.testing.assert_close(probs.sum(0), torch.ones(5))
    pk, pu = torch.sigmoid(keep), torch.sigmoid(up)
    torch.testing.assert_close(probs, torch.stack([1 - pk, pk * (1 - pu), pk * pu]))
    torch.testing.assert_close(dist.entropy(), -(probs * logp).sum(0))
    sample = dist.sample((4000,))
    assert set(sample.unique().tolist()) == {0.0, 1.0, 2.0}
    freq = torch.stack([(sample == a).float().mean(0) for a in (0, 1, 2)])
    torch.testing.assert_close(freq, probs, atol=0.05, rtol=0)
    greedy = dist.greedy()
    assert torch.equal(greedy, (keep > 0).float() * (1 + (up > 0).float()))
    # keep/drop only: exactly the Bernoulli it wraps
    binary = ActionDist(torch.distributions.Bernoulli(logits=keep))
    mask = (keep > 0).float()
    assert torch.equal(binary.log_prob(mask), torch.distributions.Bernoulli(logits=keep)
                       .log_prob(mask))


def test_upweight_head_leaves_the_keep_logit_and_init_alone():
    torch.manual_seed(3)
    plain = PolicyNet(6, 16)
    torch.manual_seed(3)
    both = PolicyNet(6, 16, upweight=True)
    for name, tensor in plain.state_dict().items():
        assert torch.equal(both.state_dict()[name], tensor), name
    x = torch.randn(4, 8, 6)
    assert torch.equal(plain.keep_logits(x), both.keep_logits(x))
    assert both.up_logits(x).shape == (4, 8)
    with pytest.raises(ValueError, match="no upweight head"):
        plain.up_logits(x)


class _Recorder(ProxyLearner):
    """The proxy learner, remembering how many tokens each train() call got."""

    def train(self, tokens: np.ndarray, step: int, seed: int) -> None:
        self.calls.append(len(tokens))
        super().train(tokens, step, seed)

    def reset(self, seed: int) -> None:
        self.calls: list[int] = []
        super().reset(seed)


def test_upweight_env_repeats_documents_and_counts_distinct_keeps():
    data = synthetic_data()
    cfg = env_config(upweight=True, upweight_factor=3, step_tokens=4096)
    learner = _Recorder(data.vocab_size, data.heldout_tokens, cfg.step_tokens)
    env = CurationEnv(data, cfg, learner=learner)
    assert env.action_space.nvec.tolist() == [3] * cfg.docs_per_step
    check_env(CurationEnv(data, cfg), skip_render_check=True)
    _, info = env.reset(seed=1)
    lengths = np.array([len(data.doc_tokens[i]) for i in info["candidates"]])
    action = np.array([2, 1, 1, 0, 0, 0, 0, 0], np.int8)
    learner.calls.clear()
    _, _, _, _, info = env.step(action)
    random_branch, agent_branch = learner.calls
    assert agent_branch == 3 * lengths[0] + lengths[1] + lengths[2]
    assert random_branch == agent_branch  # equal tokens (the candidates hold enough)
    assert info["keep_rate"] == 3 / 8 and info["upweight_rate"] == 1 / 8
    with pytest.raises(ValueError, match="0 drop, 1 keep, 2 upweight"):
        env.step(np.full(8, 3, np.int8))


def test_upweighted_stream_is_a_shuffle_of_the_copies():
    docs = [np.full(n, i) for i, n in enumerate([3, 5, 2, 4])]
    copies = np.array([2, 1, 0, 3])
    a = upweighted_stream(docs, copies, np.random.default_rng(0))
    assert np.bincount(a, minlength=4).tolist() == [6, 5, 0, 12]
    assert np.array_equal(a, upweighted_stream(docs, copies, np.random.default_rng(0)))
    assert len(upweighted_stream(docs, np.zeros(4, np.int64), np.random.default_rng(0))) == 0


@pytest.fixture(scope="module")
def pool():
    return build_pool(demo_sources(), n_docs=120, noise=0.5, seed=0, heldout_docs=20)


@pytest.fixture(scope="module")
def tokenizer():
    return load_policy(DEFAULT_POLICY).tokenizer


def _cfg(tmp_path, algorithm: str = "reinforce", upweight: bool = False,
         replay: bool = False) -> AgentConfig:
    return AgentConfig(
        algorithm=algorithm, output=str(tmp_path / "policy.safetensors"), total_steps=24,
        sketch_dim=8, hidden=16, batch_steps=2, samples_per_step=4, eval_interval=12,
        env=EnvConfig(docs_per_step=8, step_tokens=512, episode_steps=4, learner="proxy",
                      upweight=upweight, upweight_factor=3),
        pool=PoolConfig(n_docs=120, heldout_docs=20),
        replay=ReplayConfig(enabled=replay, capacity=32, updates_per_step=2, batch=8, clip=2.0),
    )


def _metrics(tmp_path) -> list[dict]:
    return [json.loads(line) for line in open(tmp_path / "metrics.jsonl")]


@pytest.mark.parametrize("algorithm", ["reinforce", "ppo"])
def test_upweight_trains_end_to_end_and_scores_sample_weights(tmp_path, pool, tokenizer,
                                                              algorithm):
    module = reinforce if algorithm == "reinforce" else ppo
    cfg = _cfg(tmp_path, algorithm, upweight=True)
    if algorithm == "ppo":
        cfg = cfg.model_copy(update={"ppo": cfg.ppo.model_copy(update={"num_steps": 8})})
    out = module.main(cfg, pool=pool, tokenizer=tokenizer)["output"]
    policy = load_policy(out)
    assert policy.net.upweight and policy.upweight_factor == 3
    rows = _metrics(tmp_path)
    assert any("charts/upweight_rate" in r for r in rows)

    texts = pa.array(pool.texts.to_pylist()[:40], pa.string())
    table = pa.table({"doc_id": [f"d{i}" for i in range(40)], "source": ["s"] * 40,
                      "record": list(range(40)), "text": texts, "decision": ["kept"] * 40,
                      "reason": pa.nulls(40, pa.string()), "error": pa.nulls(40, pa.string()),
                      "n_chars": [len(t) for t in texts.to_pylist()]})
    scorer = PolicyScorer(out, keep_fraction=0.5)
    scored = scorer(table)
    weight = scored["sample_weight"].to_numpy(zero_copy_only=False)
    kept = np.array([d == "kept" for d in scored["decision"].to_pylist()])
    assert set(weight[kept].astype(int).tolist()) <= {1, 3}
    assert np.isnan(weight[~kept]).all()  # dropped rows have no sampling weight
    # the weight follows the upweight head; the scores (the keep logits) are those of
    # score_texts, which knows nothing of the head
    raw = scorer.extractor(texts)
    up = policy.net.up_logits(torch.from_numpy(policy.norm(raw))).detach().numpy()
    np.testing.assert_array_equal(weight[kept], np.where(up[kept] > 0, 3, 1))
    np.testing.assert_array_equal(scored["quality_score"].to_numpy(),
                                  scorer.score_texts(texts)[0])


@pytest.mark.parametrize("upweight", [False, True])
def test_replay_trains_end_to_end_and_logs_importance_weights(tmp_path, pool, tokenizer,
                                                              upweight):
    cfg = _cfg(tmp_path, upweight=upweight, replay=True)
    summary = reinforce.main(cfg, pool=pool, tokenizer=tokenizer)
    assert summary["steps"] == 24
    rows = [r for r in _metrics(tmp_path) if "charts/replay_is_mean" in r]
    assert rows
    for r in rows:
        assert 0 < r["charts/replay_is_mean"] <= 2.0 and r["charts/replay_is_max"] <= 2.0
        assert 0 <= r["charts/replay_clipped_frac"] <= 1
        assert 0 < r["charts/replay_size"] <= 32
        assert np.isfinite(r["losses/replay_loss"])
    assert load_policy(summary["output"]).net.upweight == upweight


def test_option_config_is_checked_before_work(tmp_path):
    with pytest.raises(ValueError, match="replay.enabled applies to algorithm=reinforce"):
        AgentConfig(algorithm="ppo", replay=ReplayConfig(enabled=True))
    with pytest.raises(ValueError, match="upweight_factor"):
        EnvConfig(upweight=True, upweight_factor=1)
    setup_net = PolicyNet(4, 8)
    env = CurationEnv(synthetic_data(), env_config(upweight=True))
    with pytest.raises(ValueError, match="no upweight head"):
        from policies.checkpoint import MetricsLog

        reinforce.train_policy(setup_net, env, _cfg(tmp_path), MetricsLog(tmp_path / "m.jsonl"),
                               reset_seed=0)


def test_old_policies_load_without_the_head_and_weigh_one():
    policy = load_policy(DEFAULT_POLICY)  # saved before the upweight head existed
    assert not policy.net.upweight and policy.upweight_factor == 1
    texts = ["A plain sentence about the weather in spring, and the garden after the rain."] * 3
    table = pa.table({"doc_id": ["a", "b", "c"], "source": ["s"] * 3, "record": [0, 1, 2],
                      "text": texts, "decision": ["kept", "kept", "dropped"],
                      "reason": [None, None, "earlier"], "error": pa.nulls(3, pa.string()),
                      "n_chars": [len(t) for t in texts]})
    weight = PolicyScorer(None)(table)["sample_weight"]
    assert weight.type == pa.int32() and weight.to_pylist() == [1, 1, None]
