"""Runs a curation job on Ray: pass 1 -> global dedup -> tokenizer -> pass 2 -> catalog.

Every phase leaves a completion marker under RUN/_done; a re-run skips what is marked, so a
killed job resumes and, because units are deterministic, ends with the same files.
"""

from __future__ import annotations

import contextlib
import json
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import xxhash

from connectors.fs import remove_stale_temps
from connectors.registry import SourceUnit, expand_inputs, split_units
from connectors.spill import release_spills, spill_units, spillable
from curator.catalog import CatalogReader, build_catalog, query
from curator.config import ConfigError, CurateConfig, TokenizerConfig, check_or_record_config
from curator.fanout import run_units, start_local_fork_server, worker_pool
from curator.input_fingerprint import check_or_record_inputs
from curator.passes import Pass1Worker, Pass2Worker, unit_item
from curator.progress import PassBar, phase, say
from curator.ray_runtime import default_concurrency, ensure_ray, local_resources, runs_locally
from curator.run_lock import run_lock
from curator.rundir import RunDir
from curator.schema import KEPT
from curator.stats import UnitStats

if TYPE_CHECKING:
    from curator.run_mirror import RunMirror
    from curator.stages.decontaminate import EvalSet


def prepare_run_dir(cfg: CurateConfig, run: RunDir) -> None:
    """Create RUN or check that an existing RUN belongs to this very job (resume)."""
    run.root.mkdir(parents=True, exist_ok=True)
    check_or_record_config(cfg, run.config, "run")


def run_pass(
    worker_cls: type,
    phase: str,
    run: RunDir,
    items: list[dict],
    ctor_kwargs: dict,
    concurrency: int,
    quiet: bool,
    num_cpus: float = 1,
    total_docs: int | None = None,
    after_unit: Callable[[], object] | None = None,
) -> UnitStats:
    """Run one pass over the unmarked units; return the stats of all units (marked included).
    The bar counts documents as workers handle them (against `total_docs` when known);
    `after_unit` runs in the driver as each unit returns (a store output's push)."""
    total = UnitStats()
    pending = []
    for item in items:
        marker = run.read_marker(phase, item["idx"])
        if marker is None:
            pending.append(item)
        else:
            total = total + UnitStats.from_json(marker)
    units = (len(items) - len(pending), len(items))
    with PassBar(phase, total_docs, total.records, units, quiet) as bar:

        def on_result(row: dict) -> None:
            nonlocal total
            unit = UnitStats.from_json(json.loads(row["stats"]))
            total = total + unit
            bar.unit_done(unit.records, unit.chars_in)
            if after_unit is not None:
                after_unit()

        # A fresh session per call: only this driver's tries count against max_unit_attempts.
        kwargs = {**ctor_kwargs, "progress": bar.board, "session": uuid.uuid4().hex}
        run_units(worker_cls, pending, kwargs, concurrency, on_result, num_cpus=num_cpus)
    return total


def _tokenizer_sample(run: RunDir, n_units: int, fraction: float, seed: int) -> Iterator[str]:
    """Texts pass 2 will keep (alive after the rules, not a duplicate dedup removed) whose
    doc_id hash falls under `fraction`: deterministic, bounded by the sample size, not the
    corpus (pass-1 files are streamed a batch at a time). Duplicates stay out so that a text
    repeated across the corpus does not weigh in the vocabulary once per copy."""
    cut = int(fraction * 2**64)
    for idx in range(n_units):
        dups_path = run.dups(idx)
        dropped = (pq.read_table(dups_path, columns=["doc_id"]).column("doc_id").combine_chunks()
                   if dups_path.exists() else pa.array([], pa.string()))
        pf = pq.ParquetFile(run.pass1(idx))
        for rb in pf.iter_batches(columns=["doc_id", "decision", "text"], batch_size=4096):
            # column ops pick the kept rows; only their doc_ids are hashed one by one
            keep = pc.and_(pc.equal(rb.column("decision"), KEPT),
                           pc.invert(pc.is_in(rb.column("doc_id"), value_set=dropped)))
            rows = rb.filter(keep)
            for doc_id, text in zip(rows.column("doc_id").to_pylist(),
                                    rows.column("text").to_pylist(), strict=True):
                if xxhash.xxh3_64_intdigest(doc_id, seed=seed) < cut:
                    yield text


