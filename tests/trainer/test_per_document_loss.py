"""per_document_loss: equals a direct per-document computation, any batch size, long docs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tiny_data import tiny_config

from curator.trainer.config import TrainConfig
from curator.trainer.data import load_corpus
from curator.trainer.engine import build_model, per_document_loss


def direct_loss(model: torch.nn.Module, doc: np.ndarray, T: int) -> float:
    """One document alone, window by window (the definition, no batching or padding)."""
    total, n = 0.0, 0
    for start in range(0, len(doc) - 1, T):
        w = torch.from_numpy(doc[start : start + T + 1].astype(np.int64))[None]
        logits = model(w[:, :-1]).logits
        total += F.cross_entropy(logits[0], w[0, 1:], reduction="sum").item()
        n += w.shape[1] - 1
    return total / n


def test_per_document_loss_matches_direct(run_dir: Path, tmp_path: Path) -> None:
    cfg = TrainConfig.model_validate(tiny_config(run_dir, tmp_path, model={"seq_len": 64}))
    corpus = load_corpus(run_dir)
    model = build_model(cfg, corpus.vocab_size).eval()
    docs = corpus.docs()[:12]
    docs += [np.concatenate(corpus.docs()[20:30]), np.array([5], np.uint16)]  # long (>T), 1-tok
    assert max(len(d) for d in docs) > 3 * 64
    got = per_document_loss(model, docs, batch_size=5)
    with torch.no_grad():
        want = [direct_loss(model, d, 64) for d in docs[:-1]]
    np.testing.assert_allclose(got[:-1], want, rtol=1e-4)
    assert np.isnan(got[-1])
    np.testing.assert_allclose(per_document_loss(model, docs, batch_size=64), got, rtol=1e-5)
    assert model.training is False and len(got) == len(docs)
