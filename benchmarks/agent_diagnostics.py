"""Fast agent diagnostics (about a minute): train one agent, check its ranking without the DSA runs.

    .venv/bin/python benchmarks/agent_diagnostics.py --corpora ../shared/corpora \
        --set samples_per_step=1 --set total_steps=3000

Trains an agent exactly as benchmarks/selection_quality.py does (same pool draws, tokenizer
settings and reference split; `--set` overrides AgentConfig fields, dots for nesting), then, on
the evaluation pools at 25% and 50% noise, prints for the agent and the DSIR / n-gram classifier
/ heuristic / clean-first random / random rankings: AUC against the corruption labels, the junk
share of the top-B selection, the held-out loss of a hashed-bigram LM trained on that selection
(the proxy learner, a cheap stand-in for the DSA run), and which junk kinds the agent's
selection holds.
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
import sentencepiece as spm
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.paired_stats import auc  # noqa: E402
from benchmarks.selection_quality import (  # noqa: E402
    agent_config,
    agent_pool,
    benchmark_data,
    eval_pool,
)
from policies import baselines as bl  # noqa: E402
from policies import reinforce  # noqa: E402
from policies.reward import ProxyLearner  # noqa: E402
from policies.scorer import PolicyScorer  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--corpora", default="../shared/corpora")
    ap.add_argument("--budget", type=int, default=60_000)
    ap.add_argument("--set", dest="overrides", action="append", default=[])
    ap.add_argument("--dedup", action=argparse.BooleanOptionalAction, default=True,
                    help="near-duplicate removal first, as selection_quality.py does")
    args = ap.parse_args()
    torch.set_num_threads(1)
    sources, reference, tokenizer = benchmark_data(args.corpora)
    sp = spm.SentencePieceProcessor(model_proto=tokenizer)
    out = Path(tempfile.mkdtemp(prefix="agent-diag-")) / "agent.safetensors"
    cfg = agent_config(args.corpora, str(out), args.overrides)
    t0 = time.time()
    summary = reinforce.main(cfg, agent_pool(sources, args.dedup), tokenizer)
    print(f"agent: {time.time() - t0:.0f} s, best greedy return "
          f"{summary['best_eval_return']:.2f}, overrides {args.overrides}")
    agent = PolicyScorer(cfg.output)
    ref = pa.array(reference, pa.string())
    for noise in (0.25, 0.5):
        pool, docs, held = eval_pool(sources, sp, noise, 600, args.dedup)
        n_tok = np.array([len(d) for d in docs])
        scores = {
            "agent": agent.score_texts(pool.texts)[0].astype(np.float64),
            "DSIR": bl.dsir_scores(pool.texts, ref),
            "n-gram classifier": bl.ngram_classifier_scores(pool.texts, ref),
            "heuristic rules": bl.heuristic_scores(pool.texts),
            bl.CLEAN_FIRST: bl.clean_first_scores(pool.is_junk, 0),
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
