"""Benchmark inputs: public-domain books cut into ~2 KB paragraph chunks plus Common Crawl docs.

The same texts feed every benchmark so ratios compare like with like.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Callable, Iterable
from pathlib import Path

from policies.pool import chunk_paragraphs

DEFAULT_INPUTS = [
    "../shared/corpora/books.jsonl.gz",
    "../shared/corpora/cc_en_head-0091.jsonl.gz",
    "../shared/corpora/cc_en_head-0174.jsonl.gz",
    "../shared/corpora/dolma-documents-000.jsonl.gz",
]


def load_texts(
    paths: list[str] | None = None, chunk_chars: int = 2000, limit: int | None = None
) -> list[str]:
    """Books are chunked (they are single huge records); other files contribute whole docs."""
    texts: list[str] = []
    for p in paths or DEFAULT_INPUTS:
        with gzip.open(Path(p), "rt", encoding="utf-8") as f:
            for line in f:
                text = json.loads(line)["text"]
                texts.extend(
                    chunk_paragraphs(text, chunk_chars) if len(text) > 4 * chunk_chars else [text]
                )
    return texts[:limit] if limit else texts


def group_pieces(pieces: Iterable[str], sep: str, target: Callable[[], int]) -> list[str]:
    """Consecutive pieces (lines, entries) joined by `sep` into chunks, each closed once its
    size reaches `target()` (called for the first chunk and after each one closes); the rest
    is the last chunk."""
    chunks: list[str] = []
    cur: list[str] = []
    size, goal = 0, target()
    for piece in pieces:
        cur.append(piece)
        size += len(piece) + len(sep)
        if size >= goal:
            chunks.append(sep.join(cur))
            cur, size, goal = [], 0, target()
    if cur:
        chunks.append(sep.join(cur))
    return chunks
