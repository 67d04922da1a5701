"""The loop's model-aware ranking signal: how much of a document the arm's own model explains.

    context_gain(doc) = loss(doc | unigram model of the validation text)
                        - loss(doc | the arm's current checkpoint)          (nats per token)

The first term is what target statistics alone predict (no context, no training on the pool);
the second is what the model the loop is training predicts now. Their difference is large for
text whose structure the model has learned to use (coherent language like the target's) and
small or negative for text it cannot (other languages, page chrome, spam, character soup): the
tokens are rarer under the target's unigram statistics *and* the model's context does not help.
The gain is measured against what the model has learned: a model trained on some junk also
predicts that junk's tokens better than the target's unigram statistics do. In the loop the
model is the arm's own, trained on its (mostly clean) selection, so that is the text it favours.
Only the loop has this signal: it needs the arm's own checkpoint, and it sharpens as that model
trains. RHO-LOSS (Mindermann et al., 2022) ranks by the same two kinds of loss the other way
around (learnable but not yet learned); here the aim is the opposite margin: keep out what the
model cannot learn from when the clean supply runs short.

The loop ranks by `z(policy logit) + w * u(context_gain)` over the documents an arm has left,
where u is the gain's rank scaled to unit variance (bounded by +-sqrt(3)). Ranks, not z-scores:
the gain is heavy-tailed exactly where it misleads. Once an arm has trained on a few long
off-language or spam pages, its model predicts their kin far better than the English target's
unigrams do (gains of 2 nats against 0.1 for clean text), and a z-score of 8 outvoted the policy:
one measured round (seed 1, round 3 of the 131K-token loop, stop 10) selected 82% junk that way.
`w` is part of the loop policy (`SIGNAL_KEY` in its config), 0 for the round-0 policy, and the
loop update picks it by trial rounds (curator/loop/update.py), where w=0 is always a choice.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from curator.trainer.model import GPT

SIGNAL_KEY = "loop_signal_weight"


def unigram_logprob(tokens: np.ndarray, vocab_size: int) -> np.ndarray:
    """Log-probability of every token id under add-one smoothed unigram counts of `tokens`."""
    counts = np.bincount(np.asarray(tokens, np.int64), minlength=vocab_size)[:vocab_size] + 1.0
    return np.log(counts / counts.sum())


def context_gain(
    model: GPT, docs: Sequence[np.ndarray], validation: np.ndarray, vocab_size: int
) -> np.ndarray:
    """Per-document unigram (validation) loss minus loss under `model`, over the tokens the
    model predicts (all but each document's first); 0 for documents with fewer than 2 tokens."""
    from curator.trainer.engine import per_document_loss

    logp = unigram_logprob(validation, vocab_size)
    lengths = np.fromiter((len(d) for d in docs), np.int64, count=len(docs))
    predicted = np.maximum(lengths - 1, 0)
    flat = np.concatenate(docs).astype(np.int64) if len(docs) else np.zeros(0, np.int64)
    owner = np.repeat(np.arange(len(docs)), lengths)
    targets = np.ones(len(flat), bool)  # every token but a document's first is predicted
    targets[(np.cumsum(lengths) - lengths)[lengths > 0]] = False
    unigram = np.bincount(owner[targets], -logp[flat[targets]], minlength=len(docs)) / \
        np.maximum(predicted, 1)
    model_loss = per_document_loss(model, docs, batch_size=32)
    gain = unigram - model_loss
    return np.where(predicted > 0, np.nan_to_num(gain), 0.0)


def zscore(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, np.float64)
    return (x - x.mean()) / max(float(x.std()), 1e-12) if len(x) else x


def rank_scale(x: np.ndarray) -> np.ndarray:
    """Ranks of `x` (ties by position) centred and scaled to unit variance: a z-score whose
    largest value is sqrt(3), however far the largest `x` lies from the rest."""
    x = np.asarray(x, np.float64)
    n = len(x)
    if n < 2:
        return np.zeros(n)
    ranks = np.empty(n)
    ranks[np.argsort(x, kind="stable")] = np.arange(n)
    return (ranks - (n - 1) / 2) / np.sqrt((n * n - 1) / 12)


def loop_ranking(policy_scores: np.ndarray, gain: np.ndarray | None, weight: float) -> np.ndarray:
    """The loop arm's ranking of the documents it has left: the policy's keep logits, plus
    `weight` times the context gain, the logits z-scored and the gain rank-scaled over those
    documents (so `weight` means the same whatever the scales, and no outlier of the gain
    outvotes the policy); the policy's logits alone when the weight is 0."""
    if weight == 0 or gain is None:
        return np.asarray(policy_scores, np.float64)
    return zscore(policy_scores) + weight * rank_scale(gain)


def policy_signal_weight(policy_path: str) -> float:
    """The context-gain weight a loop policy file carries (0 for the round-0 policy)."""
    from policies.checkpoint import load_policy

    return float(load_policy(policy_path).config.get(SIGNAL_KEY, 0.0))
