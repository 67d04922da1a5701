"""curator's tokenize stage (Arrow batch in, list<uint32> column out) vs raw sentencepiece
`encode` on the same texts, same model, same thread count."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import pyarrow as pa

from curator.config import TokenizerConfig
from curator.run_tokenizer import SentencePieceTokenizer
from curator.schema import KEPT
from curator.stages.tokenize import Tokenize
from curator.tokenizer_train import train_tokenizer


def run(
    texts: list[str],
    vocab_size: int = 8000,
    threads: int = 1,
    batch_size: int = 1000,
    repeats: int = 3,
) -> dict:
    import sentencepiece as spm

    with tempfile.TemporaryDirectory() as tmp:
        model = train_tokenizer(
            texts[:2000], TokenizerConfig(vocab_size=vocab_size), Path(tmp) / "t.model", 2
        )
        sp = spm.SentencePieceProcessor(model_file=str(model))
        step = Tokenize(SentencePieceTokenizer(model, num_threads=threads))
        batches = [texts[i : i + batch_size] for i in range(0, len(texts), batch_size)]
        tables = [
            pa.table(
                {"text": b, "decision": [KEPT] * len(b), "reason": pa.nulls(len(b), pa.string())}
            )
            for b in batches
        ]

        def raw() -> int:
            return sum(len(ids) for b in batches for ids in sp.encode(b, num_threads=threads))

        def stage() -> int:
            return sum(int(pa.compute.sum(step(t).column("n_tokens")).as_py()) for t in tables)

        best = {}
        for name, fn in [("sentencepiece.encode", raw), ("curator Tokenize", stage)]:
            times = []
            for _ in range(repeats):
                t0 = time.perf_counter()
                n_tokens = fn()
                times.append(time.perf_counter() - t0)
            best[name] = (min(times), n_tokens)
    mb = sum(len(t.encode()) for t in texts) / 1e6
    raw_t = best["sentencepiece.encode"][0]
    return {
        "docs": len(texts),
        "MB": round(mb, 2),
        "threads": threads,
        "rows": [
            {
                "impl": name,
                "seconds": round(t, 3),
                "docs_per_s": round(len(texts) / t, 1),
                "MB_per_s": round(mb / t, 2),
                "tokens": n,
                "speed_vs_raw": round(raw_t / t, 3),
            }
            for name, (t, n) in best.items()
        ],
    }
