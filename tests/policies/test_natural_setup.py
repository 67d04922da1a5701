"""The natural setup: a pool read from inputs as they are, a target the user names (paths or a
DuckDB query), the target split by text hash, and the reference LM's loss as a feature that
travels inside the policy."""

import json

import duckdb
import numpy as np
import pyarrow as pa
import pytest

from curator.config import InputSpec
from policies import reinforce
from policies.checkpoint import DEFAULT_POLICY, load_policy
from policies.config import AgentConfig, EnvConfig, PoolConfig
from policies.natural import distinct, natural_pool, read_documents, split_target
from policies.scorer import PolicyScorer

MENU = "Home\nAbout us\nContact\nLogin\nShop\nCart\nPrivacy\nTerms\n" * 8


@pytest.fixture(scope="module")
def files(tmp_path_factory, prose):
    """A pool of prose and menus (jsonl) and a target of other prose (jsonl + DuckDB)."""
    root = tmp_path_factory.mktemp("natural")
    pool = root / "pool.jsonl"
    menus = [MENU.replace("Shop", f"Shop {i}") for i in range(40)]
    with open(pool, "w") as f:
        for i, text in enumerate(prose[:80] + menus):
            f.write(json.dumps({"id": str(i), "text": text}) + "\n")
    target = root / "target.jsonl"
    with open(target, "w") as f:
        for i, text in enumerate(prose[100:200]):
            f.write(json.dumps({"id": str(i), "text": text}) + "\n")
    db = root / "target.duckdb"
    con = duckdb.connect(str(db))
    con.execute("CREATE TABLE docs AS SELECT * FROM read_json_auto(?)", [str(target)])
    con.close()
    return {"pool": pool, "target": target, "db": db}


def test_target_split_is_a_disjoint_stable_hash_partition(prose):
    a = split_target(prose, 0.4, 0.3)
    b = split_target(list(reversed(prose)), 0.4, 0.3)
    assert set(a.fit) == set(b.fit) and set(a.reward) == set(b.reward)  # order-free
    parts = [set(a.fit), set(a.reward), set(a.evaluation)]
    assert sum(map(len, parts)) == len(set(prose))
    assert not (parts[0] & parts[1] or parts[0] & parts[2] or parts[1] & parts[2])
    assert 0.25 < len(a.fit) / len(prose) < 0.55 and len(a.evaluation) > 0


def test_target_from_paths_and_from_a_duckdb_query_read_the_same_text(files):
    from_path = read_documents([InputSpec(path=str(files["target"]))], min_chars=1)
    query = InputSpec(path=str(files["db"]), format="duckdb", query="SELECT id, text FROM docs")
    from_query = read_documents([query], min_chars=1)
    assert sorted(from_path.texts) == sorted(from_query.texts) and len(from_path.texts) == 100


def test_natural_pool_dedups_menus_and_keeps_target_out(files, prose):
    pool = natural_pool([InputSpec(path=str(files["pool"]))],
                        [InputSpec(path=str(files["target"]))], 0.5, seed=0)
    texts = pool.texts.to_pylist()
    assert pool.labels is None and pool.is_junk is None
    # 40 menus differing in one word are near-duplicates: a handful survive, and every prose
    # document that is not itself a near-copy of another (pydoc repeats a few) does
    assert sum(t.startswith("Home") for t in texts) < 10
    assert sum(not t.startswith("Home") for t in texts) == len(distinct(prose[:80]))
    assert not set(pool.heldout) & set(pool.target)
    assert set(pool.heldout) | set(pool.target) == set(prose[100:200])


def test_config_refuses_a_natural_pool_without_target():
    with pytest.raises(ValueError, match="pool.source=inputs needs pool.inputs"):
        AgentConfig(pool=PoolConfig(source="inputs", inputs=[InputSpec(path="x.jsonl")]))


@pytest.mark.timeout(600)
def test_agent_trains_on_a_natural_pool_with_the_reference_lm(files, tmp_path):
    cfg = AgentConfig(
        output=str(tmp_path / "policy.safetensors"), total_steps=6, eval_interval=0,
        sketch_dim=8, hidden=16, target_dim=256, reference_model=True, reference_steps=20,
        init="logistic", samples_per_step=2, batch_steps=2,
        target=[InputSpec(path=str(files["target"]))],
        env=EnvConfig(docs_per_step=8, step_tokens=512, episode_steps=3),
        pool=PoolConfig(source="inputs", inputs=[InputSpec(path=str(files["pool"]))]),
    )
    tokenizer = load_policy(DEFAULT_POLICY).tokenizer
    reinforce.main(cfg, tokenizer=tokenizer)
    policy = load_policy(cfg.output)
    assert policy.spec.reference and "reference_loss" in policy.spec.names
    assert policy.reference is not None and policy.target is not None
    # the reference LM was fitted on target prose: menus are far less likely under it
    ext = policy.feature_extractor()
    col = policy.spec.names.index("reference_loss")
    menu, text = ext(pa.array([MENU, open(files["target"]).readline()], pa.string()))[:, col]
    assert menu > text
    # the saved LM scores exactly as the one trained (weights travel in the checkpoint)
    again = load_policy(cfg.output).feature_extractor()
    docs = pa.array([MENU, "A short sentence about the weather today."], pa.string())
    np.testing.assert_array_equal(ext(docs), again(docs))
    scores, _ = PolicyScorer(cfg.output).score_texts(docs)
    assert np.isfinite(scores).all()


