"""Typed configuration of a closed train-and-filter loop (`curator loop`, `python -m jobs.loop`)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator

from curator.config import DedupConfig, RayConfig, Section, load_model
from policies.config import AgentConfig, EnvConfig, ESConfig, PoolConfig

ARMS = ("loop", "static", "random", "heuristic", "loop_uniform")
"""loop: the agent, re-rewarded from the current checkpoint and updated after every round.
static: the round-0 policy, never updated. random: uniform random ranking. heuristic: the
Gopher/C4/FineWeb rule score. loop_uniform: the loop agent's own selection in uniform (shuffled)
order instead of the curriculum schedule -- the curriculum ablation."""


class LoopModelConfig(Section):
    """The bundled model every arm trains (the same size, init seed and schedule for all)."""

    seq_len: int = Field(128, gt=8, description="Context length in tokens.")
    n_layer: int = Field(2, gt=0, description="Transformer blocks.")
    n_head: int = Field(2, gt=0, description="Attention heads.")
    d_model: int = Field(64, gt=0, description="Residual width.")
    batch_size: int = Field(8, gt=0, description="Sequences per optimizer step.")
    lr: float = Field(3e-3, gt=0, description="Peak LR; cosine decayed to the whole loop's end.")
    eval_batches: int = Field(8, gt=0, description="Held-out batches (of 2x batch_size) per eval.")
    evals_per_round: int = Field(2, gt=0, description="Held-out evaluations within each round.")
    device: Literal["auto", "cpu", "cuda"] = Field(
        "auto", description="Where every arm's model (and the update's learner) trains; auto = "
        "CUDA when present, else CPU.",
    )


class LoopHeldoutConfig(Section):
    """How the pool's clean held-out documents become the validation text (the update's
    rewards and trial rounds) and the test text (every arm's reported loss)."""

    split: Literal["halves", "shuffled"] = Field(
        "halves", description="halves = the first half of the held-out documents in the pool's "
        "order is validation, the rest test; shuffled = a seeded (pool.seed) random document-level "
        "split, so neither half is one source's run of documents.",
    )
    max_doc_chars: int = Field(
        0, ge=0, description="Each held-out document's first this many characters (cut at a "
        "whitespace), so no single long document outweighs the others in a half's loss; 0 = "
        "whole documents. The trial round can only judge what the test measures when both halves "
        "weigh many documents alike (BENCHMARKS.md, 'Loop judge agreement').",
    )


class LoopUpdateConfig(Section):
    """The loop agent's per-round update: REINFORCE or ES in the curation environment whose
    episodes start from the loop arm's current checkpoint (the real trainer, not the proxy)."""

    algorithm: Literal["reinforce", "es"] = Field(
        "reinforce", description="The proposal's learner: reinforce = `steps` env steps of "
        "REINFORCE on every network weight; es = evolution strategies on the linear weights of "
        "`es.columns` (policies/es.py), es.iterations x es.pairs x 2 episodes of "
        "env.episode_steps steps, judged by the episode return.",
    )
    es_return: Literal["episode", "trial"] = Field(
        "episode", description="algorithm=es: what each ES episode returns. episode = the "
        "curation environment's episode (env.*: keep the top share of candidate batches, "
        "rewards from short training on them); trial = minus the validation loss after a whole "
        "trial round on the next selection that ranking makes from everything the arm has "
        "left (curator/loop/trial.py), each pair's two rankings read in one shared order that "
        "the final trial never uses: the loop's own objective, measured.",
    )
    steps: int = Field(
        12, ge=0, description="Environment steps (candidate batches) per round of REINFORCE; "
        "0 = never update (either algorithm).",
    )
    es: ESConfig = Field(
        ESConfig(iterations=3, pairs=2),
        description="algorithm=es: its columns, iterations, pairs, sigma and step. The trial "
        "round judges the proposal, so ES keeps its last weights (no evaluation episodes).",
    )
    learning_rate: float = Field(1e-3, gt=0, description="Adam LR of the policy update.")
    batch_steps: int = Field(2, gt=0, description="Env steps whose gradients form one update.")
    samples_per_step: int = Field(
        4, gt=0, description="Keep/drop masks scored per candidate batch from the same "
        "checkpoint state (REINFORCE leave-one-out baseline); 1 = moving-average baseline.",
    )
    candidate_rounds: float = Field(
        3.0, ge=0, description="Candidates of the update: the best-ranked remaining documents "
        "holding this many rounds' tokens (where the next selections will come from); 0 = all "
        "remaining documents.",
    )
    trial_round: bool = Field(
        True, description="Trial round before the update is adopted: the arm's checkpoint "
        "trains one round on the selection of each choice (the current policy, the REINFORCE "
        "proposal, each of signal_weights) and the one with the lowest validation loss is kept "
        "if it leads the current policy by more than trial_margin (curator/loop/trial.py).",
    )
    trial_anneal: bool = Field(
        True, description="Trial rounds decay the loop's LR linearly to zero over the round "
        "(the data-ablation practice of annealing runs): at the loop's mid-schedule LR the "
        "validation loss after a round swings with its last batches.",
    )
    trial_horizon: Literal["next", "end"] = Field(
        "next", description="How far a trial round looks: next = the next round's selection, "
        "trained annealed; end = every round left, each selecting from what the rounds before "
        "it left, on the loop's LR schedule (the last round annealed), so an update after an "
        "early round is judged by the validation loss the loop would end with, not by one "
        "annealed round that the real schedule never trains. Costs (rounds left) trial rounds "
        "per choice (and per ES episode with es_return=trial).",
    )
    trial_orders: int = Field(
        1, ge=1, description="Reading orders each choice of a trial round trains in (its trial "
        "loss is their mean; one seeded order per index, shared by every choice). The order "
        "is a large part of a trial difference's noise (trial_margin); n orders cost n trial "
        "rounds per choice.",
    )
    trial_margin: float = Field(
        0.005, ge=0, description="Validation-loss lead (nats) a choice needs over the current "
        "policy in the trial round to replace it. Measured noise of a trial difference "
        "(annealed, common random numbers, the same two selections under other random keys): "
        "sd 0.0015 at configs/loop_corpora.yaml's 32-step rounds, 0.013 at "
        "configs/loop_constrained.yaml's 96-step rounds.",
    )
    signal: Literal["order_gain", "context_gain"] = Field(
        "order_gain", description="The loop's model-aware signal (curator/loop/signal.py): "
        "order_gain = the arm model's loss on the document with its words shuffled minus on "
        "the document as written; context_gain = the validation text's unigram loss minus the "
        "arm model's loss.",
    )
    signal_weights: list[float] = Field(
        [], description="Weights of `signal` under the arm's model the trial round also tries, "
        "its rank-scaled values added to the current policy's z-scored logits; the best choice "
        "is kept. Empty = REINFORCE only. Needs trial_round.",
    )
    env: EnvConfig = Field(
        EnvConfig(docs_per_step=32, step_tokens=2048, episode_steps=8, learner="trainer"),
        description="Environment of the update; its learner is always the loop arm's own model "
        "(model.*), so trainer_* (except trainer_eval_windows: which validation windows an "
        "episode's reward reads) and model_features are ignored here.",
    )

    @model_validator(mode="after")
    def _signal_needs_trial(self) -> LoopUpdateConfig:
        if any(w < 0 for w in self.signal_weights):
            raise ValueError(f"update.signal_weights {self.signal_weights}: each must be >= 0")
        if self.signal_weights and not self.trial_round:
            raise ValueError("update.signal_weights are chosen by the trial round; set "
                             "update.trial_round=true or signal_weights=[]")
        if self.es_return == "trial" and self.algorithm != "es":
            raise ValueError("update.es_return=trial is how ES episodes are judged; set "
                             "update.algorithm=es or update.es_return=episode")
        if self.algorithm == "es" and self.env.upweight:
            raise ValueError("update.env.upweight is not an action of update.algorithm=es "
                             "(it keeps a top share by rank); set update.env.upweight=false")
        if self.es.episode != "env":
            raise ValueError("update.es.episode: the loop's ES episodes are set by "
                             "update.es_return (episode or trial); set update.es.episode=env")
        if self.env.heldout_doc_chars:
            raise ValueError("update.env.heldout_doc_chars: the loop's held-out documents are "
                             "cut by heldout.max_doc_chars; set that and "
                             "update.env.heldout_doc_chars=0")
        return self


class LoopConfig(Section):
    """A closed loop: rounds of score -> select -> stage/export -> train -> evaluate -> reward
    -> update, for several arms side by side at equal token budgets."""

    output: str = Field(description="RUN directory of the loop (curated pool + RUN/loop/).")
    pool: PoolConfig = Field(
        PoolConfig(n_docs=1200, noise=0.5, heldout_docs=60),
        description="Candidate pool: clean text + real junk + labelled corruptions "
        "(policies/pool.py), or source=inputs: the user's documents as they are, with "
        "agent.target as the clean text; the held-out clean documents (a natural pool: the "
        "target's reward part) are split into a validation half (the agent's reward) and a "
        "test half (the reported held-out loss).",
    )
    heldout: LoopHeldoutConfig = LoopHeldoutConfig()
    curate_rules: bool = Field(
        False,
        description="Apply curate's heuristic rules and language filter to the pool before "
        "the loop; false = normalize + dedup only, so every arm chooses from the noisy pool.",
    )
    vocab_size: int = Field(2048, gt=255, description="Sentencepiece vocabulary curate trains.")
    rounds: int = Field(4, gt=0, description="Rounds of select -> train -> update.")
    round_tokens: int = Field(
        16384, gt=0, description="Training tokens per round, the same for every arm."
    )
    arms: list[str] = Field(list(ARMS), description=f"Arms to run, from {list(ARMS)}.")
    seeds: list[int] = Field([0], min_length=1, description="Paired seeds (model init, order).")
    schedule: str = Field(
        "phases",
        description="Curriculum schedule of each round's selection (phases, linear, "
        "step, uniform or a YAML file); loop_uniform always uses uniform.",
    )
    n_stages: int = Field(3, gt=0, description="Difficulty stages (quantiles).")
    difficulty: Literal["model_loss", "compression_ratio", "length"] = Field(
        "model_loss",
        description="Difficulty score of the curriculum: loss under the arm's current model, "
        "zstd compression ratio, or document length.",
    )
    initial_policy: str = Field(
        "train",
        description="Round-0 policy: 'train' (REINFORCE on the proxy environment over this "
        "pool, `agent` settings), 'default' (the shipped policy) or a checkpoint path.",
    )
    agent: AgentConfig = Field(
        AgentConfig(total_steps=1500, env=EnvConfig(learner="proxy")),
        description="Round-0 agent training (initial_policy=train); its pool is the loop's.",
    )
    update: LoopUpdateConfig = LoopUpdateConfig()
    model: LoopModelConfig = LoopModelConfig()
    dedup: DedupConfig = Field(
        DedupConfig(), description="Dedup of the pool's curate run (exact + MinHash near)."
    )
    ray: RayConfig = RayConfig()
    quiet: bool = Field(False, description="No progress bars.")

    @field_validator("arms")
    @classmethod
    def _known_arms(cls, v: list[str]) -> list[str]:
        unknown = [a for a in v if a not in ARMS]
        if unknown or not v or len(set(v)) != len(v):
            raise ValueError(f"arms {v}: each must be one of {list(ARMS)}, once, at least one")
        if "loop_uniform" in v and "loop" not in v:
            raise ValueError("arms: loop_uniform trains the loop arm's selection; add 'loop'")
        return v

    @model_validator(mode="after")
    def _consistent(self) -> LoopConfig:
        if self.pool.source == "inputs":
            if not (self.pool.inputs and self.agent.target):
                raise ValueError(
                    "pool.source=inputs (a natural pool) needs pool.inputs (the candidate "
                    "documents) and agent.target (clean text: its reward part becomes the "
                    "validation and test text); set both"
                )
        elif self.pool.heldout_docs < 4:
            raise ValueError("pool.heldout_docs must be >= 4 (split into validation and test)")
        if (
            self.initial_policy not in ("train", "default")
            and not Path(self.initial_policy).is_file()
        ):
            raise ValueError(
                f"initial_policy {self.initial_policy!r} is not 'train', 'default' or an "
                "existing policy checkpoint file"
            )
        if self.round_tokens < self.model.seq_len * self.model.batch_size:
            raise ValueError(
                f"round_tokens={self.round_tokens} is less than one optimizer step "
                f"(model.seq_len * model.batch_size = {self.model.seq_len * self.model.batch_size})"
            )
        return self

    @property
    def steps_per_round(self) -> int:
        return max(1, self.round_tokens // (self.model.seq_len * self.model.batch_size))

    @property
    def total_steps(self) -> int:
        return self.steps_per_round * self.rounds

    @property
    def needs_agent(self) -> bool:
        return any(a in ("loop", "static", "loop_uniform") for a in self.arms)


def load_loop_config(path: str | Path | None, overrides: list[str] | None = None) -> LoopConfig:
    cfg = load_model(LoopConfig, path, overrides)
    assert isinstance(cfg, LoopConfig)
    return cfg
