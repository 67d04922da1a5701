"""Does the indexer's choice, or the gate, earn its cost? DSA vs dense vs window-only vs
random-block selection at equal steps, on long documents (public-domain books), several seeds.

    PYTHONPATH=. python -m benchmarks.dsa_selection --books ../shared/corpora/books.jsonl.gz

Data: books split by a hash of their id into training books and held-out books (no held-out
book is ever trained on or used to fit the tokenizer). A sentencepiece BPE tokenizer is fitted
on a sample of the training books only. Each book is one long document; training windows are
`seq_len` (4096) tokens, read by the trainer's one recipe (`curator.trainer.fit.fit_tokens`).

Arms, all with the same model, optimizer, data, seed set and number of steps, and the same dense
warm-up (the sparse arms attend fully for the first steps; the indexer learns its KL there):
- `dense`: full causal attention (the ceiling; no sparsity);
- `window`: sink + local blocks only (does anything distant matter?);
- `random`: the same number of blocks as DSA, the top-k picked at random (does the choice matter?);
- `dsa`: the lightning indexer's top-k (the product);
- `dsa+gate`: DSA with the NSA-style gate over a selected and a local-window branch.
Each arm is evaluated in its own attention mode on every held-out window: the mean loss, and the
mean loss of the last quarter of positions (where distant context is most of the context).
Cost: CPU-seconds per training step of this process (one thread; training only).

Paired by seed: each arm minus `dsa`, with the sign-flip p (3 seeds cannot go below p = 0.25:
the table says so rather than claim significance).
"""

from __future__ import annotations

import argparse
import gzip
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from benchmarks.paired_stats import sign_flip_p
from curator.hashing import stable_hash
from curator.trainer.config import TrainConfig
from curator.trainer.data import TokenStream
from curator.trainer.engine import autocast, build_model, build_optimizer, to_batch
from curator.trainer.fit import fit_tokens

RESULTS = Path(__file__).parent / "results" / "dsa_selection.md"
ARMS = {
    "dense": {"enabled": False},
    "window": {"selection": "window"},
    "random": {"selection": "random"},
    "dsa": {"selection": "indexer"},
    "dsa+gate": {"selection": "indexer", "gate": True},
}


def read_books(path: Path, max_chars: int) -> tuple[list[str], list[str]]:
    """(training books, held-out books): held out by id hash, each cut to max_chars."""
    import pyarrow as pa

    rows = [json.loads(line) for line in gzip.open(path, "rt", encoding="utf-8")]
    held = stable_hash(pa.array([r["id"] for r in rows]), 7) % np.uint64(8) == 0
    train = [r["text"][:max_chars] for r, h in zip(rows, held, strict=True) if not h]
    heldout = [r["text"][:max_chars] for r, h in zip(rows, held, strict=True) if h]
    return train, heldout


