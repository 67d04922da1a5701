"""The natural setup's data (benchmark and default policy): real crawl text as the pool, clean
text as the target, from a corpora folder laid out as ../shared/corpora.

Pool (candidates), crawl text only, read by curator's own connectors:
- the three crawl WARCs of the corpora folder (HTML responses extracted as curate does),
- the Common Crawl and Dolma jsonl documents,
- the raw HTML of half of `web-pages` (split by page id), extracted as curate does,
- any extra crawl jsonl given with `--crawl` (e.g. Common Crawl extracts from public projects'
  test data; see the benchmark's notes).
Target (the text the agent selects towards): the clean articles (`expected_html`) of the other
half of `web-pages` (English only), whole-line ~2 KB chunks of the public-domain books (a fixed
number per book, so no book dominates), and the English Debian handbook's HTML pages when
`--debian` points at an unpacked `debian-handbook` package.

Splits, all by a hash of the text (stable, independent of input order):
- pool: near-duplicate copies removed (MinHash, as curate would), then `train` (the agents'
  environment, every fitted baseline's "pool" side) and `evaluation` (the paired draws);
- target: `fit` (target-aware features, reference LM, classifier/DSIR baselines), `reward`
  (the RL environment's held-out loss) and `evaluation` (the loss every selection is judged
  by; it enters no training and no fitting).
"""

from __future__ import annotations

import gzip
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from curator.config import InputSpec
from policies.natural import (
    Documents,
    TargetSplit,
    distinct,
    read_documents,
    split_target,
    text_hash_unit,
)
from policies.pool import chunk_paragraphs, html_text


@dataclass(frozen=True)
class NaturalData:
    pool_train: Documents
    pool_eval: Documents
    target: TargetSplit
    pool_specs: list[InputSpec]
    target_specs: list[InputSpec]
    # the training-half crawl documents a reader kept (`kept`): moved from the pool to the
    # target, so the training pool lacks exactly the crawl text the evaluation pool's best
    # documents look like (train_default.training_pool can put the fitting part's back)
    kept: tuple[str, ...] = ()


def _page_half(page_id: str) -> int:
    return int(text_hash_unit([page_id], salt=11)[0] < 0.5)


def write_inputs(corpora: Path, work: Path, debian: Path | None, crawl: list[Path],
                 book_chunks: int = 8, kernel_docs: Path | None = None,
                 kernel_files: int = 150) -> tuple[list[InputSpec], list[InputSpec]]:
    """Files under `work` and the InputSpecs of the pool and the target."""
    import py3langid

    work.mkdir(parents=True, exist_ok=True)
    pool_pages, articles = work / "web-pages-pool.jsonl", work / "target-articles.jsonl"
    with gzip.open(corpora / "web-pages.jsonl.gz", "rt") as f, open(pool_pages, "w") as pp, \
            open(articles, "w") as ta:
        for line in f:
            rec = json.loads(line)
            if _page_half(str(rec["id"])):
                pp.write(json.dumps({"id": rec["id"], "html": rec["html"]}) + "\n")
                continue
            text = html_text(rec["expected_html"], main_content=False).strip()
            if len(text) >= 200 and py3langid.classify(text[:2000])[0] == "en":
                ta.write(json.dumps({"id": rec["id"], "text": text}) + "\n")
    books = work / "target-books.jsonl"
    rng = np.random.default_rng(0)
    with gzip.open(corpora / "books.jsonl.gz", "rt") as f, open(books, "w") as out:
        for line in f:
            rec = json.loads(line)
            chunks = chunk_paragraphs(rec["text"], 2000)
            for i in sorted(rng.choice(len(chunks), min(book_chunks, len(chunks)), False)):
                out.write(json.dumps({"id": f"{rec['id']}:{i}", "text": chunks[i]}) + "\n")
    pool = [InputSpec(path=str(p)) for p in sorted(corpora.glob("*.warc.gz"))]
    pool += [InputSpec(path=str(p)) for p in sorted(corpora.glob("cc_en_head-*.jsonl.gz"))]
    pool += [InputSpec(path=str(p)) for p in sorted(corpora.glob("dolma-*.jsonl.gz"))]
    pool += [InputSpec(path=str(pool_pages), html_field="html")]
    pool += [InputSpec(path=str(p)) for p in crawl]
    target = [InputSpec(path=str(articles)), InputSpec(path=str(books))]
    if kernel_docs is not None:
        target.append(InputSpec(path=str(write_kernel_docs(kernel_docs, work, kernel_files))))
    if debian is not None:
        html = debian / "usr/share/doc/debian-handbook/html/en-US"
        target.append(InputSpec(path=str(html / "*.html")))
    return pool, target