def test_logistic_init_starts_from_target_versus_pool(files):
    """init=logistic: the linear path is the regression of the reward's text against the pool
    on the policy's features; masks are sampled around the pool's median logit, so about half
    the candidates are kept and menus rank below prose before any RL."""
    import torch

    from policies.agent import PolicyNet
    from policies.env import make_env
    from policies.reinforce import logistic_init

    cfg = AgentConfig(
        sketch_dim=8, hidden=16, init="logistic", target=[InputSpec(path=str(files["target"]))],
        env=EnvConfig(docs_per_step=8, step_tokens=512, episode_steps=3),
        pool=PoolConfig(source="inputs", inputs=[InputSpec(path=str(files["pool"]))]),
    )
    setup = make_env(cfg, tokenizer=load_policy(DEFAULT_POLICY).tokenizer)
    torch.manual_seed(0)
    net = PolicyNet(setup.env.observation_space.shape[1], cfg.hidden)
    assert not net.linear.detach().any()
    center, temperature = logistic_init(net, setup)
    logits = net.keep_logits(torch.from_numpy(setup.env.data.features)).detach().numpy()
    assert net.linear.detach().abs().sum() > 0 and temperature > 0
    assert abs((logits > center).mean() - 0.5) < 0.05
    menus = np.array([t.startswith("Home") for t in setup.pool.texts.to_pylist()])
    assert logits[menus].max() < np.median(logits[~menus])


def test_column_init_ranks_exactly_as_its_feature(files):
    """init=column: the start ranks the pool exactly as the one named feature (the target
    classifier: the DCLM-style baseline), so RL can only be judged by what it adds to it; a
    column the features do not produce fails naming init_column."""
    import torch

    from policies.agent import PolicyNet
    from policies.env import make_env
    from policies.reinforce import start_policy

    cfg = AgentConfig(
        sketch_dim=8, hidden=16, init="column", target_dim=64,
        target=[InputSpec(path=str(files["target"]))],
        env=EnvConfig(docs_per_step=8, step_tokens=512, episode_steps=3),
        pool=PoolConfig(source="inputs", inputs=[InputSpec(path=str(files["pool"]))]),
    )
    setup = make_env(cfg, tokenizer=load_policy(DEFAULT_POLICY).tokenizer)
    torch.manual_seed(0)
    net = PolicyNet(setup.env.observation_space.shape[1], cfg.hidden)
    _, temperature = start_policy(net, setup, cfg)
    features = setup.env.data.features
    logits = net.keep_logits(torch.from_numpy(features)).detach().numpy()
    column = features[:, setup.spec.names.index("target_classifier")]
    assert temperature > 0 and np.array_equal(logits, column)
    with pytest.raises(ValueError, match="init_column='no_such'"):
        start_policy(net, setup, cfg.model_copy(update={"init_column": "no_such"}))


def test_shipped_default_policy_is_the_natural_recipe():
    """policies/default is built by policies.train_default: natural pool, target-aware columns
    and the reference LM, the logistic init, and every column computable from the text alone
    (curator score and the curate stage have no model to pass)."""
    from policies.train_default import natural_agent_config

    policy = load_policy(DEFAULT_POLICY)
    recipe = natural_agent_config("x", 1).model_dump(mode="json")
    assert policy.spec.reference and policy.reference is not None
    assert policy.spec.target_dim == recipe["target_dim"] and policy.target is not None
    assert not policy.spec.model_features
    for key in ("init", "target_dim", "reference_model", "samples_per_step"):
        assert policy.config[key] == recipe[key]
    assert policy.config["env"]["learner"] == "trainer"
    assert policy.config["rl_steps"] == 0  # shipped without RL steps (see train_default)


def test_rl_from_a_fitted_init_keeps_it_unless_the_reward_improves(files, tmp_path):
    """init=logistic enters the starting weights into the model selection: weights RL moved
    without a better greedy return are not the ones saved."""
    import torch

    from policies.agent import PolicyNet
    from policies.env import make_env
    from policies.reinforce import logistic_init

    cfg = AgentConfig(
        output=str(tmp_path / "p.safetensors"), total_steps=8, eval_interval=4,
        learning_rate=1e-9, sketch_dim=8, hidden=16, init="logistic", samples_per_step=2,
        batch_steps=2, target=[InputSpec(path=str(files["target"]))],
        env=EnvConfig(docs_per_step=8, step_tokens=512, episode_steps=3),
        pool=PoolConfig(source="inputs", inputs=[InputSpec(path=str(files["pool"]))]),
    )
    tokenizer = load_policy(DEFAULT_POLICY).tokenizer
    summary = reinforce.main(cfg, tokenizer=tokenizer)
    assert summary["rl_replaced_start"] is False and len(summary["eval_returns"]) == 3
    saved = load_policy(cfg.output).net
    setup = make_env(cfg, tokenizer=tokenizer)
    torch.manual_seed(cfg.seed)
    start = PolicyNet(setup.env.observation_space.shape[1], cfg.hidden)
    logistic_init(start, setup)
    assert torch.equal(saved.linear, start.linear)  # exactly the start, not a nudged copy
