import json

import numpy as np
import pyarrow as pa
import pytest
import torch

from policies import ppo, reinforce
from policies.checkpoint import DEFAULT_POLICY, config_hash, load_policy
from policies.config import AgentConfig, EnvConfig, PoolConfig, load_agent_config
from policies.pool import build_pool, demo_sources


@pytest.fixture(scope="module")
def pool():
    sources = demo_sources()
    return build_pool(sources, n_docs=240, noise=0.5, seed=0, heldout_docs=30)


@pytest.fixture(scope="module")
def tokenizer():
    return load_policy(DEFAULT_POLICY).tokenizer


def _cfg(tmp_path, algorithm: str, steps: int) -> AgentConfig:
    return AgentConfig(
        algorithm=algorithm, output=str(tmp_path / "policy.safetensors"), total_steps=steps,
        sketch_dim=16, hidden=32, learning_rate=3e-3, batch_steps=2,
        env=EnvConfig(docs_per_step=16, step_tokens=1024, episode_steps=8),
        pool=PoolConfig(n_docs=240, heldout_docs=30),
    )


def _auc(scores: np.ndarray, positive: np.ndarray) -> float:
    pos, neg = scores[positive], scores[~positive]
    return float((pos[:, None] > neg[None, :]).mean())


def test_reinforce_learns_to_rank_clean_above_junk(tmp_path, pool, tokenizer):
    cfg = _cfg(tmp_path, "reinforce", 600)
    summary = reinforce.main(cfg, pool=pool, tokenizer=tokenizer)
    policy = load_policy(summary["output"])
    assert policy.config_hash == config_hash(cfg.model_dump(mode="json"))
    rows = [json.loads(line) for line in open(tmp_path / "metrics.jsonl")]
    assert any("charts/episodic_return" in r for r in rows)
    assert all("losses/policy_loss" in r for r in rows)

    from policies.features import FeatureExtractor

    x = FeatureExtractor(policy.tokenizer, policy.spec)(pool.texts)
    scores = policy.net.score(torch.from_numpy(policy.norm(x))).numpy()
    assert _auc(scores, ~pool.is_junk) > 0.7


def test_reinforce_single_sample_moving_average_baseline_still_learns(tmp_path, pool, tokenizer):
    """samples_per_step=1 is plain DVRL (moving-average baseline), kept as an option."""
    cfg = _cfg(tmp_path, "reinforce", 600).model_copy(update={"samples_per_step": 1})
    summary = reinforce.main(cfg, pool=pool, tokenizer=tokenizer)
    policy = load_policy(summary["output"])
    from policies.features import FeatureExtractor

    x = FeatureExtractor(policy.tokenizer, policy.spec)(pool.texts)
    scores = policy.net.score(torch.from_numpy(policy.norm(x))).numpy()
    assert _auc(scores, ~pool.is_junk) > 0.6


def test_tempered_sampling_explores_a_confident_policy(tmp_path, pool, tokenizer):
    """A confident policy samples the same mask every time (zero leave-one-out advantage);
    sampling around its median logit at its logit spread (the loop update) explores."""
    from policies.agent import PolicyNet
    from policies.checkpoint import MetricsLog
    from policies.env import make_env

    cfg = _cfg(tmp_path, "reinforce", 8).model_copy(update={"eval_interval": 0})
    setup = make_env(cfg, pool, tokenizer)
    spreads = {}
    for tempered in (False, True):
        torch.manual_seed(0)
        net = PolicyNet(setup.env.observation_space.shape[1], cfg.hidden)
        features = torch.from_numpy(setup.env.data.features)
        with torch.no_grad():
            # Confident by construction: steep weights, and the threshold (bias) in the widest
            # gap between two documents' logits, so no document sits near p = 0.5 (a document
            # whose hidden units barely fire would, whatever the weight scale).
            net.keep_head.weight.mul_(1e5)
            raw = np.sort(net.score(features).numpy())
            k = int(np.argmax(np.diff(raw)))
            net.keep_head.bias.fill_(-float(raw[k] + raw[k + 1]) / 2)
            logits = net.score(features).numpy()
        assert np.abs(logits).min() > 20  # every keep probability is 0 or 1 in float32
        affine = (float(np.median(logits)), float(np.std(logits))) if tempered else (0.0, 1.0)
        log = MetricsLog(tmp_path / f"m{tempered}.jsonl")
        out = reinforce.train_policy(net, setup.env, cfg, log, reset_seed=0, logit_affine=affine)
        log.close()
        spreads[tempered] = out["mean_reward_spread"]
    assert spreads[False] == 0.0
    assert spreads[True] > 0.0


