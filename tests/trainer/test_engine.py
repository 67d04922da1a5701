"""Engine contracts: steps never wait for the device, gradient accumulation is exact, DDP with
accumulation and an indexer that gets no gradient, fp16 refused without CUDA."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
import torch
from tiny_data import tiny_config

from curator.trainer.config import TrainConfig
from curator.trainer.data import TokenStream, load_corpus
from curator.trainer.engine import (
    build_model,
    build_optimizer,
    step_floats,
    train_steps,
)
from curator.trainer.fit import fit_stream, step_batch
from curator.trainer.train import train
from curator.trainer.wrap import data_parallel, needs_find_unused

SYNCS = ("item", "tolist", "__float__", "__int__", "__bool__")


@contextmanager
def count_host_syncs() -> Iterator[dict[str, int]]:
    """Count Python-level tensor -> host reads (item, tolist, float(), int(), bool()).

    Reads from inside torch.optim are not counted: AdamW's step counters are CPU tensors by
    design (also on CUDA), so reading them never waits for the device."""
    counts = dict.fromkeys(SYNCS, 0)
    saved = {name: getattr(torch.Tensor, name) for name in SYNCS}

    def counting(name: str):  # noqa: ANN202
        def read(self: torch.Tensor, *args: object):  # noqa: ANN202
            if "torch/optim/" not in sys._getframe(1).f_code.co_filename:
                counts[name] += 1
            return saved[name](self, *args)

        return read

    for name in SYNCS:
        setattr(torch.Tensor, name, counting(name))
    try:
        yield counts
    finally:
        for name, fn in saved.items():
            setattr(torch.Tensor, name, fn)


def test_steps_never_read_the_device(run_dir: Path, tmp_path: Path) -> None:
    """Dense and sparse steps with accumulation: no tensor is read on the host until the
    caller reads the stats, and then all steps' losses come in one transfer."""
    cfg = TrainConfig.model_validate(tiny_config(run_dir, tmp_path, grad_accum=2))
    corpus = load_corpus(run_dir)
    model = build_model(cfg, corpus.vocab_size)
    opt = build_optimizer(model, cfg.optim)
    stream = TokenStream(corpus.tokens, 128)
    batches = [step_batch(stream, i, cfg, torch.device("cpu")) for i in range(5)]
    with count_host_syncs() as counts:
        stats = train_steps(model, opt, batches, cfg, total_steps=5)  # steps 0-2 dense
    assert counts == dict.fromkeys(SYNCS, 0)
    with count_host_syncs() as counts:
        losses = step_floats(stats)
    assert counts["tolist"] == 1 and sum(counts.values()) == 1
    assert losses == [s.loss for s in stats] and all(np.isfinite(losses))
    assert stats[4].floats()["indexer_loss"] == stats[4].indexer_loss >= 0
    assert stats[0].tokens == 2 * 4 * 128 and stats[4].lr == opt.param_groups[0]["lr"]


def test_train_loop_reads_the_device_only_at_log_steps(run_dir: Path, tmp_path: Path) -> None:
    lines: list[dict] = []
    raw = tiny_config(run_dir, tmp_path, log_interval=4)
    raw["data"]["heldout_frac"] = 0.0  # no held-out documents: no evals (they read the device)
    cfg = TrainConfig.model_validate(raw)
    with count_host_syncs() as counts:
        summary = train(cfg, report=lines.append)
    assert [r["step"] for r in lines] == [0, 4, 7]
    assert counts == {**dict.fromkeys(SYNCS, 0), "tolist": 3}  # one transfer per log line
    assert sorted(summary["losses"]) == list(range(8))
    assert all(isinstance(v, float) for v in summary["losses"].values())
    assert lines[1]["loss"] == summary["losses"][4]


