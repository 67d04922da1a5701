"""A torch.compile'd model keeps its shapes: after one warm-up of each mode (train step,
evaluate, per-document loss; dense and sparse attention for a DSA model), nothing recompiles,
whatever the documents' lengths. The model compiles with dynamic=False, so any new shape
would be a recompile (with automatic dynamic shapes a second shape seen during warm-up would
quietly turn the graph dynamic and hide later ones)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch._dynamo
from tiny_data import tiny_config

from curator.trainer.config import TrainConfig
from curator.trainer.data import TokenStream, load_corpus, split
from curator.trainer.engine import (
    build_model,
    build_optimizer,
    evaluate,
    per_document_loss,
    scheduled_step,
)
from curator.trainer.fit import step_batch
from curator.trainer.wrap import wrap_model


# measured cold (empty inductor cache, 2 shared cores): dense ~40 s, DSA ~90 s; warm ~10 s
@pytest.mark.slow
@pytest.mark.parametrize("dsa", [False, True], ids=["dense", "dsa"])
def test_compiled_model_never_recompiles_after_warm_up(
    run_dir: Path, tmp_path: Path, dsa: bool
) -> None:
    cfg = TrainConfig.model_validate(
        tiny_config(run_dir, tmp_path, compile=True, model={"seq_len": 64},
                    dsa={"enabled": dsa, "block_size": 16, "dense_warmup_steps": 2 if dsa else 0})
    )
    modes = [True, False] if dsa else [False]  # dense= of each attention mode the run uses
    corpus = load_corpus(run_dir)
    train_docs, held_docs = split(corpus, 0.2)
    stream = TokenStream(train_docs.runs(), 64, order="shuffled")
    held = TokenStream(held_docs.runs(), 64)
    docs = corpus.docs()
    model = build_model(cfg, corpus.vocab_size)
    eager = build_model(cfg, corpus.vocab_size).eval()
    opt = build_optimizer(model, cfg.optim)
    run = wrap_model(model, cfg, torch.device("cpu"))
    assert run.train is run.eval and hasattr(run.train, "_orig_mod")

    def step(i: int) -> float:
        micro = step_batch(stream, i, cfg, torch.device("cpu"))
        return scheduled_step(run.train, opt, micro, cfg, i, 10).loss

    def doc_losses(batch: list[np.ndarray], dense: bool) -> np.ndarray:
        """Compiled (padded to (4, seq_len)) and eager (cropped) agree."""
        eager.load_state_dict(model.state_dict())
        got = per_document_loss(run.eval, batch, 4, dense=dense)
        np.testing.assert_allclose(got, per_document_loss(eager, batch, 4, dense=dense),
                                   rtol=1e-4)
        return got

    torch._dynamo.reset()
    try:
        # warm-up, once per mode: steps 0 (dense warm-up) and 2 (sparse) for DSA; short,
        # long and longer-than-seq_len documents with a partial last batch
        for i in (0, 2) if dsa else (0,):
            step(i)
        for dense in modes:
            evaluate(run.eval, held, cfg.batch_size, 2, dense=dense)
            doc_losses(docs[:7] + [np.concatenate(docs[7:12])], dense)
        with torch._dynamo.config.patch(error_on_recompile=True):
            for i in (1, 3, 4):
                assert np.isfinite(step(i))
            other = docs[20:23] + [docs[30][:3], np.concatenate(docs[40:60]), docs[61][:2]]
            assert len({len(d) for d in other}) == len(other)
            for dense in modes:
                assert np.isfinite(evaluate(run.eval, held, cfg.batch_size, 3, dense=dense))
                assert np.isfinite(doc_losses(other, dense)).all()
    finally:
        torch._dynamo.reset()