def prepare_tokenizer(
    cfg: CurateConfig, run: RunDir, alive_docs: int, alive_chars: int, n_units: int,
    threads: int = 1,
) -> None:
    """Train (or copy) RUN/tokenizer.model or RUN/tokenizer.json. With no surviving document
    there is nothing to train on and nothing to encode: no tokenizer is written, and pass 2 only
    writes the manifest (a run where everything is dropped still finishes and says why)."""
    from curator.run_tokenizer import take_tokenizer_file

    if run.tokenizer.exists() or (alive_docs == 0 and not cfg.tokenizer.model_path):
        return
    if cfg.tokenizer.model_path:
        take_tokenizer_file(cfg.tokenizer.model_path, cfg.tokenizer.eos_token, run.root)
        return
    fraction = min(1.0, cfg.tokenizer.sample_chars / max(1, alive_chars))
    texts = _tokenizer_sample(run, n_units, fraction, cfg.tokenizer.seed)
    # the trainer runs in the driver between the passes, when the workers are idle: as many
    # threads as the run's CPUs (not the machine's: a cluster may be given fewer)
    if cfg.tokenizer.kind == "hf":
        from curator.tokenizer_train_hf import train_hf_tokenizer

        with tempfile.TemporaryDirectory(prefix="curator-hf-") as tmp:
            trained = train_hf_tokenizer(texts, cfg.tokenizer, Path(tmp) / "tokenizer.json",
                                         num_threads=threads)
            take_tokenizer_file(trained, None, run.root)
        return
    from curator.tokenizer_train import train_tokenizer

    train_tokenizer(texts, cfg.tokenizer, run.tokenizer, num_threads=threads)


def validate_before_work(cfg: CurateConfig, root: str | None = None) -> None:
    """`root`: the local folder the run is built in (cfg.output, or a store output's
    staging folder)."""
    out = Path(root or cfg.output)
    if out.exists() and not out.is_dir():
        raise ConfigError(
            f"output: {out} is a file, not a folder; give --output a new or existing "
            "RUN folder"
        )
    if cfg.tokenizer.model_path:
        _check_tokenizer_file(cfg.tokenizer)


def _check_tokenizer_file(cfg: TokenizerConfig) -> None:
    """The user's tokenizer file is readable, of the configured kind, and has the end-of-text
    token asked for: checked before any work, since pass 2 would only fail after pass 1."""
    from curator.run_tokenizer import detect_kind, resolve_hf_eos

    path = cfg.model_path
    assert path is not None
    if not Path(path).is_file():
        raise ConfigError(
            f"tokenizer.model_path: {path} is not a file; point it at a sentencepiece .model "
            "or a Hugging Face tokenizer.json, or set it to null to train one"
        )
    try:
        kind = detect_kind(path)
        if kind == "hf":
            resolve_hf_eos(path, cfg.eos_token)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    if cfg.kind != "auto" and cfg.kind != kind:
        raise ConfigError(
            f"tokenizer.kind: {cfg.kind!r} but {path} is a {kind} tokenizer; set kind to "
            f"{kind!r} or 'auto'"
        )
    if kind == "sentencepiece" and cfg.eos_token is not None:
        raise ConfigError(
            "tokenizer.eos_token: only Hugging Face tokenizers take it (a sentencepiece model "
            "names its own EOS piece); remove it"
        )


def run_curate(cfg: CurateConfig) -> dict:
    """Run (or resume) a curation job; returns the run's stats (also written to RUN/stats.json)."""
    from curator.output_place import check_output_place  # before anything is written there
    from curator.run_mirror import is_store_uri, open_store_output

    if is_store_uri(cfg.output):
        # built in a local staging folder, each committed file copied up (curator/run_mirror.py)
        mirror = open_store_output(cfg.output, cfg.staging)
        root = check_output_place(str(mirror.staging), cfg.ray)
        try:
            return _curate_at(cfg, root, mirror)
        finally:
            mirror.push()  # on failure too: what is committed goes up, a resume skips it
    cfg = cfg.model_copy(update={"output": check_output_place(cfg.output, cfg.ray)})
    return _curate_at(cfg, cfg.output, None)


