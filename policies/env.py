"""The curation environment (gymnasium id `curator/Curation-v0`).

Each step offers `docs_per_step` candidate documents drawn from a pool; the observation is their
normalized feature matrix (docs x features). The action is keep (1) / drop (0) per document, or
with `upweight` drop (0) / keep (1) / upweight (2) (MultiDiscrete([3] * docs)).

Why keep/drop by default: the learner consumes a fixed number of tokens per step, so "upweight"
can only mean "repeat this document", which the keep-rate already partly expresses (a smaller
selection is cycled to fill the budget), and a per-document Bernoulli keeps the policy's keep
probability a calibrated quality score that the scorer can threshold or rank. The upweight
option (the seeds' original three-action design) makes the repetition a per-document choice:
the agent's stream holds each upweighted document `upweight_factor` times (in an order
shuffled per reward seed), the random branch stays an equal-token random selection, and the
budget term counts the keep rate of distinct documents.

The learner (reward.py) trains on `step_tokens` tokens read as windows from across the kept
documents; the reward is its held-out loss against the same starting state trained on a random
equal-token selection of the same candidates (same seed, read the same way), minus a keep-rate
budget term. An episode is one training run
of `episode_steps` steps whose LR schedule decays fully at its last step; `reset(seed)` fixes
the learner's init and the candidate draws, so episodes are reproducible.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from curator.config import InputSpec
from policies.config import AgentConfig, EnvConfig, PoolConfig
from policies.features import FeatureExtractor, FeatureNorm, FeatureSpec
from policies.pool import Pool, build_pool, clip_text, corpora_sources, demo_sources
from policies.reference import ReferenceLM
from policies.reward import Learner, ProxyLearner, TrainerLearner, TrainerSpec, paired_reward
from policies.target import TargetModel
from policies.target_fitting import (
    FittedTarget,
    cross_fitted_features,
    fit_target_models,
    target_members,
)

if TYPE_CHECKING:
    from policies.agent import PolicyNet

ENV_ID = "curator/Curation-v0"
OBS_CLIP = 10.0  # FeatureNorm clips z-scores to +-10
N_MODEL_FEATURES = 3  # loss_current, loss_reference, loss_excess (features.MODEL_COLUMNS)


@dataclass(frozen=True)
class EnvData:
    """A pool prepared for the environment: normalized features, tokens, labels (optional)."""

    features: np.ndarray  # (n_docs, n_features) float32, already normalized
    doc_tokens: list[np.ndarray]  # token ids per document
    heldout_tokens: np.ndarray  # clean held-out stream (documents joined, EOS inside)
    vocab_size: int
    is_junk: np.ndarray | None = None  # labels, for logging only; the agent never sees them

    @property
    def n_docs(self) -> int:
        return len(self.doc_tokens)


def env_data_from_pool(pool: Pool, extractor: FeatureExtractor, norm: FeatureNorm | None = None,
                       heldout_doc_chars: int = 0, raw: np.ndarray | None = None
                       ) -> tuple[EnvData, FeatureNorm]:
    """Featurize and tokenize a pool; fit the normalization on it unless one is given.
    `heldout_doc_chars`: cut each held-out document to that many characters (0 = whole).
    `raw`: the pool's raw feature rows when the caller has them (cross-fitted)."""
    raw = extractor(pool.texts) if raw is None else raw
    norm = norm or FeatureNorm.fit(raw)
    # the learner reads the text the features describe (normalized, as curate tokenizes it)
    doc_tokens = [t.astype(np.int64) for t in extractor.tokenize(extractor.prepare(pool.texts))]
    heldout = ([clip_text(t, heldout_doc_chars) for t in pool.heldout] if heldout_doc_chars
               else pool.heldout)
    held = extractor.tokenize(extractor.prepare(heldout))
    data = EnvData(norm(raw), doc_tokens, np.concatenate(held).astype(np.int64),
                   extractor.sp.get_piece_size(), pool.is_junk)
    return data, norm


def env_trainer_spec(cfg: EnvConfig) -> TrainerSpec:
    """The transformer an environment config's trainer learner builds."""
    return TrainerSpec(seq_len=cfg.trainer_seq_len, n_layer=cfg.trainer_n_layer,
                       d_model=cfg.trainer_d_model, eval_batches=cfg.trainer_eval_batches,
                       eval_windows=cfg.trainer_eval_windows, device=cfg.device)


def make_learner(data: EnvData, cfg: EnvConfig) -> Learner:
    if cfg.learner == "proxy":
        return ProxyLearner(data.vocab_size, data.heldout_tokens, cfg.step_tokens)
    return TrainerLearner(data.vocab_size, data.heldout_tokens, cfg.step_tokens,
                          cfg.episode_steps, env_trainer_spec(cfg))