def write_kernel_docs(package: Path, work: Path, n_files: int) -> Path:
    """~2 KB chunks of `n_files` reStructuredText files (a seeded sample) of an unpacked
    linux-doc package (`apt-get download linux-doc-6.1`): informative technical prose."""
    root = package / "usr/share/doc"
    files = sorted(root.glob("linux-doc-*/Documentation/**/*.rst.gz"))
    if not files:
        raise FileNotFoundError(f"no Documentation/**/*.rst.gz under {root}")
    pick = np.random.default_rng(0).choice(len(files), min(n_files, len(files)), replace=False)
    out = work / "target-kernel-docs.jsonl"
    with open(out, "w") as f:
        for i in sorted(pick):
            text = gzip.open(files[i], "rt", errors="replace").read()
            for j, chunk in enumerate(chunk_paragraphs(text, 2000)[:3]):
                f.write(json.dumps({"id": f"{files[i].name}:{j}", "text": chunk}) + "\n")
    return out


def load_natural(corpora: Path, work: Path, debian: Path | None = None,
                 crawl: list[Path] | None = None, eval_share: float = 0.5,
                 target_fit: float = 0.4, target_reward: float = 0.3, book_chunks: int = 8,
                 kernel_docs: Path | None = None, kept: Path | None = None) -> NaturalData:
    """`kept`: keep/reject judgments of training-half crawl documents (jsonl of `sha1` of the
    text, `keep`): the kept ones leave the pool and join the target -- crawl text a reader
    would keep is the most direct statement of what the user wants from their crawl."""
    pool_specs, target_specs = write_inputs(corpora, work, debian, crawl or [], book_chunks,
                                            kernel_docs)
    docs = read_documents(pool_specs)
    keep = distinct(docs.texts)
    texts = [docs.texts[i] for i in keep]
    origins = [docs.origins[i] for i in keep]
    u = text_hash_unit(texts, salt=5)
    chosen = np.zeros(len(texts), bool)
    kept_texts: list[str] = []
    if kept is not None:
        rows = [json.loads(line) for line in kept.read_text().splitlines() if line.strip()]
        judged = {r["sha1"]: int(r["keep"]) for r in rows}
        sha = [hashlib.sha1(t.encode()).hexdigest() for t in texts]
        chosen = np.array([judged.get(h, 0) == 1 for h in sha]) & (u >= eval_share)
        kept_texts = [t for t, c in zip(texts, chosen, strict=True) if c]
        target_specs = [*target_specs, InputSpec(path=str(_write_texts(
            work / "target-kept-crawl.jsonl", kept_texts)))]

    def part(mask: np.ndarray) -> Documents:
        idx = np.flatnonzero(mask)
        return Documents([texts[i] for i in idx], [origins[i] for i in idx])

    goal = read_documents(target_specs, min_chars=200)
    target = split_target(distinct_texts(goal.texts), target_fit, target_reward)
    return NaturalData(part((u >= eval_share) & ~chosen), part(u < eval_share), target,
                       pool_specs, target_specs, tuple(kept_texts))


def write_loop_inputs(data: NaturalData, out: Path) -> tuple[Path, Path]:
    """The closed loop's natural inputs (configs/loop_natural.yaml): the pool's selection half
    as candidates and the target's evaluation part as the loop's clean text. The shipped default
    policy (the loop's round-0 policy) was fitted on the pool's training half and the target's
    fit and reward parts, so no text the loop selects from or is judged on entered it."""
    out.mkdir(parents=True, exist_ok=True)
    return (_write_texts(out / "pool.jsonl", data.pool_eval.texts),
            _write_texts(out / "target.jsonl", data.target.evaluation))


def _write_texts(path: Path, texts: list[str]) -> Path:
    with open(path, "w") as f:
        for i, text in enumerate(texts):
            f.write(json.dumps({"id": str(i), "text": text}) + "\n")
    return path


def distinct_texts(texts: list[str]) -> list[str]:
    return [texts[i] for i in distinct(texts)]