def _curate_at(cfg: CurateConfig, root: str, mirror: RunMirror | None) -> dict:
    validate_before_work(cfg, root)
    files = expand_inputs(cfg.inputs)  # raises ConfigError for inputs that match nothing
    local = runs_locally(cfg.ray, files)  # judged on the inputs as stored, not cut or spilled
    if local and RunDir.at(root).read_marker("run") is None:
        start_local_fork_server()  # its imports overlap the cutting below
    units = split_units(files, cfg.read.unit_bytes)  # large files become several units
    eval_set = _load_eval_set(cfg)  # a bad evaluation file fails here, before any work
    run = RunDir.at(root)
    with run_lock(run.root):
        if mirror is not None:
            mirror.pull()  # under the lock: a second job on this staging folder is refused
        prepare_run_dir(cfg, run)
        check_or_record_inputs(units, run.inputs)
        if run.read_marker("run") is not None:
            return json.loads(run.stats.read_text())
        remove_stale_temps(run.root)  # ours to delete: the lock says no writer is running
        units = _spill_units(cfg, units, run)
        decontaminate = None
        if eval_set is not None:
            from curator.stages.eval_sets import store_eval_set

            decontaminate = store_eval_set(eval_set, run)
        after_unit = None if mirror is None else (lambda: mirror.push(force=False))
        return _run_phases(cfg, units, run, decontaminate, after_unit, local)


def _spill_units(cfg: CurateConfig, units: list[SourceUnit], run: RunDir) -> list[SourceUnit]:
    """Large single-stream compressed jsonl files decoded once into chunk units (under the
    lock: the spill is written in RUN); a resume reuses the spill, so units keep their place."""
    if not any(spillable(u, cfg.read) for u in units):
        return units
    with phase("spill", "decoding single-stream compressed jsonl into units", cfg.quiet) as said:
        before = len(units)
        units = spill_units(units, run.spill, cfg.read)
        said["text"] = f"{before} units -> {len(units)}"
    return units


def _load_eval_set(cfg: CurateConfig) -> EvalSet | None:
    """The run's decontamination set, built once here by the driver: the workers memory-map
    the copy stored in the run instead of each reading and splitting the files (which may be
    on the driver's machine only) once per process."""
    if not cfg.decontaminate.paths:
        return None
    from curator.stages.eval_sets import load_eval_set

    with phase("decontaminate", f"indexing {len(cfg.decontaminate.paths)} evaluation sets",
               cfg.quiet) as said:
        eval_set = load_eval_set(cfg.decontaminate)
        said["text"] = "; ".join(
            f"{name} {c['items']:,} items ({c['skipped_items']:,} too short), {c['ngrams']:,} "
            "n-grams" for name, c in eval_set.counts.items())
    return eval_set


