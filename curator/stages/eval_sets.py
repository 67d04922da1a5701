"""Evaluation files -> the EvalSet the decontaminate step checks against (driver side).

Read once per run by the driver, before any work, so that an unreadable file, a bad line or a
missing field fails there with ConfigError (naming decontaminate.paths and the fix), and workers
need neither the files nor the time to split them: they memory-map what `store_eval_set` wrote
into the run (the run folder is one every node sees, curator/output_place.py).
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from curator.config import ConfigError, DecontaminateConfig
from curator.rundir import RunDir
from curator.stages.decontaminate import EvalSet, ngram_keys, normalized_words, word_keys
from curator.stages.text_columns import split_words

_WHERE = "decontaminate.paths"


def read_items(path: str, cfg: DecontaminateConfig) -> pa.Array:
    """The evaluation items of one file, one string each (null/blank ones included: they are
    counted as skipped)."""
    from connectors.fs import open_input

    try:
        with open_input(path) as f:
            data = f.read()
    except (OSError, EOFError, ValueError) as exc:
        raise ConfigError(f"{_WHERE}: {path} cannot be read ({type(exc).__name__}: {exc}); "
                          "give a readable evaluation file or remove it") from None
    name = Path(path).name
    if name.endswith(".parquet"):
        return _record_items(path, _read_parquet(path, data, cfg.fields), cfg.fields)
    if name.endswith((".jsonl", ".jsonl.gz", ".jsonl.zst")):
        return _record_items(path, _read_jsonl(path, data), cfg.fields)
    return _txt_items(path, data, cfg.txt_items)


def _read_parquet(path: str, data: bytes, fields: list[str]) -> pa.Table:
    import pyarrow.parquet as pq

    try:
        pf = pq.ParquetFile(io.BytesIO(data))
        present = [f for f in fields if f in pf.schema_arrow.names]
        return pf.read(columns=present)
    except (pa.ArrowException, OSError) as exc:
        raise ConfigError(f"{_WHERE}: {path} is not a readable parquet file ({exc}); "
                          "fix or remove it") from None


def _read_jsonl(path: str, data: bytes) -> pa.Table:
    import pyarrow.json as pj

    try:  # one block: eval files are small, and a record must not straddle two blocks
        opts = pj.ReadOptions(block_size=max(len(data) + 1, 1 << 16))
        return pj.read_json(io.BytesIO(data), read_options=opts)
    except pa.ArrowException as exc:
        raise ConfigError(f"{_WHERE}: {path} is not JSON lines ({exc}); fix the file (one "
                          "JSON object per line) or remove it") from None


def _record_items(path: str, table: pa.Table, fields: list[str]) -> pa.Array:
    missing = [f for f in fields if f not in table.column_names]
    if missing:
        raise ConfigError(
            f"decontaminate.fields: {missing} missing in {path}; its fields are "
            f"{table.column_names}; set decontaminate.fields to the fields holding the text")
    parts = [_as_text(path, name, table.column(name).combine_chunks()) for name in fields]
    joined = parts[0] if len(parts) == 1 else pc.binary_join_element_wise(*parts, " ")
    return joined.cast(pa.string())


def _as_text(path: str, name: str, col: pa.Array) -> pa.Array:
    """A field as text: strings as they are, a list (MMLU's choices) joined with spaces,
    numbers and bools printed, null as ""."""
    try:
        if pa.types.is_list(col.type) or pa.types.is_large_list(col.type):
            col = pc.binary_join(col.cast(pa.list_(pa.string())), " ")
        return pc.fill_null(col.cast(pa.string()), "")
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        raise ConfigError(
            f"decontaminate.fields: {name!r} in {path} holds {col.type}, not text; name the "
            "fields that hold the text itself") from None


def _txt_items(path: str, data: bytes, how: str) -> pa.Array:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{_WHERE}: {path} is not UTF-8 text ({exc}); convert or remove it"
                          ) from None
    arr = pa.array([text], pa.string())
    if how == "file":
        return arr
    pattern = r"\r?\n" if how == "line" else r"\r?\n[ \t]*\r?\n"
    items = pc.list_flatten(pc.split_pattern_regex(arr, pattern))
    return items.filter(pc.greater(pc.utf8_length(pc.utf8_trim_whitespace(items)), 0))


def load_eval_set(cfg: DecontaminateConfig) -> EvalSet:
    """Read and index every evaluation file named by `cfg` (ConfigError on a bad one)."""
    names = list(cfg.benchmarks)
    words = []
    for path in cfg.benchmarks.values():
        flat, counts = normalized_words(split_words(read_items(path, cfg)))
        words.append((flat, counts))
    vocab = pc.unique(pa.chunked_array([f for f, _ in words], pa.string()).combine_chunks())
    vocab = vocab.take(pc.array_sort_indices(vocab))
    keys = word_keys(len(vocab))
    all_keys, all_bench = [np.zeros(0, np.uint64)], [np.zeros(0, np.int32)]
    counts_out: dict[str, dict[str, int]] = {}
    lengths: set[int] = set()
    for b, (name, (flat, counts)) in enumerate(zip(names, words, strict=True)):
        ids = pc.index_in(flat, value_set=vocab).to_numpy()
        key, stats = item_ngrams(keys[ids], counts, cfg.ngram, cfg.min_item_words)
        lengths |= set(stats.pop("lengths"))
        counts_out[name] = {**stats, "ngrams": len(key)}
        all_keys.append(key)
        all_bench.append(np.full(len(key), b, np.int32))
    key, bench = np.concatenate(all_keys), np.concatenate(all_bench)
    order = np.lexsort((bench, key))  # by key, then config order: a shared key's first owner
    key, bench = key[order], bench[order]
    first = np.r_[True, key[1:] != key[:-1]] if len(key) else np.zeros(0, bool)
    return EvalSet(names=names, ngram=cfg.ngram, lengths=sorted(lengths), vocab=vocab,
                   hashes=key[first], benchmark=bench[first], counts=counts_out)


def item_ngrams(keys: np.ndarray, counts: np.ndarray, ngram: int,
                min_item_words: int) -> tuple[np.ndarray, dict]:
    """Distinct n-gram keys of one benchmark's items, and what became of its items.

    An item of >= ngram words gives all its n-grams; one of min_item_words..ngram-1 words gives
    one key of all its words (matched as a shorter n-gram); shorter ones are skipped and
    counted, never silently lost."""
    short = (counts >= min_item_words) & (counts < ngram)
    lengths = sorted({ngram} | set(np.unique(counts[short]).tolist()))
    starts = np.cumsum(counts) - counts
    out = []
    for length, start, key in ngram_keys(keys, np.ones(len(keys), bool), counts, lengths):
        if length < ngram:  # only the whole short item, not windows of longer items
            start_of_item = np.isin(start, starts[short & (counts == length)])
            key = key[start_of_item]
        out.append(key)
    key = np.unique(np.concatenate(out)) if out else np.zeros(0, np.uint64)
    stats = {"items": len(counts), "full_items": int((counts >= ngram).sum()),
             "short_items": int(short.sum()),
             "skipped_items": int((counts < min(min_item_words, ngram)).sum()),
             "lengths": lengths}
    return key, stats


def store_eval_set(eval_set: EvalSet, run: RunDir) -> dict:
    """Write the set into the run (first session) or check it is the one the run started with
    (a resume): units already filtered used it. Returns its metadata (names, per-benchmark
    counts) for the stats."""
    meta = eval_set.meta()
    stored = run.read_marker("decontaminate")
    if stored is None:
        eval_set.save(run.eval_set)
        run.write_marker(meta, "decontaminate")
        return meta
    if stored["digest"] != meta["digest"]:
        raise ConfigError(
            f"{_WHERE}: the evaluation files now give other n-grams than when {run.root} "
            "started (a file was edited); restore them, or use a new output")
    return stored
