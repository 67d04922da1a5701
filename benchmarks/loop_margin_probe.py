"""Can a model-aware re-ranking at the loop's margin beat the static agent? A probe on a loop run.

    .venv/bin/python -m benchmarks.loop_margin_probe --run /tmp/loop-corpora3 \
        --corpora ../shared/corpora

The closed loop can only beat the static agent by choosing, from what an arm has left, other
documents than the round-0 ranking would. This probe asks whether any signal the loop has about
its own model picks better ones, without the noise of a policy update in between: for every seed
and round r < rounds-1 of the `static` arm of a finished `curator loop` run (default the
closed_loop benchmark's), it takes that arm's checkpoint after round r and its remaining
documents, the static policy's best-ranked of them holding `update.candidate_rounds` rounds'
tokens (the loop update's candidates), and re-ranks those candidates by:
- `static`: the round-0 policy's own ranking (the control);
- `influence(val)`: cosine between each document's loss gradient under the checkpoint and the
  gradient of the validation half of the held-out text (first-order validation-loss gain of a
  step on the document; LESS / TracIn style) -- what the loop's rewards measure;
- `influence(val)+static`: z-scores of both, added;
- `influence(300 clean)`: the same toward 300 further clean documents of the corpora that are
  neither in the pool nor held out (with --corpora): is a larger validation set the fix?
- `loss high` / `loss low`: the document's mean loss under the checkpoint (RHO-LOSS-like
  "not yet learned" vs "easy").
Each selection (`select_round`, one round's tokens) then trains the checkpoint one round
(curator/loop/trial.py, the trial round's rule) and the test half of the held-out text judges,
paired per (seed, round) against `static`. Writes benchmarks/results/loop_margin_probe.md.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from curator.loop.config import load_loop_config  # noqa: E402
from curator.loop.driver import remaining_after  # noqa: E402
from curator.loop.pool import LoopPool, load_loop_pool, pool_dir  # noqa: E402
from curator.loop.select import arm_scores, select_round  # noqa: E402
from curator.loop.signal import zscore  # noqa: E402
from curator.loop.trial import trial_model  # noqa: E402
from curator.loop.unit import build_trainer, latest, unit_dir  # noqa: E402
from curator.loop.update import update_candidates  # noqa: E402
from curator.rundir import RunDir  # noqa: E402

RESULTS = Path(__file__).parent / "results" / "loop_margin_probe.md"


def flat_gradient(model):
    """All parameters' gradients as one vector (zeros where a parameter got none, e.g. the
    sparse-attention indexer on a sequence its local window covers)."""
    import torch

    return torch.cat([(p.grad if p.grad is not None else torch.zeros_like(p)).reshape(-1)
                      for p in model.parameters()])


def document_gradients(model, docs: list[np.ndarray], seq_len: int):
    """One flattened loss gradient per document (its full seq_len windows as one batch)."""
    import torch

    from curator.trainer.engine import to_batch
    from curator.trainer.fit import model_device

    grads = []
    model.train()
    size = sum(p.numel() for p in model.parameters())
    for d in docs:
        if len(d) < 2:  # nothing to predict: no influence either way
            grads.append(torch.zeros(size, device=model_device(model)))
            continue
        n = max(1, (len(d) - 1) // seq_len)
        width = min(seq_len, len(d) - 1)
        x = np.stack([d[i * width : (i + 1) * width] for i in range(n)]).astype(np.int64)
        y = np.stack([d[i * width + 1 : (i + 1) * width + 1] for i in range(n)]).astype(np.int64)
        model.zero_grad()
        model(*to_batch((x, y), model_device(model))).loss.backward()
        grads.append(flat_gradient(model))
    return torch.stack(grads)


def stream_gradient(model, tokens: np.ndarray, seq_len: int, batch_size: int, batches: int):
    """Mean loss gradient over the first `batches` batches of a held-out token stream."""

    from curator.trainer.data import TokenStream
    from curator.trainer.engine import to_batch
    from curator.trainer.fit import model_device

    stream = TokenStream(tokens, seq_len)
    n = min(batches, -(-stream.n_windows // batch_size))
    model.zero_grad()
    for i in range(n):
        x, y = to_batch(stream.batch(i, batch_size), model_device(model))
        (model(x, y).loss / n).backward()
    return flat_gradient(model)


def cosine_influence(doc_grads, target) -> np.ndarray:
    dot = (doc_grads @ target).cpu().numpy()
    return dot / (doc_grads.norm(dim=1).cpu().numpy() * float(target.norm()) + 1e-12)


def extra_clean_stream(run: RunDir, corpora: str, n_docs: int, seed: int = 7) -> np.ndarray:
    """Token stream of `n_docs` clean corpora documents that are neither in the pool nor held
    out, under the run's tokenizer."""
    import sentencepiece as spm

    from policies.pool import corpora_sources

    used = {json.loads(line)["text"] for line in open(pool_dir(run) / "pool.jsonl")}
    used |= set(json.loads((pool_dir(run) / "heldout.json").read_text()))
    extra = [t for t in corpora_sources(corpora).clean if t not in used]
    pick = np.random.default_rng(seed).permutation(len(extra))[:n_docs]
    sp = spm.SentencePieceProcessor(model_file=str(run.tokenizer))
    return np.concatenate(sp.EncodeAsNumpy([extra[i] for i in pick], add_eos=True)).astype(
        np.int64)


