"""Does the loop's judge agree with its reported loss? Validation-half vs test-half changes.

    .venv/bin/python -m benchmarks.loop_judge_agreement --run /tmp/s33/loop-es \
        --out benchmarks/results/loop_judge_agreement.md

The loop adopts a proposal when the trial round (curator/loop/trial.py) finds that its next
selection lowers the loss on the *validation* half of the held-out text; every arm is reported
on the *test* half. An update can only help the reported loss if the two halves move together
for the small ranking changes a trial decides between. This measures that on a finished loop
run: for each seed, the `static` arm's checkpoint after round 0 and its remaining documents; the
round-0 policy, and `--perturbations` copies of it whose linear weights on the loop update's ES
columns (`update.es.columns`) are shifted by `--sigma` spreads of its logits at random (what ES
proposals look like); each ranking's next selection trains the checkpoint one trial round; the
change of the validation loss and of the test loss against the unshifted policy is recorded.
Reported: over all perturbations and over those that move the whole held-out loss by less than
`--small` nats (where trials decide), the correlation of the two changes and how often they
have the same sign (0.5 = a coin).

The held-out documents' own losses are kept too, and the same agreement is computed for
`--splits` random document-level halves with each document capped at the given token counts:
what a different split would have given on the same trials.
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
from curator.loop.driver import policy_path, remaining_after  # noqa: E402
from curator.loop.pool import load_loop_pool, pool_dir  # noqa: E402
from curator.loop.select import select_round  # noqa: E402
from curator.loop.trial import trial_model  # noqa: E402
from curator.loop.unit import unit_dir  # noqa: E402
from curator.rundir import RunDir  # noqa: E402

RESULTS = Path(__file__).parent / "results" / "loop_judge_agreement.md"


def held_out_docs(run: RunDir) -> tuple[list[np.ndarray], int]:
    """Token ids (EOS appended) of each held-out document and how many are validation."""
    import sentencepiece as spm

    sp = spm.SentencePieceProcessor(model_file=str(run.tokenizer))
    texts = json.loads((pool_dir(run) / "heldout.json").read_text())
    return [np.asarray(t, np.int64) for t in sp.EncodeAsIds(texts, add_eos=True)], len(texts) // 2


def measure(run_root: Path, n_perturb: int, sigma: float, seeds: list[int] | None) -> list[dict]:
    """One record per (seed, perturbation k; k=0 is the unshifted policy): validation and test
    loss after the trial round, and each held-out document's loss."""
    import torch

    from curator.trainer.data import TokenStream
    from curator.trainer.engine import evaluate, per_document_loss
    from policies.checkpoint import load_policy
    from policies.es import column_indices, shift_columns
    from policies.reinforce import affine_of

    torch.set_num_threads(1)
    run = RunDir.at(str(run_root))
    cfg = load_loop_config(run.root / "loop" / "config.yaml")
    pool = load_loop_pool(run)
    docs, _ = held_out_docs(run)
    policy = load_policy(str(policy_path(run, "static", 0, 0)))
    feats = torch.from_numpy(policy.norm(policy.feature_extractor()(pool.texts)))
    cols = column_indices(policy.spec.names, cfg.update.es.columns)
    base = policy.net.linear.detach().clone()
    val = TokenStream(pool.validation, cfg.model.seq_len)
    test = TokenStream(pool.test, cfg.model.seq_len)
    batch = 2 * cfg.model.batch_size

    def stream_loss(model, stream: TokenStream) -> float:
        return float(evaluate(model, stream, batch, -(-stream.n_windows // batch)))

    records = []
    for seed in seeds if seeds is not None else cfg.seeds:
        model_dir = unit_dir(run.root, 0, "static", seed) / "model"
        first = json.loads((unit_dir(run.root, 0, "static", seed) / "result.json").read_text())
        remaining = remaining_after([first], len(pool))
        rng = np.random.default_rng(1000 + seed)  # not the loop's ES seeds (seed*1000 + round)
        with torch.no_grad():
            spread = affine_of(policy.net.score(feats).numpy()[remaining])[1]
        for k in range(n_perturb + 1):
            shift = (np.zeros(len(cols)) if k == 0
                     else sigma * spread * rng.standard_normal(len(cols)))
            shift_columns(policy.net, base, cols, shift)
            with torch.no_grad():
                scores = policy.net.score(feats).numpy().astype(np.float64)
            chosen = select_round(scores, pool.n_tokens, remaining, cfg.round_tokens)
            model = trial_model(cfg, pool, seed, 0, model_dir, chosen)
            records.append({"seed": seed, "k": k, "validation": stream_loss(model, val),
                            "test": stream_loss(model, test),
                            "per_document": per_document_loss(model, docs, 32).tolist()})
            print(f"seed {seed} perturbation {k}: val {records[-1]['validation']:.4f} "
                  f"test {records[-1]['test']:.4f}", flush=True)
    return records


def agreement(dv: np.ndarray, dt: np.ndarray) -> tuple[float, float]:
    """(correlation, share of equal signs) of two aligned change vectors."""
    corr = float(np.corrcoef(dv, dt)[0, 1]) if len(dv) > 2 else float("nan")
    return corr, float(np.mean(np.sign(dv) == np.sign(dt)))


def changes(records: list[dict]) -> dict[str, np.ndarray]:
    """Per perturbation (k > 0): its change against k=0 of the same seed."""
    base = {r["seed"]: r for r in records if r["k"] == 0}
    rows = [r for r in records if r["k"] > 0]
    return {
        "validation": np.array([r["validation"] - base[r["seed"]]["validation"] for r in rows]),
        "test": np.array([r["test"] - base[r["seed"]]["test"] for r in rows]),
        "per_document": np.array([np.subtract(r["per_document"],
                                              base[r["seed"]]["per_document"]) for r in rows]),
    }


def split_agreement(per_doc: np.ndarray, n_tok: np.ndarray, mask: np.ndarray, cap: int | None,
                    n_splits: int) -> tuple[float, float]:
    """Median (correlation, sign agreement) over random document-level halves, each document
    weighted by its tokens capped at `cap` (its first `cap` tokens; approximated by weight)."""
    w = n_tok.astype(float) if cap is None else np.minimum(n_tok, cap).astype(float)
    rng = np.random.default_rng(0)
    out = []
    for _ in range(n_splits):
        p = rng.permutation(len(w))
        a, b = p[: len(w) // 2], p[len(w) // 2:]
        dv = (per_doc[:, a] * w[a]).sum(1) / w[a].sum()
        dt = (per_doc[:, b] * w[b]).sum(1) / w[b].sum()
        out.append(agreement(dv[mask], dt[mask]))
    corr, sign = np.median(np.array(out), axis=0)
    return float(corr), float(sign)


def table(run_root: Path, records: list[dict], small: float, caps: list[int],
          n_splits: int, sigma: float, command: str, wall: float) -> list[str]:
    run = RunDir.at(str(run_root))
    cfg = load_loop_config(run.root / "loop" / "config.yaml")
    docs, n_val = held_out_docs(run)
    n_tok = np.array([len(d) for d in docs])
    ch = changes(records)
    whole = (ch["per_document"] * n_tok).sum(1) / n_tok.sum()
    is_small = np.abs(whole) < small
    seeds = sorted({r["seed"] for r in records})
    lines = [
        f"## Loop judge agreement: validation vs test changes ({run_root.name}, CPU)", "",
        f"Command (repo root): `{command}`", "",
        f"Run: {run_root} (heldout.split={cfg.heldout.split}, "
        f"heldout.max_doc_chars={cfg.heldout.max_doc_chars}); {len(docs)} held-out documents, "
        f"{n_val} validation ({n_tok[:n_val].sum():,} tokens) and {len(docs) - n_val} test "
        f"({n_tok[n_val:].sum():,} tokens); the largest document is "
        f"{n_tok.max() / n_tok.sum():.0%} of all held-out tokens. Seeds {seeds}, "
        f"{len(ch['test'])} perturbations of the round-0 policy ({sigma:g} logit spreads on "
        f"{', '.join(cfg.update.es.columns)}), each judged after one trial round from the "
        f"static arm's round-0 checkpoint; {int(is_small.sum())} of them move the whole held-out "
        f"loss by less than {small:g} nats (\"small\"). Wall time {wall / 60:.1f} min.", "",
        "| halves | perturbations | correlation of the changes | same sign |",
        "|---|---|---|---|",
    ]
    for name, mask in (("all", np.ones(len(whole), bool)), ("small", is_small)):
        corr, sign = agreement(ch["validation"][mask], ch["test"][mask])
        lines.append(f"| this run's validation vs test | {name} ({int(mask.sum())}) | "
                     f"{corr:+.2f} | {sign:.0%} |")
    for cap in [None, *caps]:
        corr, sign = split_agreement(ch["per_document"], n_tok, is_small, cap, n_splits)
        what = "whole documents" if cap is None else f"documents capped at {cap} tokens"
        lines.append(f"| random document halves, {what} (median of {n_splits}) | small "
                     f"({int(is_small.sum())}) | {corr:+.2f} | {sign:.0%} |")
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", required=True, help="a finished `curator loop` RUN with a static arm")
    ap.add_argument("--perturbations", type=int, default=6, help="per seed")
    ap.add_argument("--sigma", type=float, default=0.5, help="shift sd in logit spreads")
    ap.add_argument("--seeds", type=int, nargs="*", default=None, help="default: the run's")
    ap.add_argument("--small", type=float, default=0.1)
    ap.add_argument("--caps", type=int, nargs="*", default=[2048, 1024])
    ap.add_argument("--splits", type=int, default=500)
    ap.add_argument("--out", default=str(RESULTS))
    args = ap.parse_args()
    t0 = time.time()
    run_root = Path(args.run)
    records = measure(run_root, args.perturbations, args.sigma, args.seeds)
    raw = Path(args.out).with_suffix(".jsonl")
    raw.write_text("".join(json.dumps(r) + "\n" for r in records))
    command = "python -m benchmarks.loop_judge_agreement " + " ".join(sys.argv[1:])
    lines = table(run_root, records, args.small, args.caps, args.splits, args.sigma,
                  command, time.time() - t0)
    Path(args.out).write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
