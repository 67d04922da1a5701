"""The evaluation pool: clean text + real junk + labelled corruptions at a chosen noise rate.

`Sources` holds clean documents and junk documents by kind. Two builders:
- `corpora_sources(dir)`: real data from a corpora folder (../shared/corpora): book chunks and
  the clean article text (`expected_html`) of English web pages as clean; the boilerplate of
  those pages (page text minus article lines), crawl WARC spam and non-English articles as junk.
- `synthetic_sources(clean)`: any clean texts (e.g. curator.demo_corpus) plus corruptions only.
Both add corruptions of clean documents: token-shuffled text, repeated lines, character soup,
off-language (a letter cipher when no real non-English text is at hand) and near-duplicates.

`build_pool` then draws a pool of n documents with `noise` junk share (junk kinds mixed evenly),
and a clean held-out split that is never in the pool (disjoint clean documents, not corrupted).
"""

from __future__ import annotations

import gzip
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa

CLEAN = "clean"
CORRUPTIONS = ("token_shuffle", "repeated_lines", "char_soup", "off_language", "near_duplicate")


def clip_text(text: str, max_chars: int) -> str:
    """`text`'s first `max_chars` characters, ending at the last whitespace inside them (or
    hard at `max_chars` when there is none), so no word is cut in half."""
    if len(text) <= max_chars:
        return text
    cut = text[:max_chars]
    space = max(cut.rfind(" "), cut.rfind("\n"), cut.rfind("\t"))
    return cut[:space] if space > 0 else cut


@dataclass
class Sources:
    clean: list[str]
    junk: dict[str, list[str]] = field(default_factory=dict)


@dataclass(frozen=True)
class Pool:
    texts: pa.Array  # string, the candidate documents (shuffled)
    labels: pa.Array | None  # string: "clean" or the junk kind; None for a natural pool
    heldout: list[str]  # clean documents never in the pool: the reward's held-out text
    # text the target-aware features and the reference LM are fitted on; empty = `heldout`
    # (a labelled pool has only one clean split); natural pools keep the two disjoint
    target: list[str] = field(default_factory=list)

    @property
    def is_junk(self) -> np.ndarray | None:
        if self.labels is None:
            return None
        return np.asarray(self.labels.to_numpy(zero_copy_only=False) != CLEAN)

    @property
    def fit_text(self) -> list[str]:
        return self.target or self.heldout

    def __len__(self) -> int:
        return len(self.texts)

    def without(self, drop: np.ndarray) -> Pool:
        """The pool minus the documents where `drop` is True (e.g. near-duplicate copies)."""
        keep = pa.array(~np.asarray(drop, bool))
        labels = None if self.labels is None else self.labels.filter(keep)
        return Pool(self.texts.filter(keep), labels, self.heldout, self.target)


def chunk_lines(text: str, lines_per_doc: int = 30, min_chars: int = 400) -> list[str]:
    """Cut a long text into documents of `lines_per_doc` non-blank lines (book paragraphs)."""
    lines = [ln for ln in text.splitlines() if ln.strip()]
    docs = ["\n".join(lines[i : i + lines_per_doc]) for i in range(0, len(lines), lines_per_doc)]
    return [d for d in docs if len(d) >= min_chars]


def chunk_paragraphs(text: str, target_chars: int = 2000) -> list[str]:
    """Greedy groups of whole lines of about `target_chars` (a book cut into documents)."""
    chunks, cur, size = [], [], 0
    for line in text.split("\n"):
        cur.append(line)
        size += len(line) + 1
        if size >= target_chars:
            chunks.append("\n".join(cur).strip("\n"))
            cur, size = [], 0
    if cur:
        chunks.append("\n".join(cur).strip("\n"))
    return [c for c in chunks if c]


def html_text(html: str, main_content: bool) -> str:
    from resiliparse.extract.html2text import extract_plain_text
    from resiliparse.parse.html import HTMLTree

    tree = HTMLTree.parse(html)
    return extract_plain_text(tree, preserve_formatting=True, main_content=main_content)


def corpora_sources(corpora: str | Path, max_books: int | None = None,
                    lines_per_doc: int = 30) -> Sources:
    """Real clean text and real junk from a corpora folder (see module doc)."""
    import py3langid

    root = Path(corpora)
    clean: list[str] = []
    with gzip.open(root / "books.jsonl.gz", "rt") as f:
        for i, line in enumerate(f):
            if max_books is not None and i >= max_books:
                break
            clean.extend(chunk_lines(json.loads(line)["text"], lines_per_doc))
    boilerplate: list[str] = []
    off_language: list[str] = []
    with gzip.open(root / "web-pages.jsonl.gz", "rt") as f:
        for line in f:
            rec = json.loads(line)
            article = html_text(rec["expected_html"], main_content=False).strip()
            if len(article) < 200:
                continue
            if py3langid.classify(article[:2000])[0] != "en":
                off_language.append(article)
                continue
            clean.append(article)
            kept = {ln.strip() for ln in article.splitlines()}
            page = html_text(rec["html"], main_content=False)
            rest = [ln for ln in page.splitlines() if ln.strip() and ln.strip() not in kept]
            if sum(len(ln) for ln in rest) >= 100:
                boilerplate.append("\n".join(rest))
    spam = _warc_texts(root / "crawl-spam-mix.warc.gz")
    junk = {"boilerplate": boilerplate, "warc_spam": spam}
    if off_language:
        junk["off_language"] = off_language
    return Sources(clean, junk)


