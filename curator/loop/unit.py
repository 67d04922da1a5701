"""One unit of the loop: an arm's round for one seed (score -> select -> stage -> export -> train
-> evaluate), written to `RUN/loop/units/round=R/arm=A/seed=S/` and marked done by
`result.json`, written last.

The unit is a pure function of (config, pool, the arm's previous checkpoint, the policy file,
the documents the arm already used), so re-running a killed unit reproduces it:
- stage: difficulty of each selected document (loss under the arm's current model, from round
  1 on; round 0 has no trained model and uses compression ratio), quantile stages, and the
  curriculum order of `curator.schedules.plan_order` (uniform for `loop_uniform`), with
  `on_exhausted=fill` so every selected token is used;
- export: the ordered selection as a flat token `.bin` + `.idx` (connectors/bin.py), the same
  format `curator export --format bin` writes, and `order.parquet` (doc_id, stage, phase,
  n_tokens, difficulty per exported document, in reading order);
- train: the bundled DSA model reads that export (`curator.trainer.data.load_corpus`) in order,
  `steps_per_round` optimizer steps from the previous round's checkpoint on one cosine schedule
  that spans the whole loop, held-out (test) loss `evals_per_round` times, checkpoint saved.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa

from connectors.fs import write_parquet_atomic, write_text_atomic
from curator.loop.config import LoopConfig
from curator.loop.pool import LoopPool
from curator.loop.select import arm_scores, select_round
from curator.loop.signal import loop_ranking, model_signal, policy_signal_weight
from curator.loop.signal_cache import load_signal, signal_cache_path

if TYPE_CHECKING:
    import torch

    from curator.trainer.config import TrainConfig
    from curator.trainer.data import TokenStream
    from curator.trainer.model import GPT
    from policies.reward import TrainerSpec

RESULT = "result.json"


def unit_dir(root: Path, rnd: int, arm: str, seed: int) -> Path:
    return root / "loop" / "units" / f"round={rnd}" / f"arm={arm}" / f"seed={seed}"


def trainer_spec(cfg: LoopConfig) -> TrainerSpec:
    """The model every arm trains; the env's learner in the loop update is the same."""
    from policies.reward import TrainerSpec

    return TrainerSpec(**cfg.model.model_dump(exclude={"evals_per_round"}))


def build_trainer(
    cfg: LoopConfig, vocab_size: int, seed: int, checkpoint: Path | None
) -> tuple[TrainConfig, GPT, torch.optim.AdamW]:
    """(train config, model, optimizer) of an arm, restored from `checkpoint` when given."""
    from curator.trainer.checkpoint import load_checkpoint
    from curator.trainer.engine import build_model, build_optimizer, resolve_device
    from policies.reward import tiny_train_config

    tcfg = tiny_train_config(trainer_spec(cfg), seed=seed)
    device = resolve_device(tcfg.device)
    model = build_model(tcfg, vocab_size, device)
    optimizer = build_optimizer(model, tcfg.optim, device)
    if checkpoint is not None:
        load_checkpoint(checkpoint, model, optimizer)
    return tcfg, model, optimizer


def latest(model_dir: Path | None) -> Path | None:
    if model_dir is None:
        return None
    from curator.trainer.checkpoint import latest_checkpoint

    found = latest_checkpoint(model_dir)
    if found is None:
        raise FileNotFoundError(f"no checkpoint under {model_dir}; delete its unit to redo it")
    return found


def round_windows(cfg: LoopConfig, tcfg: TrainConfig, tokens: np.ndarray) -> TokenStream:
    """One round's training windows over `tokens` in reading order (a short selection -- the
    arm ran out of fresh data -- repeats)."""
    from curator.trainer.fit import step_stream

    stream = step_stream(tokens, tcfg, cfg.steps_per_round, order="curriculum")
    if stream is None:  # every arm must train its round's tokens: nothing selected is a bug
        raise ValueError(f"round selection has {len(tokens)} tokens; nothing to train on")
    return stream