def test_ppo_runs_and_logs_cleanrl_metrics(tmp_path, pool, tokenizer):
    cfg = _cfg(tmp_path, "ppo", 64)
    summary = ppo.main(cfg, pool=pool, tokenizer=tokenizer)
    assert summary["steps"] == 64
    rows = [json.loads(line) for line in open(tmp_path / "metrics.jsonl")]
    keys = set().union(*rows)
    for name in ("charts/episodic_return", "losses/policy_loss", "losses/value_loss",
                 "losses/entropy", "losses/approx_kl", "losses/clipfrac", "charts/SPS"):
        assert name in keys
    policy = load_policy(summary["output"])
    assert policy.spec.sketch_dim == 16
    scores = policy.net.score(torch.zeros(3, policy.spec.dim))
    assert scores.shape == (3,)


def test_agent_config_rejects_typos(tmp_path):
    path = tmp_path / "a.yaml"
    path.write_text("algorithm: reinforce\nenvv: {}\n")
    with pytest.raises(ValueError, match="envv"):
        load_agent_config(path)


def test_load_policy_rejects_other_files(tmp_path):
    from safetensors.numpy import save_file

    save_file({"w": np.zeros(2, np.float32)}, str(tmp_path / "x.safetensors"))
    with pytest.raises(ValueError, match="not a curator policy"):
        load_policy(tmp_path / "x.safetensors")
    with pytest.raises(FileNotFoundError, match="heuristic"):
        load_policy(tmp_path / "missing.safetensors")
    assert pa  # keep import used for fixtures' types


def test_model_feature_policy_roundtrip(tmp_path, pool, tokenizer):
    from policies.scorer import PolicyScorer

    cfg = _cfg(tmp_path, "reinforce", 20)
    cfg = cfg.model_copy(update={"env": cfg.env.model_copy(update={"model_features": True})})
    policy = load_policy(reinforce.main(cfg, pool=pool, tokenizer=tokenizer)["output"])
    assert policy.spec.model_features and policy.spec.names[-1] == "loss_excess"
    assert len(policy.norm.mean) == policy.spec.dim
    with pytest.raises(ValueError, match="model_features"):
        PolicyScorer(cfg.output)


@pytest.mark.parametrize("name", ["agent_demo.yaml", "agent_corpora.yaml", "agent_natural.yaml"])
def test_shipped_agent_configs_parse(name):
    from pathlib import Path

    cfg = load_agent_config(Path(__file__).parents[2] / "configs" / name)
    assert cfg.total_steps > 0 and cfg.env.docs_per_step > 0


def test_jobs_agent_entrypoint(tmp_path):
    from pathlib import Path

    from jobs.agent import main as job_main

    out = tmp_path / "p.safetensors"
    config = Path(__file__).parents[2] / "configs" / "agent_demo.yaml"
    summary = job_main([
        "--config", str(config), "--set", f"output={out}",
        "--set", "total_steps=16", "--set", "pool.n_docs=120", "--set", "pool.heldout_docs=20",
        "--set", "env.docs_per_step=8", "--set", "env.episode_steps=4", "--set", "sketch_dim=8",
    ])
    assert summary["steps"] == 16
    assert load_policy(out).config["pool"]["n_docs"] == 120


def test_target_aware_policy_round_trip_and_signal(tmp_path, pool, tokenizer):
    from policies.scorer import PolicyScorer
    from policies.target import TARGET_COLUMNS, TargetModel

    cfg = _cfg(tmp_path, "reinforce", 16).model_copy(update={"target_dim": 512})
    policy = load_policy(reinforce.main(cfg, pool=pool, tokenizer=tokenizer)["output"])
    assert policy.spec.target_dim == 512 and policy.target is not None
    assert policy.spec.names[-2:] == TARGET_COLUMNS
    # the saved target model is the one fitted on the pool vs its clean held-out text
    refit = TargetModel.fit(pool.texts, pa.array(pool.heldout, pa.string()), 512, seed=cfg.seed)
    np.testing.assert_allclose(policy.target.dsir, refit.dsir, rtol=1e-6)
    cols = policy.target(pool.texts)
    # both columns rank clean documents above junk better than chance (measured 0.68 / 0.71
    # on this pool: its junk is mostly corruptions of the same kind of text as the target)
    for j in range(2):
        assert _auc(cols[:, j], ~pool.is_junk) > 0.6
    scores, raw = PolicyScorer(cfg.output, with_features=True).score_texts(pool.texts)
    assert raw.shape == (len(pool), policy.spec.dim) and np.isfinite(scores).all()


def test_target_aware_spec_needs_its_model(tokenizer):
    from policies.features import FeatureExtractor, FeatureSpec

    with pytest.raises(ValueError, match="TargetModel"):
        FeatureExtractor(tokenizer, FeatureSpec(sketch_dim=8, target_dim=64))
