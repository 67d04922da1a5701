"""Trainer throughput (tokens/s) and DSA-vs-dense quality at equal steps, on real text.

    python benchmarks/train_throughput.py [--steps 200] [--device cpu]

Text: Python's own help topics (`pydoc_data.topics`, on every machine), tokenized with a
sentencepiece BPE trained here; held-out documents chosen by doc_id hash as in training.
1. Throughput: steady-state tokens/s of the trainer's steps (`fit_stream`, the loop every
   caller uses) for dense/DSA x fp32/bf16 (and MFU on CUDA,
   from 6 * params * tokens/s against the device's bf16 peak given by --peak-tflops).
2. Quality: a DSA model and a dense model of the same size, same tokens, same steps; held-out
   loss of each and the relative gap (target: DSA within 3% of dense).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import torch

from curator.trainer.config import TrainConfig
from curator.trainer.data import Corpus, TokenStream, split
from curator.trainer.engine import build_model, build_optimizer, evaluate, resolve_device
from curator.trainer.fit import fit_stream

RESULTS = Path(__file__).parent / "results" / "train_throughput.md"


def help_corpus(vocab: int) -> Corpus:
    from pydoc_data.topics import topics

    import sentencepiece as spm

    texts = [p.strip() for key in sorted(topics) for p in topics[key].split("\n\n")]
    texts = [t for t in texts if len(t) > 40]
    with tempfile.TemporaryDirectory() as tmp:
        spm.SentencePieceTrainer.train(
            sentence_iterator=iter(texts),
            model_prefix=f"{tmp}/sp",
            vocab_size=vocab,
            model_type="bpe",
            eos_id=1,
            bos_id=-1,
            pad_id=-1,
            unk_id=0,
            minloglevel=2,
            max_sentence_length=100000,
        )
        sp = spm.SentencePieceProcessor(model_file=f"{tmp}/sp.model")
    ids = sp.encode(texts)
    lengths = np.array([len(t) + 1 for t in ids])
    flat = np.concatenate([np.append(np.asarray(t, np.uint16), 1) for t in ids])
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    doc_ids = pa.array([f"help-{i:05d}" for i in range(len(texts))])
    return Corpus(flat, offsets, doc_ids, vocab, 1)


def config(dsa: bool, precision: str, device: str, steps: int, seq_len: int) -> TrainConfig:
    return TrainConfig.model_validate(
        {
            "data": {"path": "unused"},
            "device": device,
            "precision": precision,
            "model": {"seq_len": seq_len, "n_layer": 4, "n_head": 4, "d_model": 128},
            "dsa": {
                "enabled": dsa,
                "block_size": 32,
                "top_k_blocks": 2,
                "window_blocks": 1,
                "sink_blocks": 1,
                "dense_warmup_steps": steps // 10,
            },
            "optim": {"lr": 3e-3, "warmup_frac": 0.05},
            "batch_size": 8,
            "max_tokens": steps * 8 * seq_len,
        }
    )


def run(
    cfg: TrainConfig, corpus: Corpus, steps: int, timed_from: int = 0
) -> tuple[float, float, int]:
    """Train `steps` steps; returns (tokens/s after `timed_from`, held-out loss, params)."""
    device = resolve_device(cfg.device)
    train_c, held_c = split(corpus, 0.05)
    stream = TokenStream(train_c.runs(), cfg.model.seq_len)
    held = TokenStream(held_c.runs(), cfg.model.seq_len)
    model = build_model(cfg, corpus.vocab_size, device)
    opt = build_optimizer(model, cfg.optim, device)
    total = cfg.total_steps()
    # warm-up steps, then the timed ones: the same schedule, split in two calls
    fit_stream(model, opt, stream, cfg, range(timed_from), total_steps=total)
    if device.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    stats = fit_stream(model, opt, stream, cfg, range(timed_from, steps), total_steps=total,
                       start_step=timed_from)
    if device.type == "cuda":
        torch.cuda.synchronize()  # the steps only queued work; wait for it before timing
    rate = sum(s.tokens for s in stats) / (time.perf_counter() - t0)
    heldout = evaluate(model, held, cfg.batch_size, 16, cfg.precision, dense=not cfg.dsa.enabled)
    return rate, heldout, model.num_params()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--steps", type=int, default=200, help="quality-run steps")
    ap.add_argument("--seq-len", type=int, default=512)
    ap.add_argument("--peak-tflops", type=float, default=0.0, help="CUDA bf16 peak, for MFU")
    args = ap.parse_args()
    corpus = help_corpus(2048)
    lines = [
        f"# Trainer throughput and DSA quality ({args.device})",
        "",
        f"Command: `python benchmarks/train_throughput.py --device {args.device} --steps "
        f"{args.steps} --seq-len {args.seq_len}`",
        "",
        f"Data: pydoc help topics, {len(corpus.tokens):,} tokens, sentencepiece BPE 2048; model "
        f"4 layers x d_model 128, seq_len {args.seq_len}, batch 8, DSA block 32 (keep diag + "
        f"window 1 + sink 1 + top-2 of {args.seq_len // 32} blocks); torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads.",
        "",
        "## Throughput (steady state, steps 5-30; sparse steps only for DSA)",
        "",
        "| attention | precision | params | tokens/s |" + (" MFU |" if args.peak_tflops else ""),
        "|---|---|---|---|" + ("---|" if args.peak_tflops else ""),
    ]
    for dsa in (False, True):
        for precision in ("fp32", "bf16"):
            cfg = config(dsa, precision, args.device, 30, args.seq_len)
            cfg = cfg.model_copy(
                update={"dsa": cfg.dsa.model_copy(update={"dense_warmup_steps": 0})}
            )
            rate, _, n = run(cfg, corpus, 30, timed_from=5)
            mfu = f" {6 * n * rate / (args.peak_tflops * 1e12):.1%} |" if args.peak_tflops else ""
            lines.append(
                f"| {'DSA' if dsa else 'dense'} | {precision} | {n:,} | {rate:,.0f} |" + mfu
            )
            print(lines[-1], flush=True)
    lines += [
        "",
        f"## Quality at equal steps ({args.steps} steps, "
        f"{args.steps * 8 * args.seq_len:,} tokens, fp32, same seed and batches)",
        "",
        "| model | params | held-out loss (nats) |",
        "|---|---|---|",
    ]
    losses = {}
    for dsa in (False, True):
        cfg = config(dsa, "fp32", args.device, args.steps, args.seq_len)
        _, losses[dsa], n = run(cfg, corpus, args.steps)
        lines.append(f"| {'DSA' if dsa else 'dense'} | {n:,} | {losses[dsa]:.4f} |")
        print(lines[-1], flush=True)
    gap = (losses[True] - losses[False]) / losses[False]
    lines += ["", f"DSA vs dense held-out loss: {gap:+.2%} (target: within 3%).", ""]
    if args.device == "cpu":
        lines.append(
            "GPU throughput and MFU were not measured: no GPU was available to this session."
        )
    text = "\n".join(lines) + "\n"
    print(text)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(text)


if __name__ == "__main__":
    main()
