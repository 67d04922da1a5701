"""Vectorized text helpers shared by the rule steps: split, count, hash, scatter.

Every rule family needs the same few shapes: a batch of documents split into words / lines /
paragraphs as one Arrow list array (flattened values + a parent index per value), per-document
sums over those values (np.bincount over the parent indices), per-document duplicate counting
(polars group_by on (doc, item)) and per-document word n-gram statistics (64-bit rolling hashes
of word hashes, sorted once per n with numpy). Nothing here loops over documents in Python.

Word tokenization approximates spaCy's English tokenizer, which datatrove 0.10.1 uses for
`split_into_words`: whitespace split, then punctuation at the edges of a token becomes its own
token (`world,` -> `world` `,`), clitics split (`don't` -> `do` `n't`, `it's` -> `it` `'s`),
hyphens between letters split, and infix punctuation inside numbers/abbreviations stays
(`3.5`, `1,000`, `U.S.A`). Punctuation tokens matter: datatrove divides by the token count
including them (alpha-word ratio, symbol ratio, newline/word ratio), so a plain whitespace split
disagrees on docs near those thresholds. The remaining differences (spaCy's abbreviation list,
URL/emoticon special cases) move a handful of tokens per document; see benchmarks/results/rules.md.
"""

from __future__ import annotations

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc

from curator.stages.regex_rewrite import rewrite_all
from curator.step import alive_mask

# datatrove.utils.text.TERMINAL_PUNCTUATION (159 code points), copied so the service does not
# import datatrove (a benchmark-only dependency). FineWeb's line_punct rule ends lines with these.
TERMINAL_PUNCTUATION = (
    "!.?\u0589\u061d\u061e\u061f\u06d4\u0700\u0701\u0702\u07f9\u0837\u0839\u083d\u083e\u0964"
    "\u0965\u104a\u104b\u1362\u1367\u1368\u166e\u1735\u1736\u17d4\u17d5\u17d6\u17d9\u17da\u1803"
    "\u1809\u1944\u1945\u1aa8\u1aa9\u1aaa\u1aab\u1b5a\u1b5b\u1b5e\u1b5f\u1b7d\u1b7e\u1c3b\u1c3c"
    "\u1c7e\u1c7f\u203c\u203d\u2047\u2048\u2049\u2e2e\u2e3c\u2e53\u2e54\u3002\ua4ff\ua60e\ua60f"
    "\ua6f3\ua6f7\ua876\ua877\ua8ce\ua8cf\ua92f\ua9c8\ua9c9\uaa5d\uaa5e\uaa5f\uaaf0\uaaf1\uabeb"
    "\ufe52\ufe56\ufe57\uff01\uff0e\uff1f\uff61\U00010a56\U00010a57\U00010f55\U00010f56"
    "\U00010f57\U00010f58\U00010f59\U00010f86\U00010f87\U00010f88\U00010f89\U00011047\U00011048"
    "\U000110be\U000110bf\U000110c0\U000110c1\U00011141\U00011142\U00011143\U000111c5\U000111c6"
    "\U000111cd\U000111de\U000111df\U00011238\U00011239\U0001123b\U0001123c\U000112a9\U0001144b"
    "\U0001144c\U000115c2\U000115c3\U000115c9\U000115ca\U000115cb\U000115cc\U000115cd\U000115ce"
    "\U000115cf\U000115d0\U000115d1\U000115d2\U000115d3\U000115d4\U000115d5\U000115d6\U000115d7"
    "\U00011641\U00011642\U0001173c\U0001173d\U0001173e\U00011944\U00011946\U00011a42\U00011a43"
    "\U00011a9b\U00011a9c\U00011c41\U00011c42\U00011ef7\U00011ef8\U00011f43\U00011f44\U00016a6e"
    "\U00016a6f\U00016af5\U00016b37\U00016b38\U00016b44\U00016e98\U0001bc9f\U0001da88"
)
# datatrove.utils.text.PUNCTUATION_SET minus TERMINAL_PUNCTUATION: a token made only of these
# characters is a "symbol" token that Gopher's word count leaves out.
_OTHER_PUNCTUATION = (
    "".join(map(chr, [*range(0, 9), 11, 12, *range(13, 32), *range(127, 160)]))
    + "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~\xab\xb4\xbb\u2013\u2014\u2019\u201c\u201d\u201e\u2026"
    "\u2236\u2501\u25ba\u3001\u3008\u3009\u300a\u300b\u300c\u300d\u3010\u3011\uff05\uff08\uff09"
    "\uff0c\uff11\uff1a\uff1b\uff5e"
)
PUNCTUATION = "".join(sorted(set(TERMINAL_PUNCTUATION) | set(_OTHER_PUNCTUATION)))


