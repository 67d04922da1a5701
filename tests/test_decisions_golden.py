"""The same decisions as before a speed change: a fixed corpus curated with the defaults (the
web preset: language, Gopher repetition and quality, C4, FineWeb, exact + MinHash dedup) must
give every record the decision and reason recorded in tests/data/decisions_golden.json.

The golden file was written by the code before the rule and language kernels were rewritten
for speed (commit 854da8d); a kernel change that moves any decision fails here with the rows
that moved. Regenerate only for an intended change of behaviour:
    CURATOR_UPDATE_GOLDEN=1 .venv/bin/python -m pytest tests/test_decisions_golden.py
"""

from __future__ import annotations

import gzip
import json
import os
import random
from collections import Counter
from pathlib import Path

import polars as pl

from curator.config import CurateConfig, load_model
from curator.executor import run_curate

GOLDEN = Path(__file__).parent / "data" / "decisions_golden.json"


def golden_corpus(root: Path) -> Path:
    """~300 documents from the standard library's pydoc topics (prose, code, tables; chunked
    at blank lines to ~2 KB), their near and exact copies, and generated repetitive and
    non-English text that trips each repetition rule: two jsonl.gz files, ids unique."""
    from pydoc_data.topics import topics

    rng = random.Random(0)
    docs: list[str] = []
    for name in sorted(topics):
        chunk = ""
        for block in topics[name].split("\n\n"):
            chunk = f"{chunk}\n\n{block}" if chunk else block
            if len(chunk) > 2000:
                docs.append(chunk)
                chunk = ""
        if chunk:
            docs.append(chunk)
    from tests.corpus import real_paragraphs

    paras = real_paragraphs()
    prose = ["\n\n".join(paras[i:i + 2]) for i in range(0, len(paras) - 1, 2)]  # mostly kept
    docs += prose
    words = " ".join(docs).split()
    for i in range(40):  # repeated lines, paragraphs and n-grams at varying rates
        base = " ".join(rng.choice(words) for _ in range(rng.randint(20, 120)))
        line = " ".join(rng.choice(words) for _ in range(rng.randint(3, 12)))
        docs.append("\n".join([base] + [line] * rng.randint(1, 30) + [base[: i * 7]]))
        docs.append(" ".join([base[: rng.randint(10, 200)]] * rng.randint(2, 6)))
    for _ in range(15):  # other languages and scripts
        docs.append(" ".join(rng.choice(["Der", "Hund", "läuft", "schnell", "über", "die",
                                         "Straße", "und", "bellt", "laut."]) for _ in range(80)))
        docs.append(" ".join(rng.choice(["это", "очень", "хороший", "день", "для", "прогулки",
                                         "по", "парку."]) for _ in range(80)))
    for _ in range(10):  # exact and one-word-edited copies, of prose and of anything
        src = prose[rng.randrange(len(prose))]
        docs.append(src)
        docs.append(src.replace(" the ", " a ", 1))
    for _ in range(10):
        src = docs[rng.randrange(len(docs))]
        docs.append(src)
        w = src.split()
        if w:
            w[rng.randrange(len(w))] = "changed"
        docs.append(" ".join(w))
    root.mkdir(parents=True, exist_ok=True)
    for f in range(2):
        with gzip.open(root / f"part-{f}.jsonl.gz", "wt") as out:
            for i in range(f, len(docs), 2):
                out.write(json.dumps({"id": f"g{i:05d}", "text": docs[i]}) + "\n")
    return root


SURVIVED_RULES = (None, "exact_duplicate", "near_duplicate")  # kept, or a copy of a kept one


def canonical(row: list) -> tuple:
    input_id, decision, reason = row
    return (input_id, "survived the rules") if reason in SURVIVED_RULES else (input_id, reason)


def outcome(row: list) -> str:
    """kept / duplicate (exact or near: which one a copy is called can follow the kept copy)
    / the rule's reason."""
    return "kept" if row[2] is None else "duplicate" if row[2] in SURVIVED_RULES else row[2]


def decisions(run: Path) -> list[list]:
    m = pl.read_parquet(run / "manifest" / "*.parquet")
    rows = m.select("input_id", "decision", "reason").sort("input_id")
    return [list(r) for r in rows.iter_rows()]


def test_decisions_equal_the_recorded_golden(ray_cluster, tmp_path):
    corpus = golden_corpus(tmp_path / "corpus")
    cfg = load_model(CurateConfig, base={
        "inputs": [{"path": str(corpus)}], "output": str(tmp_path / "run"), "quiet": True,
        "tokenizer": {"vocab_size": 1000},
        # the reference quotes identifiers often; its prose is still prose (as in the e2e test)
        "quality": {"gopher_quality": {"min_alpha_words_ratio": 0.7}}})
    run_curate(cfg)
    got = decisions(tmp_path / "run")
    if os.environ.get("CURATOR_UPDATE_GOLDEN"):
        GOLDEN.write_text(json.dumps(got, indent=0) + "\n")
    want = json.loads(GOLDEN.read_text())
    assert len(got) == len(want), (len(got), len(want))
    # Which copy of a duplicate set is kept follows the doc ids, which hash the input's
    # absolute path (a fresh tmp dir per session): a kept copy and its duplicates are one
    # class here, and the kept and duplicate rows are compared by count.
    moved = [(w, g) for w, g in zip(want, got, strict=True) if canonical(w) != canonical(g)]
    assert not moved, f"{len(moved)} of {len(want)} records changed decision: {moved[:10]}"
    assert Counter(map(outcome, got)) == Counter(map(outcome, want))  # as many kept, as many
    reasons = {r[2] for r in want}
    assert len(reasons) >= 8, reasons  # the corpus exercises many rules, not one ...
    assert {"exact_duplicate", "near_duplicate", None} <= reasons, reasons  # ... dedup, and keeps
