import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from policies.checkpoint import DEFAULT_POLICY, load_policy
from policies.config import EnvConfig
from policies.env import ENV_ID, CurationEnv, env_data_from_pool
from policies.features import FeatureExtractor, FeatureSpec
from policies.pool import build_pool, demo_sources
from policies.reward import (
    ProxyLearner,
    budget_penalty,
    cycle_to,
    paired_reward,
    selection_sample,
)

CFG = EnvConfig(docs_per_step=8, step_tokens=512, episode_steps=3, learner="proxy")


@pytest.fixture(scope="module")
def data():
    sources = demo_sources()
    sources.clean = sources.clean[:160]
    pool = build_pool(sources, n_docs=100, noise=0.5, seed=0, heldout_docs=20)
    ex = FeatureExtractor(load_policy(DEFAULT_POLICY).tokenizer, FeatureSpec(sketch_dim=16))
    return env_data_from_pool(pool, ex)[0]


def test_check_env_passes(data):
    env = gym.make(ENV_ID, data=data, cfg=CFG, disable_env_checker=True).unwrapped
    assert isinstance(env, CurationEnv)
    check_env(env, skip_render_check=True)


def test_episode_terminates_and_is_reproducible(data):
    env = CurationEnv(data, CFG)
    runs = []
    for _ in range(2):
        obs, _ = env.reset(seed=3)
        rewards = []
        for t in range(CFG.episode_steps):
            obs, r, term, trunc, info = env.step(np.ones(CFG.docs_per_step, np.int8))
            rewards.append(r)
            assert term == (t == CFG.episode_steps - 1)
        runs.append(rewards)
    assert runs[0] == runs[1]
    assert info["keep_rate"] == 1.0


def test_peek_scores_without_advancing_the_episode(data):
    """RLOO scores extra masks with peek(): the episode must go on exactly as without them."""
    env = CurationEnv(data, CFG)
    rng = np.random.default_rng(0)
    masks = rng.integers(0, 2, size=(CFG.episode_steps, 3, CFG.docs_per_step)).astype(np.int8)
    plain, peeked = [], []
    for rewards, with_peek in ((plain, False), (peeked, True)):
        env.reset(seed=5)
        for t in range(CFG.episode_steps):
            if with_peek:
                first = env.peek(masks[t, 0])
                assert env.peek(masks[t, 0]) == first  # same state, same mask, same reward
                env.peek(masks[t, 1])
            _, r, _, _, _ = env.step(masks[t, 2])
            rewards.append(r)
    assert plain == peeked
    # and a peeked mask's reward is the reward stepping it would have returned
    env.reset(seed=5)
    r_peek = env.peek(masks[0, 0])
    _, r_step, _, _, _ = env.step(masks[0, 0])
    assert r_peek == r_step


def test_bad_action_shape_raises(data):
    env = CurationEnv(data, CFG)
    env.reset(seed=0)
    with pytest.raises(ValueError, match="expected"):
        env.step(np.ones(3))


def test_dropping_junk_beats_random(data):
    """Keeping exactly the clean candidates earns a positive held-out gain on average."""
    env = CurationEnv(data, CFG.model_copy(update={"budget_weight": 0.0, "episode_steps": 40}))
    env.reset(seed=0)
    gains = []
    for _ in range(40):
        keep = ~data.is_junk[env._idx]
        _, _, _, _, info = env.step(keep.astype(np.int8))
        gains.append(info["gain_pct"])
    assert np.mean(gains) > 0


def test_budget_term_penalizes_extremes():
    assert budget_penalty(0.5, 0.5, 10) == 0
    assert budget_penalty(1.0, 0.5, 10) == budget_penalty(0.0, 0.5, 10) == 2.5


def test_paired_reward_of_identical_selection_is_zero():
    rng = np.random.default_rng(0)
    docs = [rng.integers(0, 50, size=30) for _ in range(6)]
    learner = ProxyLearner(50, rng.integers(0, 50, size=200), step_tokens=100)
    r, info = paired_reward(learner, docs, np.ones(6, bool), 0, 0, 1.0 - 1e-9, 0.0)
    # all-keep: the random branch is a permutation of the same tokens; unigram counts agree
    assert info["keep_rate"] == 1.0
    assert np.isfinite(r)
    # the learner continues from the agent's branch
    assert learner.uni.sum() == 100