def char_class(chars: str, negate: bool = False) -> str:
    """An RE2 character class matching exactly `chars` (every char escaped as \\x{hex})."""
    body = "".join(f"\\x{{{ord(c):x}}}" for c in sorted(set(chars)))
    return f"[{'^' if negate else ''}{body}]"


# spaCy-like tokenization as a chain of RE2 rewrites that only insert spaces, then one
# whitespace split. Characters that must survive as part of a word (a clitic's apostrophe, an
# abbreviation's final period) are parked as private-use placeholders, which the punctuation
# classes below do not match, and restored at the end. RE2's global replace does not revisit a
# consumed character, so rules that can overlap (`a-b-c`, `!!!`) run twice.
_APOS, _RSQUO, _PERIOD = "\ue001", "\ue002", "\ue003"
_PUNCT = r"[^\pL\pN\pM\s\x{e001}-\x{e003}]"  # punctuation/symbol char (not a placeholder)
_EDGE = r"[^\pL\pN\pM\s\-\x{e001}-\x{e003}]"  # spaCy never splits hyphens off a token edge
_NOT_RUN = r"[^\pL\pN\pM\s.\-\x{e001}-\x{e003}]"  # punctuation that never forms a run
_ABBREV = "Mr|Mrs|Ms|Dr|Jr|Sr|St|Mt|Prof|Rev|Gen|Col|Capt|Lt|Sgt|Gov|Sen|Rep|Inc|Ltd|Co|Corp|vs"
_NT_STEMS = "(?i:do|does|did|is|was|are|were|would|could|should|have|has|had|ai|must|need)"
_CLITIC = "s|S|m|M|d|D|ll|LL|re|RE|ve|VE"
_TOKEN_REWRITES: list[tuple[str, str]] = [
    # clitics: don't -> do n't, it's -> it 's
    (r"(\pL)([nN])'([tT])([^\pL\pN]|$)", "\\1 \\2" + _APOS + "\\3\\4"),
    (r"(\pL)([nN])’([tT])([^\pL\pN]|$)", "\\1 \\2" + _RSQUO + "\\3\\4"),
    (rf"(\pL)'({_CLITIC})([^\pL\pN]|$)", "\\1 " + _APOS + "\\2\\3"),
    (rf"(\pL)’({_CLITIC})([^\pL\pN]|$)", "\\1 " + _RSQUO + "\\2\\3"),
    # abbreviations keep their final period: U.S., a.m., Mr.
    (r"(\.\pL)\.", "\\1" + _PERIOD),
    (rf"(^|\s)({_ABBREV})\.", "\\1\\2" + _PERIOD),
    # tokenizer exceptions: dont -> do nt, cannot -> can not
    (rf"(^|\s)({_NT_STEMS})((?i:nt))([^\pL\pN]|$)", "\\1\\2 \\3\\4"),
    (r"(^|\s)((?i:can))((?i:not))([^\pL\pN]|$)", "\\1\\2 \\3\\4"),
    # infixes spaCy splits: hyphens before a letter or between digits, `, : / < > =` before a
    # letter, ellipses between words
    (r"([\pL\pN])([-–—]+)(\pL)", "\\1 \\2 \\3"),
    (r"([\pL\pN])([-–—]+)(\pL)", "\\1 \\2 \\3"),
    (r"(\pN)(-)(\pN)", "\\1 \\2 \\3"),
    (r"([\pL\pN])([/:<>=])(\pL)", "\\1 \\2 \\3"),
    (r"(\pL)(,)(\pL)", "\\1 \\2 \\3"),
    (r"([^\s.])(\.{2,})([^\s.])", "\\1 \\2 \\3"),
    # punctuation runs at the start / end of a token become separate tokens ...
    (rf"(^|\s)({_EDGE}+)", "\\1\\2 "),
    (rf"({_EDGE}+)(\s|$)", " \\1\\2"),
    # ... one per character, except runs of periods (ellipsis) and hyphens (dash): a space
    # between two adjacent punctuation characters unless both are '.' or '-'. One rule for
    # both orders, run twice: a first pass splits at least one side of every character with
    # a split due on both sides, so what is left is disjoint pairs, which the second pass
    # splits (the same text as the four one-order passes, at half the scans).
    (rf"({_NOT_RUN})({_PUNCT})|({_PUNCT})({_NOT_RUN})", "\\1\\3 \\2\\4"),
    (rf"({_NOT_RUN})({_PUNCT})|({_PUNCT})({_NOT_RUN})", "\\1\\3 \\2\\4"),
    (_APOS, "'"),
    (_RSQUO, "’"),
    (_PERIOD, "."),
]