class CurationEnv(gym.Env):
    metadata = {"render_modes": []}

    def __init__(self, data: EnvData, cfg: EnvConfig | None = None,
                 learner: Learner | None = None) -> None:
        """`learner`: overrides the one `cfg.learner` names (the closed loop passes a trainer
        learner that starts every episode from its current checkpoint)."""
        self.data, self.cfg = data, cfg or EnvConfig()
        k = self.cfg.docs_per_step
        if data.n_docs < k:
            raise ValueError(f"pool has {data.n_docs} documents < docs_per_step={k}; "
                             "lower env.docs_per_step or enlarge the pool")
        n_feat = data.features.shape[1] + (N_MODEL_FEATURES if self.cfg.model_features else 0)
        self.observation_space = spaces.Box(-OBS_CLIP, OBS_CLIP, (k, n_feat), np.float32)
        self.action_space = (spaces.MultiDiscrete([3] * k) if self.cfg.upweight
                             else spaces.MultiBinary(k))
        self.learner = learner if learner is not None else make_learner(data, self.cfg)
        self.reference = self._reference_learner() if self.cfg.model_features else None
        self._t = 0
        self._seed = 0
        self._idx = np.zeros(k, np.int64)

    def _reference_learner(self) -> Learner:
        """RHO-LOSS's irreducible-loss model: the same kind of learner fit on held-out text."""
        ref = make_learner(self.data, self.cfg)
        ref.reset(0)
        for step in range(self.cfg.episode_steps):
            ref.train(self.data.heldout_tokens, step, seed=0)
        return ref

    def _model_columns(self, docs: list[np.ndarray]) -> np.ndarray:
        """Loss under the current learner and the reference, and their difference (reducible
        loss), z-scored within the step: RHO-LOSS ranks within a batch, and the losses' scale
        drifts as the learner trains."""
        assert self.reference is not None
        cur, ref = self.learner.doc_losses(docs), self.reference.doc_losses(docs)
        cols = np.stack([cur, ref, cur - ref], axis=1)
        mean, std = np.nanmean(cols, axis=0), np.nanstd(cols, axis=0)
        return np.nan_to_num((cols - mean) / np.where(std > 1e-9, std, 1.0))

    def _draw(self) -> np.ndarray:
        self._idx = self.np_random.choice(self.data.n_docs, self.cfg.docs_per_step, replace=False)
        obs = self.data.features[self._idx]
        if self.cfg.model_features:
            docs = [self.data.doc_tokens[i] for i in self._idx]
            obs = np.concatenate([obs, self._model_columns(docs)], axis=1)
        return np.clip(obs, -OBS_CLIP, OBS_CLIP).astype(np.float32)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None
              ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        # the learner's init is a function of the episode seed (drawn from the seeded RNG)
        self._seed = int(self.np_random.integers(0, 2**31 - 1))
        self.learner.reset(self._seed)
        self._t = 0
        return self._draw(), {"candidates": self._idx.copy()}

    def _copies(self, action: np.ndarray) -> np.ndarray:
        """Copies of each candidate in the agent's stream (0 dropped, 1 kept, or
        upweight_factor upweighted): int64 (docs,)."""
        a = np.asarray(action).reshape(-1)
        if a.shape != (self.cfg.docs_per_step,):
            kind = "drop/keep/upweight codes" if self.cfg.upweight else "keep/drop flags"
            raise ValueError(f"action has shape {a.shape}; expected "
                             f"({self.cfg.docs_per_step},) {kind}")
        if not self.cfg.upweight:
            return a.astype(bool).astype(np.int64)
        codes = a.astype(np.int64)
        if codes.min() < 0 or codes.max() > 2:
            raise ValueError(f"action codes span [{codes.min()}, {codes.max()}]; expected 0 drop, "
                             "1 keep, 2 upweight")
        return np.array([0, 1, self.cfg.upweight_factor])[codes]

    def _reward(self, copies: np.ndarray) -> tuple[float, dict[str, Any]]:
        """Paired reward of the selection `copies` of the current candidates; leaves the
        learner in the agent's branch."""
        docs = [self.data.doc_tokens[i] for i in self._idx]
        return paired_reward(self.learner, docs, copies > 0, self._t, self._seed,
                             self.cfg.target_keep, self.cfg.budget_weight,
                             copies=copies if self.cfg.upweight else None)

    def peek(self, action: np.ndarray) -> float:
        """The reward `step(action)` would return now, without advancing the episode.

        REINFORCE's leave-one-out baseline (reinforce.py) scores several sampled selections of
        the same candidates from the same learner state: the learner is snapshotted and
        restored around the paired reward, so the episode goes on exactly as if not called.
        """
        start = self.learner.state()
        reward, _ = self._reward(self._copies(action))
        self.learner.load_state(start)
        return float(reward)

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        copies = self._copies(action)
        reward, info = self._reward(copies)
        keep = copies > 0
        if self.data.is_junk is not None:
            junk = self.data.is_junk[self._idx]
            info["junk_keep_rate"] = float(keep[junk].mean()) if junk.any() else float("nan")
            info["clean_keep_rate"] = float(keep[~junk].mean()) if (~junk).any() else float("nan")
            if self.cfg.upweight:
                up = copies > 1
                info["junk_upweight_rate"] = float(up[junk].mean()) if junk.any() else np.nan
                info["clean_upweight_rate"] = float(up[~junk].mean()) if (~junk).any() else np.nan
        info["candidates"] = self._idx.copy()
        self._t += 1
        terminated = self._t >= self.cfg.episode_steps
        return self._draw(), float(reward), terminated, False, info


