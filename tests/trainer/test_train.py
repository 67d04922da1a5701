"""Training: AMP step, schedule, golden loss curve, resume equality, learning real text, the
progress line and the loss plot."""

from __future__ import annotations

import json
import math
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from tiny_data import tiny_config

from curator.trainer.config import OptimConfig, TrainConfig
from curator.trainer.data import TokenStream, load_corpus, split
from curator.trainer.engine import (
    build_model,
    build_optimizer,
    evaluate,
    lr_at,
    to_batch,
    train_step,
    train_steps,
)
from curator.trainer.train import clock, progress_line, train

GOLDEN = Path(__file__).parent / "golden_tiny_loss.json"


def test_bf16_autocast_step_keeps_fp32_params_and_finite_loss(
    run_dir: Path, tmp_path: Path
) -> None:
    cfg = TrainConfig.model_validate(tiny_config(run_dir, tmp_path, precision="bf16"))
    corpus = load_corpus(run_dir)
    model = build_model(cfg, corpus.vocab_size)
    opt = build_optimizer(model, cfg.optim)
    before = [p.detach().clone() for p in model.parameters()]
    batch = to_batch(TokenStream(corpus.tokens, 128).batch(0, 4), torch.device("cpu"))
    for dense in (True, False):
        stats = train_step(model, opt, [batch], lr=1e-3, dense=dense, precision="bf16")
        assert math.isfinite(stats.loss) and math.isfinite(stats.grad_norm)
    assert all(p.dtype == torch.float32 for p in model.parameters())
    assert all(
        v.dtype == torch.float32 for s in opt.state.values() for k, v in s.items() if k != "step"
    )
    assert all(not torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))


def test_lr_scale_multiplies_the_schedule_step_by_step(run_dir: Path, tmp_path: Path) -> None:
    """A loop trial's anneal: `lr_scale[i]` scales step i's LR; a zero scale leaves the weights
    as they were (AdamW's decay is scaled by the LR too)."""
    cfg = TrainConfig.model_validate(tiny_config(run_dir, tmp_path))
    corpus = load_corpus(run_dir)
    model = build_model(cfg, corpus.vocab_size)
    opt = build_optimizer(model, cfg.optim)
    batch = to_batch(TokenStream(corpus.tokens, 128).batch(0, 4), torch.device("cpu"))
    train_steps(model, opt, [[batch]], cfg, 100, start_step=20, lr_scale=[0.25])
    assert opt.param_groups[0]["lr"] == pytest.approx(0.25 * lr_at(20, 100, cfg.optim))
    before = [p.detach().clone() for p in model.parameters()]
    train_steps(model, opt, [[batch]], cfg, 100, start_step=21, lr_scale=[0.0])
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))


def test_lr_schedule_warms_up_and_fully_decays() -> None:
    cos = OptimConfig(lr=1.0, min_lr_ratio=0.1, warmup_frac=0.1)
    lrs = [lr_at(s, 100, cos) for s in range(100)]
    assert lrs[0] == pytest.approx(0.1) and lrs[9] == pytest.approx(1.0)
    assert lrs[-1] == pytest.approx(0.1) and all(np.diff(lrs[9:]) <= 1e-12)
    wsd = OptimConfig(lr=1.0, min_lr_ratio=0.0, warmup_frac=0.1, schedule="wsd", decay_frac=0.2)
    lrs = [lr_at(s, 100, wsd) for s in range(100)]
    assert lrs[10:80] == [1.0] * 70 and lrs[-1] == pytest.approx(0.0)


def test_golden_loss_curve(run_dir: Path, tmp_path: Path) -> None:
    """A fixed-seed tiny run must reproduce the stored curve (dense warm-up, then sparse)."""
    summary = train(TrainConfig.model_validate(tiny_config(run_dir, tmp_path)))
    losses = [summary["losses"][s] for s in sorted(summary["losses"])]
    if os.environ.get("UPDATE_GOLDEN"):
        GOLDEN.write_text(
            json.dumps({"losses": losses, "heldout": summary["heldout_loss"]}, indent=1) + "\n"
        )
    golden = json.loads(GOLDEN.read_text())
    np.testing.assert_allclose(losses, golden["losses"], rtol=2e-3)
    assert summary["heldout_loss"] == pytest.approx(golden["heldout"], rel=2e-3)
    assert losses[-1] < losses[0] - 0.2