def rerankings(cfg, pool: LoopPool, model, candidates: np.ndarray, static: np.ndarray,
               extra: np.ndarray | None) -> dict[str, np.ndarray]:
    """Scores over the candidates (aligned with `candidates`) of every probed ranking."""
    from curator.trainer.engine import per_document_loss

    T, bs = cfg.model.seq_len, 2 * cfg.model.batch_size
    docs = pool.docs(candidates)
    grads = document_gradients(model, docs, T)
    val = cosine_influence(grads, stream_gradient(model, pool.validation, T, bs,
                                                  cfg.model.eval_batches))
    loss = per_document_loss(model, docs, batch_size=32)
    out = {
        "static": static,
        "influence(val)": val,
        "influence(val)+static": zscore(val) + zscore(static),
        "loss high": loss,
        "loss low": -loss,
    }
    if extra is not None:
        out["influence(300 clean)"] = cosine_influence(
            grads, stream_gradient(model, extra, T, bs, 32))
    return out


def probe(run_root: Path, corpora: str | None) -> tuple[list[dict], dict]:
    import torch

    from curator.trainer.data import TokenStream
    from curator.trainer.engine import evaluate

    torch.set_num_threads(1)
    cfg = load_loop_config(run_root / "loop" / "config.yaml")
    run = RunDir.at(str(run_root))
    pool = load_loop_pool(run)
    policy = str(run_root / "loop" / "policies" / "round-0.safetensors")
    static = arm_scores("static", pool.texts, policy, 0, 0)
    extra = extra_clean_stream(run, corpora, 300) if corpora else None
    rows = []
    for seed in cfg.seeds:
        results: list[dict] = []
        for rnd in range(cfg.rounds - 1):
            unit = unit_dir(run_root, rnd, "static", seed)
            results.append(json.loads((unit / "result.json").read_text()))
            left = remaining_after(results, len(pool))
            idx = np.flatnonzero(left)
            cand = idx[update_candidates(cfg, static[idx], pool.n_tokens[idx],
                                         cfg.update.env.docs_per_step)]
            _, model, _ = build_trainer(cfg, pool.vocab_size, seed, latest(unit / "model"))
            row = {"seed": seed, "round": rnd, "candidates": len(cand)}
            for name, s in rerankings(cfg, pool, model, cand, static[cand], extra).items():
                scores = np.full(len(pool), -np.inf)
                scores[cand] = s
                chosen = select_round(scores, pool.n_tokens, left, cfg.round_tokens)
                trained = trial_model(cfg, pool, seed, rnd, unit / "model", chosen)
                row[name] = float(evaluate(trained, TokenStream(pool.test, cfg.model.seq_len),
                                           2 * cfg.model.batch_size, cfg.model.eval_batches))
            rows.append(row)
            print(json.dumps(row), flush=True)
    return rows, {"pool_docs": len(pool), "rounds": cfg.rounds, "seeds": cfg.seeds,
                  "candidate_rounds": cfg.update.candidate_rounds}


def table(rows: list[dict]) -> list[str]:
    names = [k for k in rows[0] if k not in ("seed", "round", "candidates", "static")]
    lines = [
        "| re-ranking of the static agent's candidates | test loss minus static's (mean) | sd "
        "| (seed, round) pairs where it is better |",
        "|---|---|---|---|",
    ]
    for name in names:
        d = np.array([r[name] - r["static"] for r in rows])
        better = int((d < 0).sum())
        lines.append(f"| {name} | {d.mean():+.4f} | {d.std():.4f} | {better}/{len(d)} |")
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", required=True, help="a finished `curator loop` RUN with a static arm")
    ap.add_argument("--corpora", default=None, help="corpora folder for the 300-doc target")
    ap.add_argument("--out", default=str(RESULTS))
    args = ap.parse_args()
    t0 = time.time()
    rows, info = probe(Path(args.run), args.corpora)
    cmd = "python -m benchmarks.loop_margin_probe " + " ".join(sys.argv[1:])
    text = "\n".join([
        "## Loop margin probe: model-aware re-rankings vs the static agent (CPU)",
        "",
        f"Command (repo root): `{cmd}`",
        "",
        f"Run: {info['pool_docs']} pool documents, {info['rounds']} rounds, seeds "
        f"{info['seeds']}; candidates = the static policy's best-ranked remaining documents "
        f"holding {info['candidate_rounds']} rounds' tokens, after each of the first "
        f"{info['rounds'] - 1} rounds; one trial round from the static arm's checkpoint per "
        f"ranking, judged on the test half. Wall time {(time.time() - t0) / 60:.1f} min.",
        "",
        *table(rows),
        "",
    ])
    Path(args.out).write_text(text)
    print(text)


if __name__ == "__main__":
    main()
