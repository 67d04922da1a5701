"""Rebuild the shipped default policy (policies/default/policy.safetensors) from the natural
setup, offline:

    .venv/bin/python -m policies.train_default --corpora ../shared/corpora \
        --crawl CRAWL/*.jsonl.gz [--rl --steps 100]

1. data (policies/natural_corpus.py): the candidates are real crawl text (WARC pages, Common
   Crawl and Dolma documents, raw web pages; `--crawl` adds Common Crawl extracts), of which
   only the training half (by text hash) is used here -- the other half is what the natural
   selection benchmark selects from and what its keep/reject judgments describe; the target is
   the training half's crawl documents a reader kept (`--kept`, judgments keyed by text sha1 in
   benchmarks/data/natural_train_labels.jsonl) and the clean articles of the web pages
   (optionally book chunks, the Debian handbook, kernel docs from `apt-get download`), of which
   the fit and reward parts are used, never the evaluation part;
2. a sentencepiece BPE tokenizer (4k pieces) on the target's fit part and the training pool;
3. features with the target-aware columns and the reference LM's loss (fitted on the target's
   fit part); the policy's linear path is the logistic regression of the target text (fit and
   reward parts) against the pool (`init: logistic`). That fitted policy is what ships:
   REINFORCE in the transformer environment (`--rl`; reward: the bundled transformer's loss
   on the target's reward part) raises its own reward but moves the ranking away from the
   readers' keep/reject judgments of the other half (BENCHMARKS.md, natural selection).
The same function builds the natural benchmark's agents and its "no RL" row, so the
benchmark measures the policy that ships.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path
from typing import Any

import pyarrow as pa

from curator.config import TokenizerConfig
from curator.tokenizer_train import train_tokenizer
from policies.checkpoint import DEFAULT_POLICY
from policies.config import AgentConfig, EnvConfig
from policies.natural_corpus import NaturalData, load_natural
from policies.pool import Pool
from policies.target_fitting import FittedTarget

TARGET_DIM = 4096


def natural_agent_config(output: str, steps: int, overrides: list[str] | None = None
                         ) -> AgentConfig:
    """The natural environment: the bundled transformer learns from each step's kept
    documents and is rewarded by its loss on the target's reward part."""
    from curator.config import load_model

    base = AgentConfig(
        algorithm="reinforce", output=output, total_steps=steps, seed=0, init="logistic",
        target_dim=TARGET_DIM, reference_model=True, samples_per_step=4, batch_steps=4,
        eval_interval=max(1, steps // 4), learning_rate=3e-3,
        env=EnvConfig(learner="trainer", docs_per_step=32, step_tokens=2048, episode_steps=8,
                      target_keep=0.5, trainer_eval_batches=2),
    ).model_dump(mode="json")
    cfg = load_model(AgentConfig, None, overrides or [], base=base)
    assert isinstance(cfg, AgentConfig)
    return cfg


def training_pool(data: NaturalData, kept_fit: bool = False) -> Pool:
    """The agent's pool: the crawl's training half; reward = target reward part; fitting =
    target fit part.

    `kept_fit`: the pool also holds the reader-kept crawl documents that fell in the target's
    fitting part (appended after the others). Without them the pool is the training half minus
    its best documents while the pool a policy ranks keeps its own, so the agent learns to rank
    among what readers rejected. They are target text, so an agent needs `crossfit_folds` for
    them (features from models fitted without them); the reward and evaluation parts' kept
    documents never join (the agent would be rewarded for picking the reward text itself)."""
    texts = list(data.pool_train.texts)
    if kept_fit:
        fit = set(data.target.fit)
        texts += [t for t in data.kept if t in fit]
    return Pool(pa.array(texts, pa.string()), None, data.target.reward, data.target.fit)


def natural_tokenizer(data: NaturalData, vocab_size: int = 4096) -> bytes:
    with tempfile.TemporaryDirectory(prefix="curator-policy-") as tmp:
        path = train_tokenizer(data.target.fit + data.pool_train.texts,
                               TokenizerConfig(vocab_size=vocab_size, seed=0),
                               Path(tmp) / "tokenizer.model")
        return path.read_bytes()


def train_default(data: NaturalData, output: str | Path = DEFAULT_POLICY, steps: int = 100,
                  tokenizer: bytes | None = None, overrides: list[str] | None = None,
                  fitted: FittedTarget | None = None, rl: bool = True) -> dict[str, Any]:
    """`fitted`: `fit_target_models` of the natural config on `training_pool(data)`, when
    the caller trains several agents on the same data (the benchmark; the serving models are
    the same with the kept fit documents in the pool, which are never negatives). `rl=False`: the
    policy network at its logistic init, saved without any RL step (what ships: see
    BENCHMARKS.md, RL moved the ranking away from readers' judgments)."""
    from policies.algorithms import trainer_for

    cfg = natural_agent_config(str(output), steps, overrides)
    # the reader-kept fit documents are candidates only when their features are out-of-fold
    pool = training_pool(data, kept_fit=cfg.crossfit_folds > 1)
    if not rl:
        return fitted_policy(cfg, pool, tokenizer or natural_tokenizer(data), fitted)

    if cfg.log_path is None:
        cfg = cfg.model_copy(update={"log_path": str(
            Path(tempfile.gettempdir()) / f"curator-policy-{Path(output).stem}-metrics.jsonl")})
    return trainer_for(cfg)(cfg, pool=pool, tokenizer=tokenizer or natural_tokenizer(data),
                            fitted=fitted)


def fitted_policy(cfg: AgentConfig, pool: Pool, tokenizer: bytes,
                  fitted: FittedTarget | None = None) -> dict[str, Any]:
    """The policy network with its linear path fitted (target vs pool, `logistic_init`) and
    no RL, saved like a trained policy; its config records `rl_steps: 0`."""
    import time

    import torch

    from policies.agent import PolicyNet
    from policies.env import make_env
    from policies.reinforce import logistic_init

    t0 = time.time()
    setup = make_env(cfg, pool, tokenizer, fitted)
    torch.manual_seed(cfg.seed)
    net = PolicyNet(setup.env.observation_space.shape[1], cfg.hidden)
    logistic_init(net, setup)
    config = {**cfg.model_dump(mode="json"), "rl_steps": 0}
    setup.save_policy(cfg.output, net, config)
    return {"output": cfg.output, "setup_s": time.time() - t0, "train_s": 0.0,
            "eval_returns": [], "rl_replaced_start": None}


KEPT_LABELS = Path(__file__).resolve().parents[1] / "benchmarks" / "data" / \
    "natural_train_labels.jsonl"


def add_data_args(parser: argparse.ArgumentParser) -> None:
    """The natural setup's inputs, shared by this script and the natural benchmark."""
    parser.add_argument("--corpora", default="../shared/corpora")
    parser.add_argument("--crawl", nargs="*", default=[], help="extra crawl jsonl files")
    parser.add_argument("--kept", default=str(KEPT_LABELS),
                        help="keep/reject judgments of training-half crawl documents (sha1, "
                        "keep): the kept ones join the target; '' = none")
    parser.add_argument("--book-chunks", type=int, default=0,
                        help="~2 KB chunks per book in the target (0 = no books)")
    parser.add_argument("--debian", default=None, help="an unpacked debian-handbook package "
                        "(its English pages join the target)")
    parser.add_argument("--kernel-docs", default=None, help="an unpacked linux-doc package")


def natural_data(ns: argparse.Namespace, work: Path) -> NaturalData:
    return load_natural(Path(ns.corpora), work, Path(ns.debian) if ns.debian else None,
                        [Path(p) for p in ns.crawl], book_chunks=ns.book_chunks,
                        kernel_docs=Path(ns.kernel_docs) if ns.kernel_docs else None,
                        kept=Path(ns.kept) if ns.kept else None)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="Rebuild the shipped default policy.")
    add_data_args(parser)
    parser.add_argument("--work", default=str(Path(tempfile.gettempdir()) / "curator-natural"))
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--output", default=str(DEFAULT_POLICY))
    parser.add_argument("--rl", action="store_true",
                        help="run REINFORCE from the fitted init (the shipped policy has none)")
    ns = parser.parse_args()
    summary = train_default(natural_data(ns, Path(ns.work)), ns.output, ns.steps, rl=ns.rl)
    print({k: v for k, v in summary.items() if k != "episodic_returns"})