def register() -> None:
    """Register ENV_ID once (gym.make(ENV_ID, data=..., cfg=...))."""
    if ENV_ID not in gym.registry:
        gym.register(id=ENV_ID, entry_point="policies.env:CurationEnv")


@dataclass
class TrainingSetup:
    env: CurationEnv
    extractor: FeatureExtractor
    norm: FeatureNorm  # over spec.names (model columns: identity, the env z-scores them)
    spec: FeatureSpec
    pool: Pool
    target: TargetModel | None = None
    reference: ReferenceLM | None = None

    def save_policy(self, path: str | Path, net: PolicyNet, config: dict[str, Any]) -> Path:
        """Write `net` as a policy checkpoint with what scoring needs to rebuild its features:
        this setup's normalization, feature spec, tokenizer, target model and reference LM."""
        from policies.checkpoint import save_policy

        return save_policy(path, net, self.norm, self.spec, self.extractor.tokenizer_proto,
                           config, self.target, self.reference)


def load_pool(cfg: PoolConfig, target: list[InputSpec] | None = None,
              target_fit_fraction: float = 0.5) -> Pool:
    """The pool a config names; `target` (agent.target) is read for source=inputs."""
    if cfg.source == "inputs":
        from policies.natural import natural_pool

        return natural_pool(cfg.inputs, target or [], target_fit_fraction, cfg.seed)
    sources = (corpora_sources(cfg.corpora_dir, cfg.max_books) if cfg.source == "corpora"
               else demo_sources())
    return build_pool(sources, cfg.n_docs, cfg.noise, cfg.seed, cfg.heldout_docs)


def resolve_tokenizer(path: str | None) -> bytes:
    """A sentencepiece model's bytes: the given file, else the shipped default policy's."""
    if path is not None:
        return Path(path).read_bytes()
    from policies.checkpoint import DEFAULT_POLICY, load_policy

    return load_policy(DEFAULT_POLICY).tokenizer


def make_env(cfg: AgentConfig, pool: Pool | None = None, tokenizer: bytes | None = None,
             fitted: FittedTarget | None = None) -> TrainingSetup:
    """The training environment of an agent config (the pool is built unless given).

    `fitted`: the target model and reference LM `fit_target_models(cfg, pool, tokenizer)`
    returns, when the caller already has them (several agents trained on one pool)."""
    pool = pool if pool is not None else load_pool(cfg.pool, cfg.target,
                                                   cfg.target_fit_fraction)
    tokenizer = tokenizer or resolve_tokenizer(cfg.tokenizer)
    fitted_features = bool(cfg.target_dim or cfg.reference_model)
    in_target = int(target_members(pool).sum()) if fitted_features else 0
    if in_target and cfg.crossfit_folds < 2:
        raise ValueError(f"the pool holds {in_target} documents of the "
                         "target's fit text: their target-aware and reference features would be "
                         "memorized; set crossfit_folds (e.g. 5) or take them out of the pool")
    target, reference = fitted if fitted is not None else fit_target_models(cfg, pool, tokenizer)
    base = FeatureSpec(sketch_dim=cfg.sketch_dim, target_dim=cfg.target_dim,
                       reference=cfg.reference_model)
    extractor = FeatureExtractor(tokenizer, base, target=target, reference=reference)
    raw = (cross_fitted_features(cfg, pool, tokenizer, base)
           if fitted_features and cfg.crossfit_folds > 1 else None)
    data, norm = env_data_from_pool(pool, extractor, raw=raw,
                                    heldout_doc_chars=cfg.env.heldout_doc_chars)
    env = gym.make(ENV_ID, data=data, cfg=cfg.env, disable_env_checker=True).unwrapped
    spec = FeatureSpec(sketch_dim=cfg.sketch_dim, model_features=cfg.env.model_features,
                       target_dim=cfg.target_dim, reference=cfg.reference_model)
    if spec.model_features:
        pad = N_MODEL_FEATURES
        norm = FeatureNorm(np.concatenate([norm.mean, np.zeros(pad, np.float32)]),
                           np.concatenate([norm.std, np.ones(pad, np.float32)]))
    return TrainingSetup(env, extractor, norm, spec, pool, target, reference)


register()
