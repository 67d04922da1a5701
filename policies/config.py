"""Typed configuration of the quality agent: environment, pool, training (pydantic, YAML).

Loaded like every curator config (`curator.config.load_model`): unknown keys are refused, every
field says what it bounds, bad values fail before any work starts.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from curator.config import InputSpec, Section, load_model


class EnvConfig(Section):
    """The curation environment (policies/env.py): what one step offers and how it is rewarded."""

    docs_per_step: int = Field(32, gt=0, description="Candidate documents offered per step.")
    step_tokens: int = Field(
        4096, gt=0, description="Tokens the learner trains on per step (a short selection cycles)."
    )
    episode_steps: int = Field(16, gt=0, description="Steps per episode (one training run).")
    target_keep: float = Field(
        0.5, gt=0, lt=1, description="Keep rate the budget term pulls towards."
    )
    budget_weight: float = Field(
        20.0, ge=0, description="Weight of (keep_rate - target_keep)^2, in reward units (% loss)."
    )
    model_features: bool = Field(
        False,
        description="Append per-doc loss under the current learner and a reference learner fit "
        "on held-out text (RHO-LOSS style); such a policy needs a model at scoring time.",
    )
    learner: Literal["proxy", "trainer"] = Field(
        "proxy", description="proxy = hashed-bigram count LM (fast); trainer = tiny DSA GPT."
    )
    trainer_d_model: int = Field(64, gt=0, description="Trainer learner: residual width.")
    trainer_n_layer: int = Field(2, gt=0, description="Trainer learner: blocks.")
    trainer_seq_len: int = Field(128, gt=1, description="Trainer learner: context length.")
    trainer_eval_batches: int = Field(
        4, gt=0, description="Trainer learner: held-out batches (of 16 x seq_len tokens) per "
        "reward; each environment step evaluates two branches per sampled mask.",
    )
    trainer_eval_windows: Literal["first", "sampled"] = Field(
        "first", description="Trainer learner: which held-out windows a reward reads. first = "
        "the stream's first windows (with 2 batches, the first ~4k tokens: one or two "
        "documents decide the reward); sampled = one fixed random sample of windows from "
        "across the whole held-out stream, the same at every reward (same cost).",
    )
    heldout_doc_chars: int = Field(
        0, ge=0, description="Cut each held-out (reward) document to its first this many "
        "characters, at a whitespace, so one long page does not outweigh the rest; 0 = whole "
        "documents.",
    )
    device: Literal["auto", "cpu", "cuda"] = Field(
        "auto", description="Trainer learner: where its model trains; auto = CUDA when "
        "present, else CPU (the proxy learner is numpy and ignores it).",
    )
    upweight: bool = Field(
        False,
        description="Three actions per document: drop (0), keep (1), upweight (2) = keep and "
        "repeat it `upweight_factor` times in the agent's token stream; the policy gets an "
        "upweight head and curate writes its choice as `sample_weight`. false = keep/drop.",
    )
    upweight_factor: int = Field(
        2, ge=2, description="Times an upweighted document is repeated (its sampling weight)."
    )


class PoolConfig(Section):
    """Where the training pool comes from (policies/pool.py)."""

    source: Literal["corpora", "demo", "inputs"] = Field(
        "demo", description="inputs = the real documents of `inputs` as they are (a natural "
        "pool: no labels, no corruption; needs agent.target); corpora = labelled real data "
        "folder + corruptions; demo = curator.demo_corpus + corruptions.",
    )
    inputs: list[InputSpec] = Field(
        default_factory=list, description="source=inputs: the candidate documents (files, "
        "globs, WARCs, a DuckDB query), read by the curate connectors.",
    )
    corpora_dir: str = Field("../shared/corpora", description="Folder for source=corpora.")
    max_books: int | None = Field(None, description="Books read from books.jsonl.gz; null = all.")
    n_docs: int = Field(1200, gt=0, description="Candidate documents in the pool.")
    noise: float = Field(0.5, ge=0, lt=1, description="Junk share of the pool.")
    heldout_docs: int = Field(60, gt=0, description="Clean documents held out for the reward.")
    seed: int = Field(0, description="Seed of the pool draw and corruptions.")


class PPOConfig(Section):
    """cleanrl ppo.py hyperparameters (names as there)."""

    num_steps: int = Field(16, gt=0, description="Env steps per rollout.")
    gamma: float = Field(0.9, ge=0, le=1, description="Discount factor.")
    gae_lambda: float = Field(0.95, ge=0, le=1, description="GAE lambda.")
    update_epochs: int = Field(4, gt=0, description="Optimization epochs per rollout.")
    num_minibatches: int = Field(4, gt=0, description="Minibatches per epoch.")
    clip_coef: float = Field(0.2, gt=0, description="Policy ratio clip.")
    ent_coef: float = Field(0.01, ge=0, description="Entropy bonus weight.")
    vf_coef: float = Field(0.5, ge=0, description="Value loss weight.")
    max_grad_norm: float = Field(0.5, gt=0, description="Gradient clip.")
    norm_adv: bool = Field(True, description="Normalize advantages per minibatch.")


class ReplayConfig(Section):
    """REINFORCE's replay memory (policies/replay.py): off-policy reuse of past transitions
    with a truncated importance weight (V-trace / ACER style)."""

    enabled: bool = Field(False, description="Also learn from replayed transitions.")
    capacity: int = Field(
        4096, gt=0, description="Transitions held (one per sampled mask); oldest overwritten."
    )
    updates_per_step: int = Field(
        1, gt=0, description="Replayed mini-updates (optimizer steps) after each fresh update."
    )
    batch: int = Field(64, gt=0, description="Transitions per replayed mini-update.")
    clip: float = Field(
        2.0, gt=0, description="Truncation of the importance ratio pi_now / pi_behaviour."
    )


class ESConfig(Section):
    """Evolution strategies (policies/es.py): antithetic policy search on the episode return
    over the linear-path weights of a few named feature columns."""

    columns: list[str] = Field(
        default_factory=lambda: ["target_classifier", "target_dsir", "reference_loss",
                                 "log_n_chars", "gopher_n_stop_words", "lexical_diversity"],
        min_length=1, description="Feature columns whose weights ES shifts (the rest of the "
        "policy stays as initialized); each must be one of the policy's features.",
    )
    iterations: int = Field(6, gt=0, description="Gradient steps.")
    pairs: int = Field(
        4, gt=0, description="Antithetic pairs per step: 2 episodes each, the same seed."
    )
    sigma: float = Field(
        0.5, gt=0, description="Perturbation size, in units of the pool's keep-logit spread."
    )
    step: float = Field(
        0.25, gt=0, description="Adam learning rate, in units of the pool's keep-logit spread."
    )
    eval_every: int = Field(
        2, gt=0,
        description="Iterations between evaluations on fixed seeds (agent.eval_interval > 0).",
    )
    episode: Literal["env", "selection"] = Field(
        "env", description="What one ES episode is. env = an episode of the environment (each "
        "step keeps the top env.target_keep share of its candidates; reward against a random "
        "branch). selection = a draw of half the pool, its top-ranked documents up to "
        "env.target_keep of the draw's tokens, the environment's trainer trained from a fresh "
        "init on exactly those tokens, return = minus its loss on every window of the reward "
        "text: the measured effect a curate at that budget has on a model.",
    )


class AgentConfig(Section):
    """`curator agent train` / `python -m jobs.agent`: train a policy, save a checkpoint."""

    algorithm: Literal["reinforce", "ppo", "es"] = Field(
        "reinforce", description="reinforce or ppo (RL on keep/drop actions), es (evolution "
        "strategies on a few feature weights, judged by the episode return).")
    output: str = Field("runs/agent/policy.safetensors", description="Policy checkpoint path.")
    tokenizer: str | None = Field(
        None, description="sentencepiece model; null = the default policy's tokenizer."
    )
    sketch_dim: int = Field(64, gt=0, description="Width of the hashed n-gram sketch.")
    target_dim: int = Field(
        0, ge=0, description="> 0: add target-aware features (classifier logit, DSIR weight "
        "against the pool's clean held-out text; policies/target.py) over this many hashed "
        "n-gram buckets; 0 = off (a general-purpose policy, as shipped).",
    )
    target: list[InputSpec] = Field(
        default_factory=list, description="Clean reference text the agent selects towards "
        "(paths or a DuckDB query, read like curate inputs). Needed by pool.source=inputs; "
        "split by text hash into the part the target-aware features and reference LM are "
        "fitted on and the reward's held-out part.",
    )
    target_fit_fraction: float = Field(
        0.5, gt=0, lt=1, description="Share of agent.target used for fitting (classifier, "
        "DSIR, reference LM); the rest is the reward's held-out text.",
    )
    reference_model: bool = Field(
        False, description="Add the document's loss under a reference LM (the bundled "
        "trainer's model) trained on the target text: CCNet-style perplexity, one column.",
    )
    reference_steps: int = Field(
        300, gt=0, description="Optimizer steps of the reference LM (8 x 128 tokens each).",
    )
    init: Literal["scratch", "logistic", "column"] = Field(
        "scratch", description="REINFORCE: scratch = seeded random init (keep prob ~0.5 "
        "everywhere); logistic = the linear path starts from a logistic regression of the "
        "reward's held-out text (1) against the pool (0) on the same features, and RL "
        "adjusts it from there (masks are sampled at a temperature that keeps them diverse); "
        "column = the policy starts ranking exactly as the one feature `init_column` (e.g. "
        "the target classifier alone, the DCLM-style baseline) and RL adjusts from there.",
    )
    init_column: str = Field(
        "target_classifier", description="init=column: the feature the start ranks by (one "
        "of the policy's feature names; target_classifier needs target_dim > 0).",
    )
    crossfit_folds: int = Field(
        0, ge=0, description="> 1: the pool's target-aware and reference features come from "
        "models fitted without the document's fold (this many folds), so the agent learns from "
        "out-of-sample values like those of every document it will score (the serving models "
        "are still fitted on the whole pool). Needed when the pool holds target fit text. "
        "0 or 1 = off.",
    )
    hidden: int = Field(64, gt=0, description="Hidden width of the policy MLP.")
    total_steps: int = Field(2000, gt=0, description="Environment steps to train for.")
    learning_rate: float = Field(3e-3, gt=0, description="Adam learning rate of the policy.")
    ent_coef: float = Field(
        0.01, ge=0, description="REINFORCE: entropy bonus (keeps keep/drop exploratory)."
    )
    batch_steps: int = Field(
        8, gt=0, description="REINFORCE: env steps whose gradients are averaged per update."
    )
    eval_interval: int = Field(
        250, ge=0, description="REINFORCE: steps between greedy evaluation episodes (best "
        "weights are saved); 0 = save the last weights.",
    )
    samples_per_step: int = Field(
        8, gt=0, description="REINFORCE: keep/drop masks sampled per candidate batch, each "
        "rewarded from the same learner state; each mask's baseline is the mean reward of the "
        "others (RLOO). 1 = one mask per step and the moving-average baseline (plain DVRL).",
    )
    baseline_beta: float = Field(
        0.05, gt=0, le=1, description="REINFORCE: rate of the moving-average reward baseline."
    )
    seed: int = Field(0, description="Seed of the policy init, sampling and env.")
    log_path: str | None = Field(
        None, description="JSONL metrics log; null = next to the checkpoint (metrics.jsonl)."
    )
    env: EnvConfig = EnvConfig()
    pool: PoolConfig = PoolConfig()
    ppo: PPOConfig = PPOConfig()
    replay: ReplayConfig = ReplayConfig()
    es: ESConfig = ESConfig()

    @model_validator(mode="after")
    def _replay_is_reinforce(self) -> AgentConfig:
        if self.replay.enabled and self.algorithm != "reinforce":
            raise ValueError(f"replay.enabled applies to algorithm=reinforce, not "
                             f"{self.algorithm!r}; set replay.enabled=false or use reinforce")
        return self

    @model_validator(mode="after")
    def _es_ranks_keep_drop(self) -> AgentConfig:
        # ES's action is a ranking (keep the top target_keep share); it has no third action
        if self.algorithm == "es" and self.env.upweight:
            raise ValueError("env.upweight (a third action) is not an action of algorithm=es, "
                             "which keeps the top env.target_keep share by rank; set "
                             "env.upweight=false or use algorithm=reinforce")
        if self.es.episode == "selection" and self.algorithm != "es":
            raise ValueError(f"es.episode=selection is how ES judges a ranking; set "
                             f"algorithm=es or es.episode=env (algorithm={self.algorithm!r})")
        if self.es.episode == "selection" and (self.env.learner != "trainer"
                                               or self.env.model_features):
            raise ValueError("es.episode=selection trains the environment's transformer on "
                             "each selection and scores documents by their features alone; "
                             "set env.learner=trainer and env.model_features=false")
        return self

    @model_validator(mode="after")
    def _natural_needs_target(self) -> AgentConfig:
        if self.pool.source == "inputs" and not (self.pool.inputs and self.target):
            raise ValueError("pool.source=inputs needs pool.inputs (the candidate documents) "
                             "and agent target (the clean text to select towards); set both")
        return self


def load_agent_config(path: str | Path | None, overrides: list[str] | None = None
                      ) -> AgentConfig:
    cfg = load_model(AgentConfig, path, overrides)
    assert isinstance(cfg, AgentConfig)
    return cfg
