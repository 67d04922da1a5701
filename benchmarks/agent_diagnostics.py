"""Fast agent diagnostics (about a minute): train one agent, check its ranking without the DSA runs.

    .venv/bin/python benchmarks/agent_diagnostics.py --corpora ../shared/corpora \
        --set samples_per_step=1 --set total_steps=3000

Trains an agent exactly as benchmarks/selection_quality.py does (same pool draws, tokenizer
settings and reference split; `--set` overrides AgentConfig fields, dots for nesting), then, on
the evaluation pools at 25% and 50% noise, prints for the agent and the DSIR / n-gram classifier
/ heuristic / oracle / random rankings: AUC against the corruption labels, the junk share of the
top-B selection, the held-out loss of a hashed-bigram LM trained on that selection (the proxy
learner, a cheap stand-in for the DSA run), and which junk kinds the agent's selection holds.
It is for tuning the agent; the measured comparison is selection_quality.py.
"""

from __future__ import annotations

import argparse
import collections
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.selection_quality import auc, split_reference  # noqa: E402
from curator.config import TokenizerConfig, load_model  # noqa: E402
from curator.tokenizer_train import train_tokenizer  # noqa: E402
from policies import baselines as bl  # noqa: E402
from policies import reinforce  # noqa: E402
from policies.config import AgentConfig  # noqa: E402
from policies.pool import build_pool, corpora_sources  # noqa: E402
from policies.reward import ProxyLearner  # noqa: E402
from policies.scorer import PolicyScorer  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--corpora", default="../shared/corpora")
    ap.add_argument("--budget", type=int, default=60_000)
    ap.add_argument("--set", dest="overrides", action="append", default=[])
    args = ap.parse_args()
    torch.set_num_threads(1)
    import sentencepiece as spm

    sources, reference = split_reference(corpora_sources(args.corpora), 60, seed=999)
    tmp = Path(tempfile.mkdtemp(prefix="agent-diag-"))
    tokenizer = train_tokenizer(
        sources.clean[:2000], TokenizerConfig(vocab_size=2048), tmp / "tok.model"
    ).read_bytes()
    sp = spm.SentencePieceProcessor(model_proto=tokenizer)
    base = {  # selection_quality.py's agent
        "algorithm": "reinforce", "output": str(tmp / "agent.safetensors"),
        "total_steps": 1500, "seed": 0, "target_dim": 4096,
        "env": {"learner": "proxy", "docs_per_step": 32, "step_tokens": 4096,
                "episode_steps": 16},
        "pool": {"source": "corpora", "corpora_dir": args.corpora, "n_docs": 1200,
                 "noise": 0.5, "seed": 100},
    }
    cfg = load_model(AgentConfig, None, args.overrides, base=base)
    assert isinstance(cfg, AgentConfig)
    t0 = time.time()
    summary = reinforce.main(cfg, build_pool(sources, 1200, 0.5, seed=100, heldout_docs=60),
                             tokenizer)
    print(f"agent: {time.time() - t0:.0f} s, best greedy return "
          f"{summary['best_eval_return']:.2f}, overrides {args.overrides}")
    agent = PolicyScorer(cfg.output)
    ref = pa.array(reference, pa.string())
    for noise in (0.25, 0.5):
        pool = build_pool(sources, 600, noise, seed=1, heldout_docs=50)
        docs = [np.asarray(d, np.int64)
                for d in sp.EncodeAsNumpy(pool.texts.to_pylist(), add_eos=True)]
        n_tok = np.array([len(d) for d in docs])
        held = np.concatenate(sp.EncodeAsNumpy(pool.heldout, add_eos=True)).astype(np.int64)
        scores = {
            "agent": agent.score_texts(pool.texts)[0].astype(np.float64),
            "DSIR": bl.dsir_scores(pool.texts, ref),
            "n-gram classifier": bl.ngram_classifier_scores(pool.texts, ref),
            "heuristic rules": bl.heuristic_scores(pool.texts),
            "oracle": bl.oracle_scores(pool.is_junk, 0),
            "random": bl.random_scores(len(pool), 0),
        }
        print(f"\nnoise {noise}: method | AUC | junk share of top-B | proxy-LM loss at B")
        for name, s in scores.items():
            keep = bl.select_by_score(s, n_tok, args.budget)
            lm = ProxyLearner(sp.get_piece_size(), held, args.budget)
            lm.train(np.concatenate([docs[i] for i in np.flatnonzero(keep)]), 0, 0)
            junk = n_tok[keep & pool.is_junk].sum() / n_tok[keep].sum()
            print(f"  {name:18s} | {auc(s, ~pool.is_junk):.3f} | {junk:.3f} | "
                  f"{lm.heldout_loss():.4f}")
        keep = bl.select_by_score(scores["agent"], n_tok, args.budget)
        labels = pool.labels.to_pylist()
        kinds = collections.Counter(labels[i] for i in np.flatnonzero(keep))
        print(f"  agent's top-B documents by label: {dict(kinds)}")


if __name__ == "__main__":
    main()
