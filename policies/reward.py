"""Learners the environment trains on a selection, and the paired-counterfactual reward.

A `Learner` consumes exactly `step_tokens` tokens of a selection per environment step (cycling
a short selection, so keeping too little means repeating data), and reports held-out loss.
Those tokens are windows drawn uniformly from everything the selection holds
(`selection_sample`): a step's budget is far smaller than a selection (32 web documents are
~80K tokens, a step trains on 2-8K), and reading only the selection's first tokens made the
reward depend on the first kept document alone, whatever the other decisions were.
- `TrainerLearner`: the bundled trainer (tiny DSA GPT via curator.trainer.engine), LR schedule
  over the whole episode so it is fully decayed at the last step.
- `ProxyLearner`: an interpolated hashed-bigram count LM (Dirichlet-smoothed unigram backoff).
  Milliseconds per step, deterministic, and it reacts to the same things a transformer does at
  this scale (junk tokens dilute the distribution, shuffled text breaks bigrams), so tests and
  fast agent training use it. It is a real LM, not a stand-in: its held-out loss is a
  cross-entropy in nats/token.

Reward (`paired_reward`): held-out loss of the same starting state trained on a random selection
of the same candidates with equal tokens (same seed) minus the agent's, in percent of the
random branch's loss, minus a keep-rate budget term. Positive = the selection beat chance.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, Protocol

import numpy as np

from curator.trainer.fit import cycle_to

if TYPE_CHECKING:
    from curator.trainer.config import TrainConfig


class Learner(Protocol):
    step_tokens: int  # tokens one `train` call consumes
    window: int  # contiguous tokens the learner reads at a time (its context)

    def reset(self, seed: int) -> None: ...
    def state(self) -> Any: ...
    def load_state(self, state: Any) -> None: ...
    def train(self, tokens: np.ndarray, step: int, seed: int) -> None: ...
    def heldout_loss(self) -> float: ...
    def doc_losses(self, docs: list[np.ndarray]) -> np.ndarray: ...


class ProxyLearner:
    """Interpolated hashed-bigram LM over token ids; state = three count arrays."""

    def __init__(self, vocab_size: int, heldout: np.ndarray, step_tokens: int,
                 bigram_buckets: int = 1 << 18, alpha: float = 0.5, beta: float = 20.0) -> None:
        self.V, self.B = int(vocab_size), int(bigram_buckets)
        self.alpha, self.beta, self.step_tokens = alpha, beta, step_tokens
        self.window = 128  # bigrams never cross it except at its ends; the trainer's seq_len
        self.heldout = np.asarray(heldout, np.int64)
        self.reset(0)

    def _bigram_key(self, prev: np.ndarray, cur: np.ndarray) -> np.ndarray:
        return (prev * self.V + cur) % self.B

    def reset(self, seed: int) -> None:
        del seed  # counts start empty: nothing random about a count LM
        self.uni = np.zeros(self.V, np.float64)
        self.ctx = np.zeros(self.V, np.float64)
        self.bi = np.zeros(self.B, np.float64)

    def state(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return self.uni.copy(), self.ctx.copy(), self.bi.copy()

    def load_state(self, state: tuple[np.ndarray, np.ndarray, np.ndarray]) -> None:
        self.uni, self.ctx, self.bi = (a.copy() for a in state)

    def train(self, tokens: np.ndarray, step: int, seed: int) -> None:
        t = cycle_to(np.asarray(tokens, np.int64), self.step_tokens)
        if len(t) == 0:
            return
        self.uni += np.bincount(t, minlength=self.V)
        self.ctx += np.bincount(t[:-1], minlength=self.V)
        self.bi += np.bincount(self._bigram_key(t[:-1], t[1:]), minlength=self.B)

    def token_losses(self, tokens: np.ndarray) -> np.ndarray:
        """-log p(t_i | t_{i-1}) for i >= 1 (nats)."""
        t = np.asarray(tokens, np.int64)
        p_uni = (self.uni[t[1:]] + self.alpha) / (self.uni.sum() + self.alpha * self.V)
        c_bi = self.bi[self._bigram_key(t[:-1], t[1:])]
        p = (c_bi + self.beta * p_uni) / (self.ctx[t[:-1]] + self.beta)
        return -np.log(p)

    def heldout_loss(self) -> float:
        return float(self.token_losses(self.heldout).mean())

    def doc_losses(self, docs: list[np.ndarray]) -> np.ndarray:
        """Mean token loss of each document on its own (no bigram across documents)."""
        lengths = np.array([len(d) for d in docs], np.int64)
        if lengths.sum() < 2:
            return np.full(len(docs), np.nan)
        flat = np.concatenate(docs).astype(np.int64)
        doc = np.repeat(np.arange(len(docs)), lengths)[1:]
        first = np.zeros(len(flat), bool)
        first[np.cumsum(lengths)[:-1][lengths[1:] > 0]] = True  # bigrams that cross a doc start
        valid = ~first[1:]
        loss = self.token_losses(flat)[valid]
        total = np.bincount(doc[valid], weights=loss, minlength=len(docs))
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(lengths >= 2, total / (lengths - 1), np.nan)


@dataclass(frozen=True)
class TrainerSpec:
    """The tiny trainer the environment uses (sizes chosen for a shared CPU)."""

    seq_len: int = 128
    n_layer: int = 2
    n_head: int = 2
    d_model: int = 64
    batch_size: int = 8
    lr: float = 3e-3
    eval_batches: int = 4
    threads: int = 1
    device: str = "auto"  # TrainConfig.device: auto = CUDA when present, else CPU
    # which held-out windows `heldout_loss` reads: "first" = the first eval_batches batches;
    # "sampled" = a fixed random sample of them from across the whole held-out stream
    eval_windows: Literal["first", "sampled"] = "first"


def tiny_train_config(spec: TrainerSpec, seed: int = 0) -> TrainConfig:
    """The TrainConfig of a TrainerSpec: DSA on (block 32, 2 picked blocks of 4 at seq_len 128,
    so sparsity is real), no dense warmup (an env step is only a few optimizer steps), fp32,
    on the spec's device."""
    from curator.trainer.config import DataConfig, DSAConfig, ModelConfig, OptimConfig, TrainConfig

    s = spec
    return TrainConfig(
        data=DataConfig(path="<in-memory selection>"),
        model=ModelConfig(seq_len=s.seq_len, n_layer=s.n_layer, n_head=s.n_head,
                          d_model=s.d_model),
        dsa=DSAConfig(block_size=min(32, s.seq_len), top_k_blocks=2, indexer_heads=2,
                      indexer_dim=16, dense_warmup_steps=0),
        optim=OptimConfig(lr=s.lr, warmup_frac=0.02),
        precision="fp32", device=s.device, batch_size=s.batch_size, seed=seed,
    )