def fit_tokenizer(texts: list[str], vocab: int, sample_chars: int):
    import sentencepiece as spm

    per = max(1, sample_chars // max(1, len(texts)))
    sample = [p for t in texts for p in t[:per].split("\n\n") if len(p) > 40]
    with tempfile.TemporaryDirectory() as tmp:
        spm.SentencePieceTrainer.train(
            sentence_iterator=iter(sample), model_prefix=f"{tmp}/sp", vocab_size=vocab,
            model_type="bpe", eos_id=1, bos_id=-1, pad_id=-1, unk_id=0, minloglevel=2,
            max_sentence_length=100000, num_threads=1,
        )
        return spm.SentencePieceProcessor(model_file=f"{tmp}/sp.model")


def encode(sp, texts: list[str]) -> np.ndarray:
    """Books joined into one stream, an EOS (id 1) after each."""
    return np.concatenate([np.append(np.asarray(ids, np.int64), 1) for ids in sp.encode(texts)])


def config(arm: str, args: argparse.Namespace, seed: int) -> TrainConfig:
    dsa = {
        "block_size": args.block_size,
        "top_k_blocks": args.top_k,
        "window_blocks": 1,
        "sink_blocks": 1,
        "dense_warmup_steps": args.warmup,
        **ARMS[arm],
    }
    return TrainConfig.model_validate({
        "data": {"path": "unused"},
        "device": "cpu",
        "precision": "fp32",
        "seed": seed,
        "model": {"seq_len": args.seq_len, "n_layer": args.layers, "n_head": args.heads,
                  "d_model": args.d_model},
        "dsa": dsa,
        "optim": {"lr": args.lr, "warmup_frac": 0.05},
        "batch_size": 1,
        "max_tokens": args.steps * args.seq_len,
    })


@torch.no_grad()
def heldout_losses(
    model: torch.nn.Module, stream: TokenStream, seq_len: int
) -> tuple[float, float]:
    """(mean loss, mean loss of the last quarter of positions) over every held-out window."""
    model.eval()
    total, tail = [], []
    for i in range(stream.n_windows):
        x, y = to_batch(stream.batch(i, 1), torch.device("cpu"))
        with autocast(torch.device("cpu"), "fp32"):
            loss = model(x, y, reduction="none").loss[0]
        total.append(float(loss.mean()))
        tail.append(float(loss[3 * seq_len // 4 :].mean()))
    model.train()
    return float(np.mean(total)), float(np.mean(tail))


def run_arm(arm: str, seed: int, args, train_tokens, held, vocab) -> dict:
    cfg = config(arm, args, seed)
    model = build_model(cfg, vocab, "cpu")
    optimizer = build_optimizer(model, cfg.optim, "cpu")
    c0, w0 = time.process_time(), time.perf_counter()
    stats = fit_tokens(model, optimizer, train_tokens, cfg, args.steps,
                       total_steps=args.steps, seed=seed)
    cpu, wall = time.process_time() - c0, time.perf_counter() - w0
    loss, tail = heldout_losses(model, held, args.seq_len)
    return {
        "arm": arm, "seed": seed, "heldout": loss, "heldout_tail": tail,
        "train_last": float(np.mean([float(s.loss) for s in stats[-10:]])),
        "cpu_s_per_step": cpu / args.steps, "wall_s": wall, "params": model.num_params(),
    }


def table(results: list[dict], args: argparse.Namespace) -> str:
    seeds = sorted({r["seed"] for r in results})
    by = {(r["arm"], r["seed"]): r for r in results}
    arms = [a for a in ARMS if all((a, s) in by for s in seeds)]
    nb = args.seq_len // args.block_size
    keep = min(nb, 3 + args.top_k) / nb
    lines = [
        "## DSA selection and gating ablation (books, long sequences, CPU)",
        "",
        f"Command: `PYTHONPATH=. python -m benchmarks.dsa_selection {args.cmdline}`",
        "",
        f"Model: {args.layers} layers, d_model {args.d_model}, {args.heads} heads, "
        f"seq_len {args.seq_len}, block {args.block_size}, keep {3 + args.top_k} of {nb} blocks "
        f"({keep:.3f}) for the sparse arms (window: {min(nb, 3)}); {args.steps} steps of one "
        f"{args.seq_len}-token sequence, the first {args.warmup} dense for every sparse arm; "
        f"seeds {seeds}. Held-out: {args.held_windows} windows of books never trained on. "
        "Loss in nats/token; `tail` = last quarter of positions. Cost: CPU-s per step, one "
        "thread, training only. Δ = arm − dsa per seed (mean), p = exact sign-flip over seeds "
        f"(with {len(seeds)} seeds the smallest possible p is {2 / 2 ** len(seeds):.3f}).",
        "",
        "| arm | held-out loss | tail loss | Δ held-out vs dsa (p) | Δ tail vs dsa (p) "
        "| CPU-s/step | seeds won vs dsa (held-out) |",
        "|---|---|---|---|---|---|---|",
    ]
    for arm in arms:
        h = np.array([by[arm, s]["heldout"] for s in seeds])
        t = np.array([by[arm, s]["heldout_tail"] for s in seeds])
        cpu = np.median([by[arm, s]["cpu_s_per_step"] for s in seeds])
        if arm == "dsa":
            dh = dt = "—"
            won = "—"
        else:
            d = h - np.array([by["dsa", s]["heldout"] for s in seeds])
            e = t - np.array([by["dsa", s]["heldout_tail"] for s in seeds])
            dh = f"{d.mean():+.4f} ({sign_flip_p(d):.2f})"
            dt = f"{e.mean():+.4f} ({sign_flip_p(e):.2f})"
            won = f"{int((d < 0).sum())}/{len(seeds)}"
        lines.append(f"| {arm} | {h.mean():.4f} | {t.mean():.4f} | {dh} | {dt} | {cpu:.2f} "
                     f"| {won} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--books", type=Path, default=Path("../shared/corpora/books.jsonl.gz"))
    ap.add_argument("--arms", nargs="+", default=list(ARMS), choices=list(ARMS))
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--warmup", type=int, default=40, help="dense steps of every sparse arm")
    ap.add_argument("--seq-len", type=int, default=4096)
    ap.add_argument("--block-size", type=int, default=64)
    ap.add_argument("--top-k", type=int, default=5, help="indexer/random picks per query block")
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--heads", type=int, default=2)
    ap.add_argument("--d-model", type=int, default=64)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--vocab", type=int, default=4096)
    ap.add_argument("--book-chars", type=int, default=120_000, help="chars read per book")
    ap.add_argument("--held-windows", type=int, default=24)
    ap.add_argument("--out", type=Path, default=RESULTS)
    ap.add_argument("--raw", type=Path, default=None, help="json of every run (resumable)")
    args = ap.parse_args()
    import sys

    args.cmdline = " ".join(sys.argv[1:])
    torch.set_num_threads(1)  # CPU-s per step comparable across arms on a shared machine

    train_books, held_books = read_books(args.books, args.book_chars)
    sp = fit_tokenizer(train_books, args.vocab, 4_000_000)
    train_tokens = encode(sp, train_books)
    held_tokens = encode(sp, held_books)[: args.held_windows * args.seq_len + 1]
    held = TokenStream(held_tokens, args.seq_len)
    args.held_windows = held.n_windows
    print(f"{len(train_books)} training books ({len(train_tokens)} tokens), {len(held_books)} "
          f"held-out books ({held.n_windows} windows)", flush=True)

    raw = args.raw or args.out.with_suffix(".json")
    results = json.loads(raw.read_text()) if raw.exists() else []
    done = {(r["arm"], r["seed"]) for r in results}
    for seed in args.seeds:  # seed-major: a partial run still has complete pairs
        for arm in args.arms:
            if (arm, seed) in done:
                continue
            r = run_arm(arm, seed, args, train_tokens, held, sp.vocab_size())
            print(json.dumps(r), flush=True)
            results.append(r)
            raw.write_text(json.dumps(results, indent=1))
    args.out.write_text(table(results, args))
    print(args.out.read_text())


if __name__ == "__main__":
    main()