def split_words(text: pa.Array | pa.ChunkedArray) -> pa.ListArray:
    """Documents -> list<string> of word/punctuation tokens (spaCy-like, see module doc)."""
    out = rewrite_all(pc.utf8_trim_whitespace(text), _TOKEN_REWRITES)
    return _as_list(pc.utf8_split_whitespace(pc.utf8_trim_whitespace(out)))


class SharedWords:
    """`split_words` of a batch's text, computed once for every rule step that reads it.

    The word split (17 regex rewrites) was the most expensive kernel of the rules, and Gopher
    repetition and Gopher quality split the same text. A step asks with its table and alive
    mask: when the table's text column is the one split last (the same buffers: not rewritten
    since) and its alive rows are a subset of the rows split then, the cached lists are taken
    for them; otherwise the text is split and cached. The cache holds the text column itself,
    so its buffers cannot be freed and reused by another batch while their address is the key.
    """

    def __init__(self) -> None:
        self._text: pa.ChunkedArray | None = None
        self._rows = np.zeros(0, bool)
        self._words: pa.ListArray | None = None

    def __call__(self, table: pa.Table, alive: np.ndarray, text: pa.Array) -> pa.ListArray:
        column = table.column("text")
        if (self._words is not None and self._text is not None and len(alive) == len(self._rows)
                and _same_buffers(column, self._text) and not (alive & ~self._rows).any()):
            slot = np.cumsum(self._rows) - 1  # row -> its index among the rows split then
            return self._words.take(pa.array(slot[alive], pa.int64()))
        words = split_words(text)
        self._text, self._rows, self._words = column, alive.copy(), words
        return words


def _same_buffers(a: pa.ChunkedArray, b: pa.ChunkedArray) -> bool:
    def key(col: pa.ChunkedArray) -> list[tuple]:
        return [(c.offset, len(c), *(buf.address if buf is not None else 0
                                     for buf in c.buffers())) for c in col.chunks]

    return key(a) == key(b)


def split_on(text: pa.Array | pa.ChunkedArray, pattern: str, regex: bool = False) -> pa.ListArray:
    """Documents -> list<string> split on a literal separator or an RE2 pattern."""
    fn = pc.split_pattern_regex if regex else pc.split_pattern
    return _as_list(fn(text, pattern=pattern))


def _as_list(arr: pa.Array | pa.ChunkedArray) -> pa.ListArray:
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks() if arr.num_chunks != 1 else arr.chunk(0)
    return arr