def _run_phases(
    cfg: CurateConfig, units: list[SourceUnit], run: RunDir, decontaminate: dict | None = None,
    after_unit: Callable[[], object] | None = None,
    local: bool = False,
) -> dict:
    """pass 1 -> dedup -> curriculum -> tokenizer -> pass 2 -> catalog, each skipped where its
    marker says it is done; with `local` on worker processes of this machine, else on Ray."""

    quiet = cfg.quiet
    items = [unit_item(i, u) for i, u in enumerate(units)]
    if local:
        resources = local_resources(cfg.ray)
        concurrency = default_concurrency(cfg.ray, len(items), resources)
        say(f"> workers: {concurrency} local processes, no Ray (ray.executor="
            f"{cfg.ray.executor})", quiet)
    else:
        with phase("ray", "joining or starting a cluster", quiet) as said:
            resources = ensure_ray(cfg.ray)
            said["text"] = f"{int(resources.get('CPU', 0))} CPUs"
        concurrency = default_concurrency(cfg.ray, len(items), resources)
    cfg_json = cfg.model_dump_json()
    wall: dict[str, float] = {}

    # one pool of worker processes for both passes and the dedup shuffles between them
    with worker_pool(concurrency, local=local):
        with phase("pass 1", f"read, normalize, filter {len(items)} input files", quiet) as said, \
                timed(wall, "pass1"):
            pass1 = run_pass(
                Pass1Worker,
                "pass1",
                run,
                items,
                {"cfg_json": cfg_json, "run_root": str(run.root)},
                concurrency,
                quiet,
                after_unit=after_unit,
            )
            alive = pass1.by_decision()[KEPT]
            said["text"] = f"{pass1.records:,} records, {alive:,} pass the rules"
        if all(run.marker("pass1", i["idx"]).exists() for i in items):
            release_spills(run.spill)  # every unit read: the decoded chunks are not needed again

        dedup_summary = run.read_marker("dedup")
        with phase("dedup", _dedup_detail(cfg, alive), quiet) as said, timed(wall, "dedup"):
            if dedup_summary is None:
                dedup_summary = {}
                if cfg.dedup.exact or cfg.dedup.near:
                    from dataclasses import asdict

                    from curator.stages.dedup import run_dedup

                    summary = run_dedup(
                        [(i["idx"], str(run.pass1(i["idx"]))) for i in items],
                        str(run.dedup_work),
                        cfg.dedup,
                        concurrency,
                    )
                    dedup_summary = asdict(summary)
                run.write_marker(dedup_summary, "dedup")
            said["text"] = ", ".join(f"{k} {v:,}" for k, v in dedup_summary.items()
                                     if isinstance(v, int))

        with timed(wall, "curriculum"):
            curriculum = run.read_marker("curriculum")
            if curriculum is None:
                curriculum = _curriculum_cuts(cfg, run)
                run.write_marker(curriculum, "curriculum")

        with phase("tokenizer", _tokenizer_detail(cfg, run, alive), quiet), \
                timed(wall, "tokenizer_train"):
            prepare_tokenizer(cfg, run, alive, pass1.chars_alive, len(items),
                              threads=max(1, int(resources.get("CPU", 1))))

        threads = cfg.tokenizer.num_threads or max(1, int(resources.get("CPU", 1)) // concurrency)
        with phase("pass 2", "drop duplicates, tokenize, write shards + manifest", quiet) as said, \
                timed(wall, "pass2"):
            pass2 = run_pass(
                Pass2Worker,
                "pass2",
                run,
                items,
                {"cfg_json": cfg_json, "run_root": str(run.root), "num_threads": threads},
                concurrency,
                quiet,
                total_docs=pass1.records,
                after_unit=after_unit,
            )
            said["text"] = f"{pass2.by_decision()[KEPT]:,} kept, {pass2.tokens:,} tokens"

    with phase("catalog + report", "", quiet):
        build_catalog(run)
        with CatalogReader(run) as cat:
            stats = _final_stats(cat, items, pass1, pass2, dedup_summary, wall)
        stats["executor"] = "local" if local else "ray"
        if decontaminate is not None:
            stats["decontaminate"] = _decontaminate_stats(run, decontaminate)
        from connectors.fs import write_text_atomic

        write_text_atomic(json.dumps(stats, indent=2), run.stats)
        from curator.report import write_report

        # Before the run marker: a failed report is redone by the re-run (passes stay marked).
        write_report(run)
    run.write_marker({"finished": time.time()}, "run")
    return stats


@contextlib.contextmanager
def timed(wall: dict[str, float], key: str) -> Iterator[None]:
    t0 = time.perf_counter()
    yield
    wall[key] = time.perf_counter() - t0


def _dedup_detail(cfg: CurateConfig, alive: int) -> str:
    kinds = [k for k, on in (("exact", cfg.dedup.exact), ("near (MinHash LSH)", cfg.dedup.near))
             if on]
    return f"{' + '.join(kinds) or 'off'} over {alive:,} documents"


def _tokenizer_detail(cfg: CurateConfig, run: RunDir, alive: int) -> str:
    if run.tokenizer.exists():
        return "trained before (resumed)"
    if cfg.tokenizer.model_path:
        return f"using {cfg.tokenizer.model_path}"
    if alive == 0:
        return "nothing survived: no tokenizer to train"
    if cfg.tokenizer.kind == "hf":
        return (f"training a byte-level BPE tokenizer.json (vocab {cfg.tokenizer.vocab_size}) "
                f"on up to {cfg.tokenizer.sample_chars:,} chars")
    return (f"training sentencepiece ({cfg.tokenizer.model_type}, vocab "
            f"{cfg.tokenizer.vocab_size}) on up to {cfg.tokenizer.sample_chars:,} chars")


def _curriculum_cuts(cfg: CurateConfig, run: RunDir) -> dict:
    """Global difficulty quantiles over the documents that survived pass 1 and dedup."""
    from curator.stages.curriculum import stage_cuts

    cc = cfg.curriculum
    if cc.score == "none":
        return {"score": "none", "n_stages": 1, "cuts": []}
    dups = run.dedup_work / "dups"
    dups_glob = (dups / "*.parquet").as_posix() if any(dups.glob("*.parquet")) else None
    kept_glob = (run.work / "pass1" / "*.parquet").as_posix()
    cuts = stage_cuts(kept_glob, dups_glob, cc.n_stages)
    return {"score": cc.score, "n_stages": len(cuts) + 1, "cuts": cuts}


def _decontaminate_stats(run: RunDir, meta: dict) -> dict:
    """Per benchmark: what its file gave (items, of them matched whole or skipped as shorter
    than min_item_words, distinct n-grams) and the documents it dropped."""
    from curator.stages.decontaminate import CONTAMINATED_BY

    _, rows = query(run, f"SELECT {CONTAMINATED_BY}, count(*) FROM manifest "
                         f"WHERE {CONTAMINATED_BY} IS NOT NULL GROUP BY 1")
    dropped = dict(rows)
    return {name: {**c, "documents": int(dropped.get(name, 0))}
            for name, c in meta["counts"].items()}


class ConservationError(RuntimeError):
    """input = kept + dropped + quarantined failed: a bug, never bad input."""


def _pii_totals(cat: CatalogReader) -> dict[str, dict[str, int]]:
    """Per PII kind the run replaced (its manifest's `pii_<kind>` columns): addresses replaced
    in all documents with text (kept and dropped: excluded/ may hold the latter), and in the
    kept ones, with the number of kept documents that held any."""
    cols, _ = cat.query("SELECT * FROM manifest LIMIT 0")
    kinds = [c.removeprefix("pii_") for c in cols if c.startswith("pii_")]
    if not kinds:
        return {}
    kept = "decision = 'kept'"
    sql = ", ".join(f"coalesce(sum(pii_{k}), 0), coalesce(sum(pii_{k}) FILTER ({kept}), 0), "
                    f"count(*) FILTER ({kept} AND pii_{k} > 0)" for k in kinds)
    _, [row] = cat.query(f"SELECT {sql} FROM manifest")
    return {k: {"replaced": int(row[3 * i]), "kept_replaced": int(row[3 * i + 1]),
                "kept_docs": int(row[3 * i + 2])} for i, k in enumerate(kinds)}


def _final_stats(
    cat: CatalogReader,
    items: list[dict],
    pass1: UnitStats,
    pass2: UnitStats,
    dedup_summary: dict,
    wall: dict[str, float],
) -> dict:
    """RUN/stats.json's numbers, after the conservation checks against the manifest."""
    run = cat.run
    cols, rows = cat.query("SELECT source, count(*) FROM manifest GROUP BY source")
    manifest_counts = dict(rows)
    # Against the readers' framing count (connectors/tally.py), not the rows their parsers
    # made: a parser that stops early would agree with itself. Sources repeat only if the user
    # listed a file twice; sum by source.
    expected: dict[str, int] = {}
    for item in items:
        framed = UnitStats.from_json(run.read_marker("pass1", item["idx"])).framed
        expected[item["source"]] = expected.get(item["source"], 0) + framed
    bad = {
        s: (n, manifest_counts.get(s, 0))
        for s, n in expected.items()
        if manifest_counts.get(s, 0) != n
    }
    if bad:
        raise ConservationError(
            f"manifest rows != records framed by the reader, (framed, rows) per source: {bad}"
        )
    decisions = pass2.by_decision()
    if sum(decisions.values()) != pass1.records:
        raise ConservationError(
            f"decisions {dict(decisions)} do not sum to {pass1.records} records"
        )
    # doc_id is unique by construction (curator/doc_ids.py); input ids need not be. A collision
    # counts every row whose input_id is on another row too (0 = input_id is a usable key).
    _, [(repeated_ids, collisions)] = cat.query(
        "SELECT (SELECT count(*) - count(DISTINCT doc_id) FROM manifest), "
        "(SELECT coalesce(sum(n), 0) FROM (SELECT count(*) AS n FROM manifest "
        "WHERE input_id IS NOT NULL GROUP BY input_id HAVING count(*) > 1))",
    )
    if repeated_ids:
        raise ConservationError(
            f"{repeated_ids} manifest rows repeat another row's doc_id (two source URIs with "
            "one xxh3_64, or a bug)"
        )
    return {
        "records": pass1.records,
        "kept": decisions.get("kept", 0),
        "dropped": decisions.get("dropped", 0),
        "quarantined": decisions.get("quarantined", 0),
        "tokens": pass2.tokens,
        "chars_in": pass1.chars_in,
        "input_id_collisions": int(collisions),
        "outcomes": dict(sorted(pass2.outcomes.items())),
        "dedup": dedup_summary,
        "pii": _pii_totals(cat),
        "wall_seconds": {k: round(v, 3) for k, v in wall.items()},
        "worker_seconds": {
            k: round(v, 3) for k, v in sorted((pass1.seconds + pass2.seconds).items())
        },
        "sources": len(items),
    }