def _warc_texts(path: Path) -> list[str]:
    from connectors.warc import read_warc
    from curator.config import InputSpec, ReadConfig

    spec = InputSpec(path=str(path), format="warc")
    texts: list[str] = []
    for table in read_warc(str(path), spec, ReadConfig()):
        texts.extend(t for t in table.column("text").to_pylist() if t and len(t) >= 100)
    return texts


# --- corruptions of clean documents (each labelled with its kind) ---

def token_shuffle(text: str, rng: np.random.Generator) -> str:
    words = text.split()
    return " ".join(words[i] for i in rng.permutation(len(words)))


def repeated_lines(text: str, rng: np.random.Generator) -> str:
    lines = [ln for ln in text.splitlines() if ln.strip()] or [text]
    picked = [lines[i] for i in rng.integers(0, len(lines), size=min(3, len(lines)))]
    reps = max(4, len(text) // max(1, sum(len(p) for p in picked)))
    return "\n".join(picked * reps)


def char_soup(text: str, rng: np.random.Generator) -> str:
    alphabet = np.array(list("abcdefghijklmnopqrstuvwxyz0123456789#@$%&*!?;:/\\|<>{}[]=+_~^"))
    chars = alphabet[rng.integers(0, len(alphabet), size=len(text))]
    spaces = rng.random(len(text)) < 0.12
    chars[spaces] = " "
    return "".join(chars.tolist())


_CIPHER_FROM = "abcdefghijklmnopqrstuvwxyz"
_CIPHER_TO = "ezyoaqxuipwkvhsjcnbmlgtfrd"  # fixed letter permutation: a "language" no one speaks


def cipher_language(text: str, rng: np.random.Generator) -> str:
    del rng
    return text.translate(str.maketrans(_CIPHER_FROM + _CIPHER_FROM.upper(),
                                        _CIPHER_TO + _CIPHER_TO.upper()))


def near_duplicate(text: str, rng: np.random.Generator) -> str:
    words = text.split(" ")
    for i in rng.integers(0, len(words), size=max(1, len(words) // 30)):
        words[i] = words[rng.integers(0, len(words))]
    return " ".join(words)


CORRUPT_BY_KIND = {
    "token_shuffle": token_shuffle, "repeated_lines": repeated_lines, "char_soup": char_soup,
    "off_language": cipher_language, "near_duplicate": near_duplicate,
}


def synthetic_sources(clean: list[str]) -> Sources:
    """Clean texts only; every junk kind comes from `build_pool`'s corruptions."""
    return Sources(list(clean), {})


def demo_sources(lines_per_doc: int = 20) -> Sources:
    """Text any machine has (curator.demo_corpus: pydoc topics, package descriptions), chunked."""
    from curator.demo_corpus import package_descriptions, pydoc_topics

    clean: list[str] = []
    for rec in [*pydoc_topics(), *package_descriptions()]:
        clean.extend(chunk_lines(rec["text"], lines_per_doc))
    return synthetic_sources(clean)


def build_pool(sources: Sources, n_docs: int, noise: float, seed: int = 0,
               heldout_docs: int = 50, corruptions: tuple[str, ...] = CORRUPTIONS) -> Pool:
    """`n_docs` candidates with a `noise` share of junk, plus a disjoint clean held-out split.

    Junk slots are spread evenly over the real junk kinds of `sources` and the corruption
    kinds; a corruption is applied to a clean document outside the pool's clean part and the
    held-out split, except near-duplicates, which copy a pool document (that is what they are).
    """
    if not 0 <= noise < 1:
        raise ValueError(f"noise={noise} must be in [0, 1)")
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(sources.clean))
    n_junk = int(round(noise * n_docs))
    n_clean = n_docs - n_junk
    need = n_clean + heldout_docs
    if need > len(order):
        raise ValueError(f"{len(order)} clean documents cannot fill {n_clean} clean pool docs + "
                         f"{heldout_docs} held-out; lower n_docs or heldout_docs")
    heldout = [sources.clean[i] for i in order[:heldout_docs]]
    clean = [sources.clean[i] for i in order[heldout_docs:need]]
    spare = [sources.clean[i] for i in order[need:]] or clean
    kinds = sorted(sources.junk) + [c for c in corruptions if c not in sources.junk]
    texts, labels = list(clean), [CLEAN] * n_clean
    for j in range(n_junk):
        kind = kinds[j % len(kinds)]
        if kind in sources.junk and sources.junk[kind]:
            pick = sources.junk[kind]
            texts.append(pick[int(rng.integers(0, len(pick)))])
        else:
            base = clean if kind == "near_duplicate" and clean else spare
            texts.append(CORRUPT_BY_KIND[kind](base[int(rng.integers(0, len(base)))], rng))
        labels.append(kind)
    perm = rng.permutation(len(texts))
    return Pool(pa.array([texts[i] for i in perm], pa.string()),
                pa.array([labels[i] for i in perm], pa.string()), heldout)