def list_parents(lists: pa.ListArray) -> np.ndarray:
    """Parent document index of every flattened value (int64)."""
    return pc.list_parent_indices(lists).to_numpy().astype(np.int64, copy=False)


def list_lengths(lists: pa.ListArray) -> np.ndarray:
    """Number of values per document (0 for null/empty)."""
    return pc.fill_null(pc.list_value_length(lists), 0).to_numpy().astype(np.int64)


def char_lengths(strings: pa.Array) -> np.ndarray:
    """Code-point length of each string (Python's len)."""
    return pc.fill_null(pc.utf8_length(strings), 0).to_numpy().astype(np.int64)


def per_doc_sum(values: np.ndarray, parents: np.ndarray, n_docs: int) -> np.ndarray:
    """Sum `values` (bool/int/float per flattened item) into one value per document."""
    return np.bincount(parents, weights=values.astype(np.float64), minlength=n_docs)


def per_doc_count(mask: np.ndarray | pa.Array, parents: np.ndarray, n_docs: int) -> np.ndarray:
    """Count True items per document."""
    if not isinstance(mask, np.ndarray):
        mask = pc.fill_null(mask, False).to_numpy(zero_copy_only=False)
    return np.bincount(parents[mask], minlength=n_docs).astype(np.int64)


def dup_counts(items: pa.Array, parents: np.ndarray, n_docs: int) -> tuple[np.ndarray, np.ndarray]:
    """Per document: (# items equal to an earlier item, chars in those repeats).

    datatrove's `find_duplicates`: the first occurrence of each distinct item is free, every
    later one counts once with its full length. Grouping on (doc, item) gives the same numbers.
    """
    if len(items) == 0:
        return np.zeros(n_docs, np.int64), np.zeros(n_docs, np.int64)
    df = pl.DataFrame({"doc": parents, "item": pl.from_arrow(items)})
    groups = (
        df.group_by("doc", "item")
        .agg(pl.len().alias("n"))
        .filter(pl.col("n") > 1)
        .select(
            "doc",
            (pl.col("n") - 1).alias("dup"),
            ((pl.col("n") - 1) * pl.col("item").str.len_chars()).alias("dup_chars"),
        )
    )
    doc = groups["doc"].to_numpy()
    dup = np.bincount(doc, weights=groups["dup"].to_numpy(), minlength=n_docs)
    chars = np.bincount(doc, weights=groups["dup_chars"].to_numpy(), minlength=n_docs)
    return dup.astype(np.int64), chars.astype(np.int64)


_NGRAM_MULT = np.uint64(0x9E3779B97F4A7C15)  # odd 64-bit constant: polynomial rolling hash base