def test_resume_gives_the_same_loss_curve(run_dir: Path, tmp_path: Path) -> None:
    full = train(
        TrainConfig.model_validate(
            tiny_config(run_dir, tmp_path / "a", checkpoint_interval=4, keep_checkpoints=5)
        )
    )
    # a run "killed" after step 4: only the step-4 checkpoint survives, then it resumes
    shutil.copytree(
        tmp_path / "a" / "checkpoints" / "step_00000004",
        tmp_path / "b" / "checkpoints" / "step_00000004",
    )
    resumed = train(TrainConfig.model_validate(tiny_config(run_dir, tmp_path / "b")))
    assert resumed["start_step"] == 4 and sorted(resumed["losses"]) == [4, 5, 6, 7]
    for step, loss in resumed["losses"].items():
        assert loss == pytest.approx(full["losses"][step], rel=1e-6, abs=1e-6)
    assert resumed["param_digest"] == full["param_digest"]


def test_tiny_model_learns_real_text_below_unigram_entropy(run_dir: Path, tmp_path: Path) -> None:
    cfg = TrainConfig.model_validate(
        tiny_config(
            run_dir,
            tmp_path,
            max_tokens=300 * 8 * 128,
            batch_size=8,
            eval_batches=8,
            eval_interval=1000,
            log_interval=1000,
            optim={"lr": 1e-2, "warmup_frac": 0.05},
            dsa={"dense_warmup_steps": 40},
        )
    )
    corpus = load_corpus(run_dir)
    train_docs, held_docs = split(corpus, cfg.data.heldout_frac)
    # unigram cross-entropy on held-out tokens: what a model without context could reach
    counts = np.bincount(train_docs.runs().copy(), minlength=corpus.vocab_size) + 1.0
    logp = np.log(counts / counts.sum())
    unigram = -logp[held_docs.runs().copy()].mean()
    summary = train(cfg)
    # measured: ~4.75 nats vs unigram ~5.64; 0.6 nats below is far beyond noise
    assert summary["heldout_loss"] < unigram - 0.6, (summary["heldout_loss"], unigram)


def test_evaluate_is_deterministic_and_mode_neutral(run_dir: Path, tmp_path: Path) -> None:
    cfg = TrainConfig.model_validate(tiny_config(run_dir, tmp_path))
    corpus = load_corpus(run_dir)
    model = build_model(cfg, corpus.vocab_size).train()
    stream = TokenStream(corpus.tokens, 128)
    a = evaluate(model, stream, 4, 2)
    assert model.training and a == evaluate(model, stream, 4, 2)
    assert a == pytest.approx(math.log(corpus.vocab_size), rel=0.05)  # untrained ~ uniform


def test_progress_line_has_val_only_when_evaluated() -> None:
    rec = {"step": 20, "loss": 5.72331, "heldout_loss": None, "indexer_kl": 0.28, "lr": 3e-3,
           "tokens_per_s": 13451.4, "eta_s": 754.6}
    assert progress_line(rec, 195) == (
        "step 20/195: train 5.7233, tok/s 13451, ETA 12:35 | lr 3.00e-03, indexer kl 0.2800"
    )
    rec["heldout_loss"] = 4.99571
    assert progress_line(rec, 195).startswith("step 20/195: train 5.7233, val 4.9957, tok/s")
    final = {"step": 195, "heldout_loss": 4.6433, "tokens_per_s": 15659.2, "eta_s": 0.0}
    assert progress_line(final, 195) == "step 195/195: val 4.6433, tok/s 15659, ETA 00:00"
    assert (clock(59.6), clock(3600 + 61)) == ("01:00", "1:01:01")


def test_training_writes_a_loss_plot(run_dir: Path, tmp_path: Path) -> None:
    from PIL import Image

    summary = train(TrainConfig.model_validate(tiny_config(run_dir, tmp_path, max_tokens=2048)))
    path = tmp_path / "loss.png"
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with Image.open(path) as img:
        img.verify()  # the whole file decodes, not just its header
        assert img.format == "PNG" and img.size[0] > 300 and img.size[1] > 150
    assert summary["steps"] == 4 and (tmp_path / "summary.json").exists()