class RecordingLearner(ProxyLearner):
    """The proxy learner, keeping the token streams it was trained on."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.streams: list[np.ndarray] = []

    def train(self, tokens: np.ndarray, step: int, seed: int) -> None:
        self.streams.append(np.asarray(tokens).copy())
        super().train(tokens, step, seed)


def test_reward_reads_every_kept_document_not_the_first():
    """A step trains on far fewer tokens than a selection holds; its windows must come from the
    whole selection (each kept document in proportion to its tokens), else the reward judges
    the first kept document alone."""
    docs = [np.full(1000, i, np.int64) for i in range(32)]  # document i is all token i
    keep = np.arange(32) % 2 == 0
    seen = np.zeros(32)
    for seed in range(20):
        learner = RecordingLearner(32, np.arange(32), step_tokens=1024)
        paired_reward(learner, docs, keep, 0, seed, 0.5, 0.0)
        agent = learner.streams[-1]  # the random branch trains first, the agent's last
        assert len(agent) == 1024
        seen += np.bincount(agent, minlength=32)
    assert seen[~keep].sum() == 0  # nothing dropped is read
    kept_share = seen[keep] / seen.sum()
    # 20 steps x 8 windows over 16 equal documents: every one read, none dominating
    assert (kept_share > 0).all() and kept_share.max() < 0.15


def test_selection_sample_windows_and_short_selections():
    rng = np.random.default_rng(0)
    stream = np.arange(10_000)
    out = selection_sample(stream, 1000, 128, rng)
    assert len(out) == 1000
    windows = out[: 7 * 128].reshape(7, 128)
    assert (np.diff(windows, axis=1) == 1).all()  # contiguous windows
    assert windows[:, 0].max() - windows[:, 0].min() > 1000  # spread over the stream
    short = np.arange(500)
    assert selection_sample(short, 1000, 128, rng) is short  # the learner cycles it
    # a step shorter than one window (a small proxy step_tokens): one window of the step
    step = selection_sample(np.arange(110), 100, 128, rng)
    assert len(step) == 100 and (np.diff(step) == 1).all()


def test_cycle_to():
    assert list(cycle_to(np.array([1, 2, 3]), 7)) == [1, 2, 3, 1, 2, 3, 1]
    assert len(cycle_to(np.array([], np.int64), 5)) == 0


def test_trainer_learner_env(data):
    """The real learner: the tiny DSA trainer, paired branches from the same state."""
    cfg = CFG.model_copy(update={"learner": "trainer", "step_tokens": 1024, "episode_steps": 2,
                                 "trainer_d_model": 32, "trainer_n_layer": 1})
    env = CurationEnv(data, cfg)
    check_env(env, skip_render_check=True)
    env.reset(seed=0)
    before = env.learner.heldout_loss()
    _, r, _, _, info = env.step(np.ones(cfg.docs_per_step, np.int8))
    assert np.isfinite(info["loss_agent"]) and np.isfinite(info["loss_random"])
    assert info["loss_agent"] < before  # one optimizer step on real text lowers held-out loss
    assert env.learner.heldout_loss() == pytest.approx(info["loss_agent"])  # agent's branch
    assert r == pytest.approx(info["gain_pct"] - info["budget_penalty"])


def test_model_features_env(data):
    cfg = CFG.model_copy(update={"model_features": True})
    env = CurationEnv(data, cfg)
    check_env(env, skip_render_check=True)
    obs, _ = env.reset(seed=0)
    assert obs.shape == (cfg.docs_per_step, data.features.shape[1] + 3)
    excess = obs[:, -1]
    assert abs(float(excess.mean())) < 1e-4  # z-scored within the step
    docs = [data.doc_tokens[i] for i in env._idx]
    cur = env.learner.doc_losses(docs)
    assert cur.shape == (cfg.docs_per_step,) and np.isfinite(cur).all()


def test_proxy_doc_losses_ignore_cross_doc_bigrams():
    rng = np.random.default_rng(0)
    learner = ProxyLearner(20, rng.integers(0, 20, size=100), step_tokens=200)
    learner.train(rng.integers(0, 20, size=200), 0, 0)
    a, b = rng.integers(0, 20, size=15), rng.integers(0, 20, size=9)
    together = learner.doc_losses([a, b])
    alone = [learner.doc_losses([a])[0], learner.doc_losses([b])[0]]
    assert np.allclose(together, alone)
    assert np.isclose(alone[0], learner.token_losses(a).mean())


def _heldout_loss(heldout: np.ndarray, eval_windows: str) -> float:
    from policies.reward import TrainerLearner, TrainerSpec

    spec = TrainerSpec(n_layer=1, d_model=32, eval_batches=1, eval_windows=eval_windows,
                       device="cpu")
    return TrainerLearner(64, heldout, step_tokens=1024, episode_steps=1, spec=spec).heldout_loss()


def test_reward_eval_windows_first_reads_the_head_sampled_reads_the_whole_stream():
    """One eval batch is 16 windows of 128 tokens. `first` reads the stream's first 2,049
    tokens and nothing after them (the natural agents' reward read one or two documents);
    `sampled` reads windows from across the stream, the same ones at every call."""
    rng = np.random.default_rng(0)
    head = rng.integers(0, 64, 2049)
    tail_a, tail_b = rng.integers(0, 64, 6000), np.zeros(6000, np.int64)
    a, b = np.concatenate([head, tail_a]), np.concatenate([head, tail_b])
    assert _heldout_loss(a, "first") == _heldout_loss(b, "first")
    sampled_a = _heldout_loss(a, "sampled")
    assert sampled_a != _heldout_loss(b, "sampled")
    assert sampled_a == _heldout_loss(a, "sampled")  # a fixed sample: rewards stay comparable


def test_heldout_doc_chars_cuts_each_reward_document():
    """A reward document longer than `heldout_doc_chars` is cut at a word boundary (so one long
    page does not make up most of the reward's text); shorter ones stay whole."""
    import pyarrow as pa

    from policies.pool import Pool

    candidates = pa.array([f"candidate document number {i} with some words" for i in range(10)])
    pool = Pool(candidates, None, ["word " * 2000 + "tail", "short document here"])
    ex = FeatureExtractor(load_policy(DEFAULT_POLICY).tokenizer, FeatureSpec(sketch_dim=16))
    whole = env_data_from_pool(pool, ex)[0].heldout_tokens
    cut = env_data_from_pool(pool, ex, heldout_doc_chars=100)[0].heldout_tokens
    expected = ex.tokenize(ex.prepare(["word " * 19 + "word", "short document here"]))
    assert np.array_equal(cut, np.concatenate(expected))
    assert len(cut) < len(whole) / 10
