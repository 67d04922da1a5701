"""Target-aware features: how much a document resembles the target text.

The environment rewards a selection by the loss on its clean held-out text, so that text *is*
the target distribution. Two cheap estimators of "looks like the target" become observation
columns (the RL agent learns how far to trust them next to the rule signals):
- `target_classifier`: the logit of a hashed word-n-gram logistic regression, target text =
  positive, pool = negative (DCLM's fastText quality classifier, in spirit);
- `target_dsir`: DSIR's importance weight, mean per-n-gram log ratio of the target's and the
  pool's smoothed hashed n-gram distributions (Xie et al. 2023).
Both are fitted once when the policy is trained and saved in its checkpoint, so scoring needs
no target text. The same fitting functions serve the classifier and DSIR baselines.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import torch

from policies.ngrams import NgramKeys, ngram_counts

TARGET_COLUMNS = ["target_classifier", "target_dsir"]


def tfidf_rows(counts: np.ndarray) -> np.ndarray:
    """log1p counts, L2-normalized per row (float32)."""
    x = np.log1p(np.abs(counts))
    norm = np.linalg.norm(x, axis=1, keepdims=True)
    return (x / np.where(norm > 0, norm, 1.0)).astype(np.float32)


def fit_classifier(
    pos: np.ndarray, neg: np.ndarray, steps: int = 300, seed: int = 0,
    weight_decay: float = 1e-4,
) -> tuple[np.ndarray, float]:
    """Class-balanced L2 logistic regression (Adam, full batch): (weight, bias)."""
    x = torch.from_numpy(np.concatenate([pos, neg]))
    y = torch.cat([torch.ones(len(pos)), torch.zeros(len(neg))])
    # class balance: the pool is much larger than the target set
    w = torch.where(y > 0, len(y) / (2 * max(len(pos), 1)), len(y) / (2 * max(len(neg), 1)))
    torch.manual_seed(seed)
    lin = torch.nn.Linear(x.shape[1], 1)
    opt = torch.optim.Adam(lin.parameters(), lr=0.05, weight_decay=weight_decay)
    for _ in range(steps):
        loss = torch.nn.functional.binary_cross_entropy_with_logits(lin(x).squeeze(-1), y, weight=w)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return lin.weight.detach().numpy()[0].astype(np.float32), float(lin.bias.item())


def dsir_logratio(
    pool_counts: np.ndarray, target_counts: np.ndarray, alpha: float = 1.0
) -> np.ndarray:
    """log p_target - log p_pool per hashed n-gram (add-alpha smoothed), from summed counts."""
    dim = len(pool_counts)
    log_pt = np.log((target_counts + alpha) / (target_counts.sum() + alpha * dim))
    log_pr = np.log((pool_counts + alpha) / (pool_counts.sum() + alpha * dim))
    return (log_pt - log_pr).astype(np.float32)


def dsir_weights(counts: np.ndarray, logratio: np.ndarray) -> np.ndarray:
    """Mean log ratio over each document's n-grams (0 for a document without words)."""
    n = counts.sum(axis=1)
    # row by row, as TargetModel's logit: the same document, the same weight in any batch
    total = np.einsum("ij,j->i", counts, logratio.astype(np.float64))
    return total / np.where(n > 0, n, 1.0)


@dataclass(frozen=True)
class TargetModel:
    clf_weight: np.ndarray  # (dim,) float32
    clf_bias: float
    dsir: np.ndarray  # (dim,) float32 log ratios

    @property
    def dim(self) -> int:
        return len(self.clf_weight)

    @classmethod
    def fit(
        cls, pool_texts: pa.Array, target_texts: pa.Array, dim: int = 4096, seed: int = 0
    ) -> TargetModel:
        if len(target_texts) == 0:
            raise ValueError("the target-aware features need target text (the held-out split)")
        pool, target = ngram_counts(pool_texts, dim), ngram_counts(target_texts, dim)
        w, b = fit_classifier(tfidf_rows(target), tfidf_rows(pool), seed=seed)
        return cls(w, b, dsir_logratio(pool.sum(axis=0), target.sum(axis=0)))

    def __call__(self, texts: pa.Array, keys: NgramKeys | None = None) -> np.ndarray:
        """(n, 2) float64: classifier logit, DSIR weight; `keys`: see ngrams.ngram_counts."""
        counts = ngram_counts(texts, self.dim, keys=keys)
        # row by row (einsum, float64): a BLAS matrix-vector product may round a row
        # differently with other rows beside it, and one document must get one feature
        # vector whatever batch it is scored in
        logit = np.einsum("ij,j->i", tfidf_rows(counts).astype(np.float64),
                          self.clf_weight.astype(np.float64)) + self.clf_bias
        return np.stack([logit.astype(np.float64), dsir_weights(counts, self.dsir)], axis=1)

    def tensors(self) -> dict[str, torch.Tensor]:
        return {
            "target.clf_weight": torch.from_numpy(np.ascontiguousarray(self.clf_weight)),
            "target.clf_bias": torch.tensor([self.clf_bias], dtype=torch.float32),
            "target.dsir": torch.from_numpy(np.ascontiguousarray(self.dsir)),
        }

    @classmethod
    def from_tensors(cls, tensors: dict[str, torch.Tensor]) -> TargetModel | None:
        if "target.clf_weight" not in tensors:
            return None
        return cls(
            tensors["target.clf_weight"].numpy(),
            float(tensors["target.clf_bias"][0]),
            tensors["target.dsir"].numpy(),
        )
