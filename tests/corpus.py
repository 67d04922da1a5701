"""A small real-looking corpus built on the spot (no /work/shared needed): Python reference
topics (real English prose), planted duplicates, planted junk, and every kind of bad input."""

from __future__ import annotations

import gzip
import json
import random
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq


def real_paragraphs(min_words: int = 40) -> list[str]:
    """Long prose paragraphs of the Python reference, in a fixed order."""
    from pydoc_data.topics import topics

    paras = []
    for name in sorted(topics):
        for block in topics[name].split("\n\n"):
            text = " ".join(block.split())
            words = text.split()
            # Prose, not code: few tokens with quotes, brackets or underscores.
            codeish = sum(any(c in '"()[]_=*' for c in w) for w in words)
            if (
                len(words) >= min_words
                and text.count(".") >= 5
                and text.endswith(".")
                and "{" not in text
                and codeish <= len(words) // 12
            ):
                paras.append(text)
    return list(dict.fromkeys(paras))  # several topics repeat the same paragraph


def near_copy(text: str, rng: random.Random, edit_frac: float = 0.01) -> str:
    """Replace ~edit_frac of the purely alphabetic words (punctuation, hence sentence and line
    structure, stays as it was)."""
    words = text.split(" ")
    alpha = [i for i, w in enumerate(words) if w.isalpha()]
    for i in rng.sample(alpha, max(1, int(len(words) * edit_frac))):
        words[i] = rng.choice(["alpha", "beta", "gamma", "delta"])
    return " ".join(words)


@dataclass
class Corpus:
    root: Path
    files: dict[str, int] = field(default_factory=dict)  # path -> input records (counted here)
    exact_dups: dict[str, str] = field(default_factory=dict)  # dup id -> original id
    near_dups: dict[str, str] = field(default_factory=dict)
    junk_ids: set[str] = field(default_factory=set)
    # (source, record or None for "the one file-level record", expected quarantine reason)
    bad: list[tuple[str, int | None, str]] = field(default_factory=list)


def _write_jsonl_gz(path: Path, lines: list[bytes]) -> None:
    with gzip.open(path, "wb") as f:
        for line in lines:
            f.write(line + b"\n")


def build_corpus(
    root: Path, n_docs: int = 40, n_files: int = 4, seed: int = 0, bad_inputs: bool = True
) -> Corpus:
    rng = random.Random(seed)
    root.mkdir(parents=True, exist_ok=True)
    paras = real_paragraphs()
    if n_docs > len(paras):
        raise ValueError(f"at most {len(paras)} distinct documents from the pydoc topics")
    # One prose paragraph per document, none reused: the only duplicates are the planted ones.
    docs = [{"id": f"doc{i:04d}", "text": paras[i]} for i in range(n_docs)]
    corpus = Corpus(root)
    # Planted duplicates: exact copies and 1%-edited copies of earlier docs, under new ids.
    for j in range(max(3, n_docs // 8)):
        src = docs[rng.randrange(n_docs)]
        docs.append({"id": f"exact{j:03d}", "text": src["text"]})
        corpus.exact_dups[f"exact{j:03d}"] = src["id"]
        src = docs[rng.randrange(n_docs)]
        docs.append({"id": f"near{j:03d}", "text": near_copy(src["text"], rng)})
        corpus.near_dups[f"near{j:03d}"] = src["id"]
    # Planted junk: character soup and a repeated boilerplate line.
    for j in range(max(2, n_docs // 30)):
        soup = " ".join(
            "".join(rng.choice("#$%&*+=<>|~^") for _ in range(rng.randint(3, 9)))
            for _ in range(120)
        )
        docs.append({"id": f"soup{j:03d}", "text": soup})
        docs.append(
            {
                "id": f"rep{j:03d}",
                "text": "\n".join(["Click here to subscribe to our newsletter today!"] * 40),
            }
        )
        corpus.junk_ids |= {f"soup{j:03d}", f"rep{j:03d}"}
    rng.shuffle(docs)
    per_file = -(-len(docs) // n_files)
    for f in range(n_files):
        chunk = docs[f * per_file : (f + 1) * per_file]
        path = root / f"part-{f}.jsonl.gz"
        _write_jsonl_gz(path, [json.dumps(d).encode() for d in chunk])
        corpus.files[str(path)] = len(chunk)
    if bad_inputs:
        _add_bad_inputs(corpus, paras)
    return corpus


def _add_bad_inputs(corpus: Corpus, paras: list[str]) -> None:
    root = corpus.root
    good = json.dumps({"id": "bad-good", "text": "\n\n".join(paras[:3])}).encode()
    lines = [
        good,
        b'{"id": "bad-json", "text": "unterminated',
        b'{"id": "bad-utf8", "text": "caf\xe9 ' + b"x" * 50 + b'"}',
        json.dumps({"id": "bad-nul", "text": "a\x00b " * 30}).encode(),
        json.dumps({"id": "bad-empty", "text": "   "}).encode(),
        json.dumps({"id": "bad-missing", "body": "no text field"}).encode(),
        json.dumps({"id": "bad-huge", "text": "word " * 600_000}).encode(),  # 3 MB > 2 MB default
    ]
    path = root / "bad.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    corpus.files[str(path)] = len(lines)
    reasons = [
        "malformed_json",
        "invalid_utf8",
        "nul_bytes",
        "empty_text",
        "missing_text_field",
        "too_large",
    ]
    corpus.bad += [(str(path), record, reason) for record, reason in enumerate(reasons, start=1)]
    # A truncated gzip: complete records, then the stream stops mid-member.
    full = gzip.compress(
        b"\n".join(
            json.dumps({"id": f"trunc{i}", "text": f"Record {i}. " + paras[-1 - i]}).encode()
            for i in range(20)
        )
    )
    trunc = root / "truncated.jsonl.gz"
    trunc.write_bytes(full[: len(full) * 2 // 3])
    corpus.files[str(trunc)] = -1  # unknown: records before the break + 1 quarantined record
    corpus.bad.append((str(trunc), None, "truncated_file"))
    # A parquet file without the text column.
    wrong = root / "wrong.parquet"
    pq.write_table(pa.table({"id": ["w1", "w2"], "body": ["x", "y"]}), wrong)
    corpus.files[str(wrong)] = 1
    corpus.bad.append((str(wrong), None, "wrong_schema"))