def train_range(
    cfg: LoopConfig,
    tcfg: TrainConfig,
    model: GPT,
    optimizer: torch.optim.AdamW,
    windows: TokenStream,
    rnd: int,
    lo: int,
    hi: int,
    lr_scale: np.ndarray | None = None,
) -> list[float]:
    """Train steps [lo, hi) of round `rnd` on `windows`, on the loop's one LR schedule
    (times `lr_scale`, one per step, when given); returns the training losses."""
    from curator.trainer.engine import step_floats
    from curator.trainer.fit import fit_stream

    stats = fit_stream(model, optimizer, windows, tcfg, range(lo, hi), total_steps=cfg.total_steps,
                       start_step=rnd * cfg.steps_per_round + lo, lr_scale=lr_scale)
    return step_floats(stats)  # one device-to-host transfer for the range, not one per step


def difficulty(cfg: LoopConfig, pool: LoopPool, chosen: np.ndarray, model) -> np.ndarray:
    from curator.stages.curriculum import compression_ratio
    from curator.trainer.engine import per_document_loss

    if cfg.difficulty == "length":
        return pool.n_tokens[chosen].astype(np.float64)
    if cfg.difficulty == "model_loss" and model is not None:
        return per_document_loss(model, pool.docs(chosen), batch_size=32)
    return compression_ratio(pool.texts.take(pa.array(chosen)))