def test_gradient_accumulation_equals_one_big_batch(run_dir: Path, tmp_path: Path) -> None:
    """batch 4 x accumulation 2 and batch 8 x 1 read the same rows per step and average the
    same per-token losses: the same losses, grad norms and weights after several AdamW steps
    (fp32, dense model).

    AdamW's eps is raised from 1e-8 to 1e-5 here: an update is lr * m / (sqrt(v) + eps), so a
    parameter whose gradient is ~1e-10 (float rounding of a sum taken in another order) moves
    by up to lr * 1e-10 / eps; at eps=1e-8 that is ~3e-5 after one step for a 1e-10 rounding
    difference. At 1e-5 the same rounding stays below 1e-6 while every real gradient
    (>= ~1e-4) is still normalized by Adam."""
    corpus = load_corpus(run_dir)
    stream = TokenStream(corpus.tokens, 64, order="shuffled", seed=1)
    runs = []
    for batch_size, accum in ((4, 2), (8, 1)):
        cfg = TrainConfig.model_validate(
            tiny_config(run_dir, tmp_path, batch_size=batch_size, grad_accum=accum,
                        model={"seq_len": 64}, dsa={"enabled": False},
                        optim={"lr": 3e-3, "warmup_frac": 0.1, "eps": 1e-5})
        )
        model = build_model(cfg, corpus.vocab_size)
        opt = build_optimizer(model, cfg.optim)
        stats = fit_stream(model, opt, stream, cfg, range(6), total_steps=6)
        runs.append((model.state_dict(), step_floats(stats), step_floats(stats, "grad_norm")))
    (small, small_loss, small_norm), (big, big_loss, big_norm) = runs
    np.testing.assert_allclose(small_loss, big_loss, rtol=1e-6)
    np.testing.assert_allclose(small_norm, big_norm, rtol=1e-5)
    for name in small:
        torch.testing.assert_close(small[name], big[name], rtol=1e-5, atol=1e-6, msg=name)


def test_ddp_accumulates_once_per_step_and_tolerates_a_gradless_indexer(
    run_dir: Path, tmp_path: Path
) -> None:
    """A one-process gloo group: DDP with accumulation (no_sync but the last micro-batch)
    trains exactly as the bare model. seq_len < 2 blocks: dense steps give the indexer no
    gradient, which DDP must be told (find_unused_parameters), or its second step fails."""
    import torch.distributed as dist

    cfg = TrainConfig.model_validate(
        tiny_config(run_dir, tmp_path, grad_accum=2, model={"seq_len": 24},
                    dsa={"block_size": 16, "dense_warmup_steps": 2})
    )
    assert needs_find_unused(cfg)
    assert not needs_find_unused(TrainConfig.model_validate(tiny_config(run_dir, tmp_path)))
    corpus = load_corpus(run_dir)
    stream = TokenStream(corpus.tokens, 24)
    dist.init_process_group(
        "gloo", store=dist.FileStore(str(tmp_path / "store"), 1), rank=0, world_size=1
    )
    try:
        plain = build_model(cfg, corpus.vocab_size)
        fit_stream(plain, build_optimizer(plain, cfg.optim), stream, cfg, range(4), total_steps=4)
        model = build_model(cfg, corpus.vocab_size)
        opt = build_optimizer(model, cfg.optim)
        fit_stream(data_parallel(model, cfg, torch.device("cpu")), opt, stream, cfg, range(4),
                   total_steps=4)  # steps 0-1 dense (indexer unused), 2-3 sparse
        for (name, a), b in zip(plain.state_dict().items(), model.state_dict().values(),
                                strict=True):
            torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-7, msg=name)
        # what find_unused_parameters prevents
        strict = torch.nn.parallel.DistributedDataParallel(build_model(cfg, corpus.vocab_size))
        with pytest.raises(RuntimeError, match="find_unused_parameters"):
            fit_stream(strict, build_optimizer(strict.module, cfg.optim), stream, cfg, range(2),
                       total_steps=4)
    finally:
        dist.destroy_process_group()


@pytest.mark.skipif(torch.cuda.is_available(), reason="fp16 is allowed where CUDA is")
def test_fp16_without_cuda_is_refused_before_any_work(run_dir: Path, tmp_path: Path) -> None:
    from curator.trainer.ray_train import train_distributed

    cfg = TrainConfig.model_validate(tiny_config(run_dir, tmp_path, precision="fp16",
                                                 device="auto"))
    with pytest.raises(ValueError, match=r"precision=fp16 .* set precision=bf16 or precision=fp32"):
        train(cfg)
    assert not any(tmp_path.iterdir())  # not even the token cache was written
    with pytest.raises(ValueError, match="precision=fp16"):
        build_model(cfg, 512)
    # Ray Train workers on CPU: refused before a cluster is started or joined
    with pytest.raises(ValueError, match="precision=bf16 or precision=fp32, or use_gpu=true"):
        train_distributed(cfg.model_copy(update={"workers": 2}))