class WordNgrams:
    """Word n-gram statistics of a batch, built once from the flattened word tokens.

    Positions are global indices into the flattened words; an n-gram starting at i is valid when
    it ends inside the same document. The n-gram key mixes the document index in, so one sort
    per n groups equal n-grams of the same document together (64-bit hash collisions between
    distinct n-grams are ~W^2/2^64, negligible).
    """

    def __init__(self, words: pa.ListArray):
        flat = pc.list_flatten(words)
        self.n_docs = len(words)
        self.parents = list_parents(words)
        self.word_len = char_lengths(flat)
        self.n_words = len(flat)
        offsets = words.offsets.to_numpy().astype(np.int64) - int(words.offsets[0].as_py())
        self.doc_start, self.doc_words = offsets[:-1], np.diff(offsets)
        self.doc_end = offsets[1:][self.parents] if self.n_words else np.zeros(0, np.int64)
        self.pos = np.arange(self.n_words, dtype=np.int64)
        hashes = pl.from_arrow(flat).hash(seed=0).to_numpy() if self.n_words else np.zeros(0)
        self._word_hash = hashes.astype(np.uint64)
        self._doc_salt = (self.parents.astype(np.uint64) + np.uint64(1)) * np.uint64(
            0xBF58476D1CE4E5B9
        )
        self._cum_len = np.concatenate([[0], np.cumsum(self.word_len)])
        self._hash = self._word_hash.copy()
        self._n = 1
        self._shared: tuple[int, np.ndarray] | None = None  # (n, repeated n-gram starts)

    def _advance_to(self, n: int) -> np.ndarray:
        """Rolling hash of the n-gram starting at each position (valid where it fits)."""
        if n < self._n:
            self._hash, self._n = self._word_hash.copy(), 1
        with np.errstate(over="ignore"):
            while self._n < n:
                k = self._n
                h = self._hash
                h[: self.n_words - k] = h[: self.n_words - k] * _NGRAM_MULT + self._word_hash[k:]
                self._n += 1
        return self._hash

    def _keys(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        """Valid n-gram start positions (increasing) and their (doc, n-gram) keys."""
        h = self._advance_to(n)
        start = np.flatnonzero(self.pos + n <= self.doc_end)
        with np.errstate(over="ignore"):
            key = h[start] ^ self._doc_salt[start]
        return start, key

    def top_ngram_chars(self, n: int) -> np.ndarray:
        """Per doc: len(" ".join(most common n-gram)) * its count (datatrove `find_top_duplicate`).

        Ties go to the n-gram seen first, as `Counter.most_common` does (groups kept in order of
        first occurrence, arg_max takes the first maximum); docs with fewer than n words get 0
        (datatrove skips the check). Only repeated n-grams are grouped: a doc with none has
        every count 1, so its first n-gram wins; a doc with one has a count >= 2 among them.
        Called for increasing n (2, 3, 4), each pass after the first looks only at the previous
        pass's repeated n-grams, as `dup_ngram_chars` does (the full passes for 3 and 4 were
        ~15% of the rule's time on the whole-pipeline corpus).
        """
        out = np.zeros(self.n_docs, dtype=np.int64)
        start, key = self._repeated_keys(n, first_per_doc=out)
        if len(start) == 0:
            return out
        runs = (
            pl.DataFrame({"key": key, "pos": start})
            .group_by("key", maintain_order=True)
            .agg(pl.len().alias("count"), pl.col("pos").first())
        )
        runs = runs.with_columns(doc=pl.Series(self.parents[runs["pos"].to_numpy()]))
        best = runs.group_by("doc").agg(
            pl.col("pos").get(pl.col("count").arg_max()), pl.col("count").max()
        )
        doc = best["doc"].to_numpy()
        out[doc] = self._ngram_chars(best["pos"].to_numpy(), n) * best["count"].to_numpy()
        return out

    def _ngram_chars(self, pos: np.ndarray, n: int) -> np.ndarray:
        """len(" ".join(words)) of the n-grams starting at `pos`."""
        return self._cum_len[pos + n] - self._cum_len[pos] + (n - 1)

    def _candidates(self, n: int) -> np.ndarray | None:
        """Start positions whose n-gram can occur twice in its document: those whose
        (n-1)-gram does (two equal n-grams begin with equal (n-1)-grams), when the (n-1)-gram
        pass ran just before; None = every valid start. On natural text a few percent of
        positions survive each step, so the passes for larger n touch little."""
        if self._shared is not None and self._shared[0] == n - 1:
            return self._shared[1]
        return None

    def _repeated_keys(
        self, n: int, first_per_doc: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """(start positions, keys) of the n-grams that occur at least twice in their document,
        in position order; remembered as the next pass's candidates. `first_per_doc`: set to
        the chars of each document's first n-gram (0 for documents shorter than n words)."""
        if first_per_doc is not None:
            long_enough = self.doc_words >= n
            first_per_doc[long_enough] = self._ngram_chars(self.doc_start[long_enough], n)
        cand = self._candidates(n)
        if cand is None:
            start, key = self._keys(n)
        else:
            start = cand[cand + n <= self.doc_end[cand]]
            key = self._hash_at(start, n)
        if len(start):
            dup = pl.Series(key).is_duplicated().to_numpy()
            start, key = start[dup], key[dup]
        self._shared = (n, start)
        return start, key

    def _hash_at(self, start: np.ndarray, n: int) -> np.ndarray:
        """Keys of the n-grams at `start` only (same values as `_keys`)."""
        with np.errstate(over="ignore"):
            h = self._word_hash[start].copy()
            for k in range(1, n):
                h = h * _NGRAM_MULT + self._word_hash[start + k]
            return h ^ self._doc_salt[start]

    def dup_ngram_chars(self, n: int) -> np.ndarray:
        """Per doc: chars of words covered by an n-gram that already occurred earlier in the doc.

        Gopher's "duplicate n-gram character fraction" as a coverage mask. datatrove's
        `find_all_duplicate` walks greedily (on a repeat it jumps n words and does not record
        the skipped n-grams); the mask equals the greedy count on ordinary repeated passages and
        can exceed it by < n words on runs of one repeated word. Called for increasing n, each
        pass only looks at the previous pass's repeated n-grams.
        """
        start, key = self._repeated_keys(n)
        if len(start) == 0:
            return np.zeros(self.n_docs, dtype=np.int64)
        first = pl.Series(key).is_first_distinct().to_numpy()  # hash pass, no sort
        rep = start[~first]  # increasing
        # the words covered by [rep_k, rep_k + n) for all k, as disjoint pieces: each interval
        # up to where the next one starts (an interval never crosses its document's end)
        end = np.minimum(rep + n, np.r_[rep[1:], np.iinfo(np.int64).max])
        chars = self._cum_len[end] - self._cum_len[rep]
        return per_doc_sum(chars, self.parents[rep], self.n_docs).astype(np.int64)


def scatter(values: pa.Array | np.ndarray, alive: np.ndarray, type_: pa.DataType) -> pa.Array:
    """Values computed for the alive rows -> full-length column, null where not alive."""
    arr = values if isinstance(values, pa.Array) else pa.array(values)
    arr = arr.cast(type_)
    if alive.all():
        return arr
    idx = np.full(len(alive), -1, dtype=np.int64)
    idx[alive] = np.arange(int(alive.sum()), dtype=np.int64)
    return pc.take(arr, pa.array(idx, mask=idx < 0))


def safe_ratio(num: np.ndarray, den: np.ndarray) -> pa.Array:
    """num / den as float64 with null where den == 0 (a ratio undefined for an empty doc)."""
    num = np.asarray(num, dtype=np.float64)
    den = np.asarray(den, dtype=np.float64)
    zero = den == 0
    ratio = np.divide(num, np.where(zero, 1.0, den))
    return pa.array(ratio, mask=zero)


def alive_text(table: pa.Table) -> tuple[np.ndarray, pa.Array]:
    """(alive mask as numpy, text of the alive rows as one string array; null text -> "")."""
    alive = alive_mask(table)
    alive_np = alive.to_numpy(zero_copy_only=False)
    text = pc.fill_null(pc.filter(table.column("text"), alive), "")
    if isinstance(text, pa.ChunkedArray):
        text = text.combine_chunks() if text.num_chunks else pa.array([], pa.string())
    return alive_np, text.cast(pa.string())


# str.splitlines() boundaries; after Normalize only \n is left, but rules must not depend on it
_LINE_BREAK = r"\r\n|[\n\r\x0b\x0c\x1c\x1d\x1e\x{85}\x{2028}\x{2029}]"


def splitlines(text: pa.Array) -> pa.ListArray:
    """Python's str.splitlines(): a trailing line break does not open an empty last line."""
    body = pc.replace_substring_regex(text, pattern=f"(?:{_LINE_BREAK})$", replacement="")
    lines = split_on(body, _LINE_BREAK, regex=True)
    # "" splits into [""], but "".splitlines() == []: empty docs have no lines.
    empty = pc.equal(pc.utf8_length(text), 0)
    return _as_list(pc.if_else(empty, pa.scalar([], lines.type), lines))