class TrainerLearner:
    """The bundled trainer as a learner: build once, snapshot/restore weights + AdamW state.

    By default every episode starts from a fresh init and the LR schedule spans the episode.
    The closed loop passes `start_state` (its current model + optimizer) and `schedule`
    (first global step, total steps of the loop's run): episodes then continue that run.
    """

    def __init__(self, vocab_size: int, heldout: np.ndarray, step_tokens: int,
                 episode_steps: int, spec: TrainerSpec | None = None,
                 start_state: tuple[dict, dict] | None = None,
                 schedule: tuple[int, int] | None = None) -> None:
        import torch

        from curator.trainer.data import TokenStream
        from curator.trainer.engine import resolve_device

        torch.set_num_threads(max(1, (spec or TrainerSpec()).threads))
        self.spec = s = spec or TrainerSpec()
        self.cfg = tiny_train_config(s)
        self.vocab_size = vocab_size
        self.device = resolve_device(self.cfg.device)
        self.steps_per_env_step = max(1, step_tokens // self.cfg.tokens_per_step())
        self.step_tokens = self.steps_per_env_step * self.cfg.tokens_per_step()
        self.window = s.seq_len
        self.start_state = start_state
        self.first_step, self.total_steps = schedule or (0, self.steps_per_env_step * episode_steps)
        # a fixed permutation (seed 0): every reward reads the same windows, so the paired
        # branches and successive steps are judged on one sample of the whole stream
        order = "shuffled" if s.eval_windows == "sampled" else "curriculum"
        self.heldout = TokenStream(np.asarray(heldout), s.seq_len, order=order, seed=0)
        self.reset(0)

    def reset(self, seed: int) -> None:
        from curator.trainer.engine import build_model, build_optimizer

        cfg = self.cfg.model_copy(update={"seed": seed})
        self.model = build_model(cfg, self.vocab_size, self.device)
        self.optimizer = build_optimizer(self.model, cfg.optim, self.device)
        if self.start_state is not None:
            self.load_state(self.start_state)

    def state(self) -> tuple[dict, dict]:
        return (copy.deepcopy(self.model.state_dict()),
                copy.deepcopy(self.optimizer.state_dict()))

    def load_state(self, state: tuple[dict, dict]) -> None:
        self.model.load_state_dict(state[0])
        self.optimizer.load_state_dict(state[1])

    def train(self, tokens: np.ndarray, step: int, seed: int) -> None:
        from curator.trainer.fit import fit_tokens

        n = self.steps_per_env_step
        fit_tokens(self.model, self.optimizer, tokens, self.cfg, n, total_steps=self.total_steps,
                   start_step=self.first_step + step * n, seed=seed, order="shuffled")

    def heldout_loss(self) -> float:
        from curator.trainer.engine import evaluate

        return evaluate(self.model, self.heldout, self.cfg.batch_size * 2, self.spec.eval_batches)

    def doc_losses(self, docs: list[np.ndarray]) -> np.ndarray:
        from curator.trainer.engine import per_document_loss

        return per_document_loss(self.model, docs, batch_size=16)


def random_equal_tokens(doc_tokens: list[np.ndarray], n_tokens: int,
                        rng: np.random.Generator) -> np.ndarray:
    """A random selection of the candidates with exactly `n_tokens` tokens (last doc cut)."""
    if n_tokens == 0 or not doc_tokens:
        return np.zeros(0, np.int64)
    order = rng.permutation(len(doc_tokens))
    stream = np.concatenate([doc_tokens[i] for i in order])
    return stream[:n_tokens]


def selection_sample(stream: np.ndarray, n_tokens: int, window: int,
                     rng: np.random.Generator) -> np.ndarray:
    """`n_tokens` of a selection's token stream as `window`-token windows starting at uniformly
    drawn positions: every document of the selection is read in proportion to its tokens (and
    copies), as training on the whole selection would. A stream no longer than `n_tokens` is
    returned whole (the learner cycles it: keeping too little means repeating data)."""
    if len(stream) <= n_tokens:
        return stream
    window = min(window, n_tokens)  # a step shorter than the context reads one window
    n_windows = -(-n_tokens // window)
    starts = rng.integers(0, len(stream) - window + 1, n_windows)
    return stream[starts[:, None] + np.arange(window)].reshape(-1)[:n_tokens]


def budget_penalty(keep_rate: float, target: float, weight: float) -> float:
    """Quadratic pull towards the target keep rate: all-keep and all-drop both cost."""
    return weight * (keep_rate - target) ** 2


def upweighted_stream(doc_tokens: list[np.ndarray], copies: np.ndarray,
                      rng: np.random.Generator) -> np.ndarray:
    """Document i repeated copies[i] times, the copies in a shuffled order (so a repeat is not
    simply the same document twice in a row)."""
    order = rng.permutation(np.repeat(np.arange(len(doc_tokens)), copies))
    return (np.concatenate([doc_tokens[i] for i in order]) if len(order)
            else np.zeros(0, np.int64))


def paired_reward(learner: Learner, doc_tokens: list[np.ndarray], keep: np.ndarray, step: int,
                  seed: int, target_keep: float, budget_weight: float,
                  copies: np.ndarray | None = None) -> tuple[float, dict[str, float]]:
    """Train the learner on the kept docs; reward vs a random equal-token branch of its state.

    `copies` (the upweight action): document i enters the agent's stream copies[i] times; the
    random branch is still an equal-token random selection and the budget term still counts
    distinct kept documents (`keep`). Leaves the learner in the agent's branch (the episode
    continues from what the agent chose).
    """
    start = learner.state()
    if copies is None:
        kept = [doc_tokens[i] for i in np.flatnonzero(keep)]
        agent_stream = np.concatenate(kept) if kept else np.zeros(0, np.int64)
    else:
        # own stream of the seed: the random branch below draws exactly as without copies
        agent_stream = upweighted_stream(doc_tokens, copies, np.random.default_rng([seed, step, 1]))
    rng = np.random.default_rng([seed, step])
    random_stream = random_equal_tokens(doc_tokens, len(agent_stream), rng)
    # both branches read the same number of windows, each drawn across its whole selection
    n, w = learner.step_tokens, learner.window
    agent_stream = selection_sample(agent_stream, n, w, np.random.default_rng([seed, step, 2]))
    random_stream = selection_sample(random_stream, n, w, np.random.default_rng([seed, step, 3]))
    learner.train(random_stream, step, seed)
    loss_random = learner.heldout_loss()
    learner.load_state(start)
    learner.train(agent_stream, step, seed)
    loss_agent = learner.heldout_loss()
    keep_rate = float(np.mean(keep)) if len(keep) else 0.0
    gain = 100.0 * (loss_random - loss_agent) / max(loss_random, 1e-9)
    penalty = budget_penalty(keep_rate, target_keep, budget_weight)
    info = {"loss_agent": loss_agent, "loss_random": loss_random, "gain_pct": gain,
            "keep_rate": keep_rate, "budget_penalty": penalty}
    if copies is not None:
        info["upweight_rate"] = float(np.mean(copies > 1)) if len(copies) else 0.0
    return gain - penalty, info