def run_unit(
    cfg: LoopConfig,
    pool: LoopPool,
    arm: str,
    seed: int,
    rnd: int,
    policy_path: str | None,
    prev_model: Path | None,
    remaining: np.ndarray,
    out: Path,
    raw_features: np.ndarray | None = None,
) -> dict:
    """Run one unit and write its result; returns the result."""
    import torch

    from connectors.bin import write_bin
    from curator.schedules import load_schedule, plan_order
    from curator.stages.curriculum import quantile_stages
    from curator.trainer.checkpoint import save_checkpoint
    from curator.trainer.data import TokenStream, load_corpus
    from curator.trainer.engine import evaluate

    torch.set_num_threads(1)  # one unit per core; Ray runs units side by side
    if out.exists():
        shutil.rmtree(out)  # a half-written unit from a killed run: redo it whole
    out.mkdir(parents=True)
    seconds: dict[str, float] = {}
    t = time.perf_counter()

    def lap(name: str) -> None:
        nonlocal t
        now = time.perf_counter()
        seconds[name] = seconds.get(name, 0.0) + now - t
        t = now

    # 1. score the arm's remaining documents and take the best up to the round's budget; a
    # loop policy may add the model signal under the arm's current model (curator/loop/signal)
    checkpoint = latest(prev_model)
    tcfg, model, optimizer = build_trainer(cfg, pool.vocab_size, seed, checkpoint)
    scores = np.full(len(pool), np.nan)
    idx = np.flatnonzero(remaining)
    feats = raw_features[idx] if raw_features is not None else None
    own = arm_scores(arm, pool.texts.take(pa.array(idx)), policy_path, seed, rnd, feats)
    signal_cached = None
    if policy_path is not None and checkpoint is not None:
        weight = policy_signal_weight(policy_path)
        gain = None
        if weight:
            # loop_uniform is the curriculum ablation of the loop arm: it must select what the
            # loop arm selects, so its signal comes from the loop arm's model, not its own
            # (trained in another order, it would rank the margin differently).
            signal_checkpoint, signal_model = checkpoint, model
            if arm == "loop_uniform":
                signal_checkpoint = latest(unit_dir(Path(cfg.output), rnd - 1, "loop", seed)
                                           / "model")
                signal_model = build_trainer(cfg, pool.vocab_size, seed, signal_checkpoint)[1]
            # the update that wrote this policy computed it already when it is the same model
            gain = load_signal(signal_cache_path(policy_path), cfg.update.signal, idx,
                               signal_checkpoint)
            signal_cached = gain is not None
            if gain is None:
                gain = model_signal(cfg.update.signal, signal_model, pool.docs(idx),
                                    pool.validation, pool.word_start)
        own = loop_ranking(own, gain, weight)
    scores[idx] = own
    chosen = select_round(scores, pool.n_tokens, remaining, cfg.round_tokens)
    lap("score")

    # 2. stage by difficulty under the arm's current model and order by the schedule
    diff = difficulty(cfg, pool, chosen, model if prev_model is not None else None)
    stage, cuts = quantile_stages(diff, cfg.n_stages)
    schedule = load_schedule("uniform" if arm == "loop_uniform" else cfg.schedule, cfg.n_stages)
    n_tok = pool.n_tokens[chosen]
    plan = plan_order(
        stage, n_tok, schedule, cfg.n_stages, seed=seed * 1000 + rnd, on_exhausted="fill"
    )
    ordered = chosen[plan.order]
    lap("stage")

    # 3. export the ordered selection as .bin/.idx; the trainer reads it back
    export = out / "export"
    rows = pa.array(ordered, pa.int64())
    write_bin(export, pool.tokens.take(rows), pool.vocab_size, pool.eos_id, pool.doc_ids.take(rows))
    # the curriculum facts of the export, row for row (what the report and tests check)
    write_parquet_atomic(
        pa.table(
            {
                "doc_id": pool.doc_ids.take(rows),
                "stage": pa.array(stage[plan.order], pa.int32()),
                "phase": pa.array(plan.phase[plan.order], pa.int32()),
                "n_tokens": pa.array(n_tok[plan.order], pa.int64()),
                "difficulty": pa.array(diff[plan.order], pa.float64()),
            }
        ),
        out / "order.parquet",
    )
    corpus = load_corpus(export)
    lap("export")

    # 4. train steps_per_round steps in curriculum order; evaluate the test split along the way
    per_step = tcfg.tokens_per_step()
    windows = round_windows(cfg, tcfg, corpus.tokens)
    heldout = TokenStream(pool.test, tcfg.model.seq_len)
    eval_batch = 2 * tcfg.batch_size
    curve: list[tuple[int, float]] = []
    first = rnd * cfg.steps_per_round
    if rnd == 0:
        curve.append((0, float(evaluate(model, heldout, eval_batch, cfg.model.eval_batches))))
    cuts_at = np.linspace(0, cfg.steps_per_round, cfg.model.evals_per_round + 1).round()
    losses: list[float] = []
    for lo, hi in zip(cuts_at[:-1].astype(int), cuts_at[1:].astype(int), strict=True):
        losses += train_range(cfg, tcfg, model, optimizer, windows, rnd, lo, hi)
        lap("train")
        loss = evaluate(model, heldout, eval_batch, cfg.model.eval_batches)
        curve.append((int((first + hi) * per_step), float(loss)))
        lap("eval")
    save_checkpoint(out / "model", first + cfg.steps_per_round, model, optimizer, keep=1)
    lap("train")

    is_junk = pool.is_junk
    junk = is_junk[chosen] if is_junk is not None else None
    result = {
        "arm": arm,
        "seed": seed,
        "round": rnd,
        "policy": policy_path,
        "selected": chosen.tolist(),
        "docs": int(len(chosen)),
        "tokens_selected": int(n_tok.sum()),
        "tokens_trained": int(cfg.steps_per_round * per_step),
        # None on a natural pool: nothing is labelled junk there
        "junk_share_tokens": (None if junk is None
                              else float(n_tok[junk].sum() / max(1, n_tok.sum()))),
        "junk_docs": None if junk is None else int(junk.sum()),
        "signal_cached": signal_cached,  # None: no model signal in this unit's ranking
        "curve": curve,
        "train_loss_mean": float(np.mean(losses)) if losses else float("nan"),
        "stage_cuts": [float(c) for c in cuts],
        "plan": plan.summary(n_tok, stage),
        "seconds": seconds,
    }
    write_text_atomic(json.dumps(result), out / RESULT)  # last: the unit is done
    return result
