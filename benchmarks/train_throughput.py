"""Trainer throughput (tokens/s) and DSA-vs-dense quality at equal steps, on real text.

    PYTHONPATH=. python -m benchmarks.train_throughput [--repeats 3] [--seeds 0 1 2]

Text: Python's own help topics (`pydoc_data.topics`, on every machine), tokenized with a
sentencepiece BPE trained here; held-out documents chosen by doc_id hash as in training.
1. Throughput: steady-state tokens/s and CPU-s per 1K tokens of the trainer's steps
   (`fit_stream`, the loop every caller uses) for dense/DSA x fp32/bf16 at two sequence lengths
   (and MFU on CUDA, from 6 * params * tokens/s against --peak-tflops). Every cell runs
   `--repeats` times, the cells interleaved (one pass over all cells per repeat, in a rotated
   order), and the table gives medians with the range.
2. Quality: a DSA model and a dense model of the same size, same tokens, same steps, one pair
   per seed (same init where the weights are shared, same batches); held-out loss of each, the
   per-seed paired difference, its mean and sign-flip p.
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
) -> dict:
    """Train `steps` steps: tokens/s and process CPU-s per 1K tokens after `timed_from`, the
    held-out loss, and the parameter count."""
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
    t0, c0 = time.perf_counter(), time.process_time()
    stats = fit_stream(model, opt, stream, cfg, range(timed_from, steps), total_steps=total,
                       start_step=timed_from)
    if device.type == "cuda":
        torch.cuda.synchronize()  # the steps only queued work; wait for it before timing
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    tokens = sum(s.tokens for s in stats)
    heldout = evaluate(model, held, cfg.batch_size, 16, cfg.precision, dense=not cfg.dsa.enabled)
    return {"tokens_per_s": tokens / wall, "cpu_s_per_1k": 1000 * cpu / tokens,
            "heldout": heldout, "params": model.num_params()}


def spread(values: list[float], fmt: str) -> str:
    """median (min-max)"""
    return f"{np.median(values):{fmt}} ({min(values):{fmt}}-{max(values):{fmt}})"


def throughput_table(args: argparse.Namespace, corpus: Corpus) -> list[str]:
    cells = [(seq, dsa, prec) for seq in args.seq_lens for dsa in (False, True)
             for prec in args.precisions]
    runs: dict[tuple, list[dict]] = {c: [] for c in cells}
    for r in range(args.repeats):
        for seq, dsa, prec in cells[r % len(cells):] + cells[: r % len(cells)]:  # rotated
            cfg = config(dsa, prec, args.device, args.throughput_steps, seq)
            cfg = cfg.model_copy(
                update={"dsa": cfg.dsa.model_copy(update={"dense_warmup_steps": 0})}
            )
            out = run(cfg, corpus, args.throughput_steps, timed_from=5)
            runs[seq, dsa, prec].append(out)
            print(f"repeat {r}: seq {seq} {'DSA' if dsa else 'dense'} {prec}: "
                  f"{out['tokens_per_s']:,.0f} tok/s", flush=True)
    mfu_head = " MFU |" if args.peak_tflops else ""
    lines = [
        f"## Throughput (steps 5-{args.throughput_steps - 1}, sparse steps only for DSA; "
        f"median (min-max) of {args.repeats} interleaved repeats)",
        "",
        "| seq_len | attention | precision | params | tokens/s | CPU-s per 1K tokens "
        "| DSA/dense tokens/s |" + mfu_head,
        "|---|---|---|---|---|---|---|" + ("---|" if args.peak_tflops else ""),
    ]
    for seq, dsa, prec in cells:
        rows = runs[seq, dsa, prec]
        rate = [x["tokens_per_s"] for x in rows]
        ratio = ""
        if dsa:  # paired by repeat: the dense cell of the same repeat, length and precision
            dense = [x["tokens_per_s"] for x in runs[seq, False, prec]]
            ratio = spread([a / b for a, b in zip(rate, dense, strict=True)], ".2f") + "x"
        mfu = (f" {6 * rows[0]['params'] * np.median(rate) / (args.peak_tflops * 1e12):.1%} |"
               if args.peak_tflops else "")
        lines.append(
            f"| {seq} | {'DSA' if dsa else 'dense'} | {prec} | {rows[0]['params']:,} | "
            f"{spread(rate, ',.0f')} | {spread([x['cpu_s_per_1k'] for x in rows], '.3f')} | "
            f"{ratio} |" + mfu
        )
    return lines


def quality_table(args: argparse.Namespace, corpus: Corpus) -> list[str]:
    from benchmarks.paired_stats import sign_flip_p

    loss: dict[tuple[bool, int], float] = {}
    params = {}
    for seed in args.seeds:
        for dsa in (False, True):
            cfg = config(dsa, "fp32", args.device, args.steps, args.quality_seq_len)
            cfg = cfg.model_copy(update={"seed": seed})
            out = run(cfg, corpus, args.steps)
            loss[dsa, seed], params[dsa] = out["heldout"], out["params"]
            print(f"seed {seed}: {'DSA' if dsa else 'dense'} held-out {out['heldout']:.4f}",
                  flush=True)
    gap = np.array([(loss[True, s] - loss[False, s]) / loss[False, s] for s in args.seeds])
    lines = [
        f"## Quality at equal steps ({args.steps} steps, seq_len {args.quality_seq_len}, "
        f"{args.steps * 8 * args.quality_seq_len:,} tokens, fp32; one dense/DSA pair per seed)",
        "",
        "| seed | dense held-out loss | DSA held-out loss | DSA vs dense |",
        "|---|---|---|---|",
    ]
    for s, g in zip(args.seeds, gap, strict=True):
        lines.append(f"| {s} | {loss[False, s]:.4f} | {loss[True, s]:.4f} | {g:+.2%} |")
    lines += [
        "",
        f"Params: dense {params[False]:,}, DSA {params[True]:,} (the indexer). DSA vs dense "
        f"held-out loss: mean {gap.mean():+.2%} over {len(gap)} seeds, range "
        f"{gap.min():+.2%} to {gap.max():+.2%}, sign-flip p {sign_flip_p(gap):.2f} (target: "
        "within 3%).",
    ]
    return lines


def main() -> None:
    import sys

    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--steps", type=int, default=150, help="quality-run steps")
    ap.add_argument("--quality-seq-len", type=int, default=256)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--throughput-steps", type=int, default=20)
    ap.add_argument("--seq-lens", type=int, nargs="+", default=[256, 512])
    ap.add_argument("--precisions", nargs="+", default=["fp32", "bf16"])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--peak-tflops", type=float, default=0.0, help="CUDA bf16 peak, for MFU")
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args()
    corpus = help_corpus(2048)
    lines = [
        f"# Trainer throughput and DSA quality ({args.device})",
        "",
        f"Command: `PYTHONPATH=. python -m benchmarks.train_throughput {' '.join(sys.argv[1:])}`",
        "",
        f"Data: pydoc help topics, {len(corpus.tokens):,} tokens, sentencepiece BPE 2048; model "
        "4 layers x d_model 128, batch 8, DSA block 32 (keep diag + window 1 + sink 1 + top-2 "
        f"blocks); torch {torch.__version__}, {torch.get_num_threads()} threads.",
        "",
    ]
    lines += throughput_table(args, corpus) + [""] + quality_table(args, corpus) + [""]
    if args.device == "cpu":
        lines.append(
            "GPU throughput and MFU were not measured: no GPU was available to this session."
        )
    text = "\n".join(lines) + "\n"
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)


if __name__ == "__main__":
    main()
