"""RUN/excluded/: the deterministic sample of dropped and quarantined documents (unit tests of
the hash and the sampler), then real curate runs on the session's Ray cluster: the sample obeys
its rate and cap, excluded.all=true holds every excluded document with its exact text, `curator
show` prints them, and a resumed pass 2 writes byte-identical files."""

from __future__ import annotations

import gzip
import json
import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from curator.catalog import query
from curator.cli import app
from curator.config import ConfigError, CurateConfig, ExcludedConfig, load_model
from curator.excluded import ExcludedSample
from curator.executor import run_curate
from curator.hashing import stable_hash
from curator.rundir import RunDir
from curator.schema import DROPPED, KEPT, QUARANTINED, doc_table
from curator.stages.normalize import Normalize
from tests.corpus import Corpus, build_corpus

# --- the hash and the sampler ------------------------------------------------------------------


def _docs(n: int, reasons: list[str | None]) -> pa.Table:
    return pa.table(
        {
            "doc_id": [f"d{i}" for i in range(n)],
            "decision": [KEPT if r is None else DROPPED for r in reasons],
            "reason": reasons,
        }
    )


def _batches(table: pa.Table, cuts: list[int]) -> list[pa.Table]:
    return [
        table.slice(lo, hi - lo) for lo, hi in zip([0, *cuts], [*cuts, table.num_rows], strict=True)
    ]


def _selected(cfg: ExcludedConfig, table: pa.Table, cuts: list[int]) -> list[str]:
    """doc_ids the pass-2 sample writes when the unit arrives cut into batches at `cuts`."""
    sample = ExcludedSample(cfg)
    for batch in _batches(table, cuts):
        sample.observe(batch)
    out: list[str] = []
    for batch in _batches(table, cuts):
        out += batch.filter(sample.select(batch)).column("doc_id").to_pylist()
    return out


def test_sample_is_the_k_smallest_hashes_per_reason_whatever_the_batches():
    rng = np.random.default_rng(0)
    reasons = rng.choice(["too_few_words", "near_duplicate", "kept"], size=3000).tolist()
    table = _docs(3000, [None if r == "kept" else r for r in reasons])
    cfg = ExcludedConfig(sample_rate=0.2, max_per_reason_per_unit=30)
    cuts = [7, 1000, 1001, 2500]
    picked = _selected(cfg, table, [])
    assert picked == _selected(cfg, table, cuts)
    ids, why = table["doc_id"].to_pylist(), table["reason"].to_pylist()
    hashes = stable_hash(table["doc_id"])
    under = hashes < np.uint64(int(0.2 * 2**64))
    expected = []
    for reason in ("too_few_words", "near_duplicate"):
        rows = [i for i in range(3000) if why[i] == reason and under[i]]
        assert len(rows) > 30  # the cap binds
        expected += sorted(rows, key=lambda i: hashes[i])[:30]
    assert picked == [ids[i] for i in sorted(expected)]  # in file order
    # Pass 1, which sees the batches one at a time, keeps the text of a small superset.
    sample = ExcludedSample(cfg)
    kept_text = set()
    for batch in _batches(table, cuts):
        kept_text |= set(batch.filter(sample.observe(batch)).column("doc_id").to_pylist())
    assert set(picked) <= kept_text
    assert len(kept_text) < 2 * 30 * (1 + np.log(3000 / 30))


def test_sample_all_takes_every_excluded_row_and_disabled_takes_none():
    table = _docs(6, [None, "a", "b", None, "a", "c"])
    assert _selected(ExcludedConfig(all=True), table, [2]) == ["d1", "d2", "d4", "d5"]
    assert _selected(ExcludedConfig(enabled=False), table, []) == []


@pytest.mark.parametrize(
    ("sets", "needle"),
    [
        (["excluded.all=true", "excluded.enabled=false"], "excluded.enabled=true"),
        (["excluded.sample_rate=0"], "excluded.sample_rate"),
        (["excluded.sample_rate=1.5"], "excluded.sample_rate"),
        (["excluded.max_per_reason_per_unit=0"], "excluded.max_per_reason_per_unit"),
    ],
)
def test_bad_excluded_config_is_refused_naming_the_field(sets, needle):
    with pytest.raises(ConfigError, match=needle.replace(".", r"\.")):
        load_model(CurateConfig, base={"inputs": [{"path": "x"}], "output": "o"}, overrides=sets)


# --- real runs --------------------------------------------------------------------------------


def _config(corpus: Corpus, out: Path, *sets: str) -> CurateConfig:
    return load_model(  # type: ignore[return-value]
        CurateConfig,
        base={
            "inputs": [{"path": str(corpus.root)}],
            "output": str(out),
            "quiet": True,
            "tokenizer": {"vocab_size": 1000},
            "dedup": {"bands": 20, "rows": 5},
            "quality": {"gopher_quality": {"min_alpha_words_ratio": 0.7}},
        },
        overrides=list(sets),
    )


def _excluded(out: Path) -> pa.Table:
    files = sorted((out / "excluded").glob("reason=*/part-*.parquet"))
    return pa.concat_tables([pq.read_table(f) for f in files], promote_options="default")


def _manifest(out: Path) -> pa.Table:
    return pq.read_table(out / "manifest")


def _files(out: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(out)): p.read_bytes()
        for p in sorted((out / "excluded").glob("reason=*/part-*.parquet"))
    }


def _resume_pass_2(cfg: CurateConfig) -> dict[str, bytes]:
    """Files of a finished run's excluded/, then the same run resumed as if the job had been
    killed after pass 1: pass 2 and what follows are redone from _work/pass1."""
    out = Path(cfg.output)
    first = _files(out)
    for gone in ("excluded", "shards", "manifest", "_done/pass2"):
        shutil.rmtree(out / gone)
    (out / "_done" / "run.json").unlink()
    run_curate(cfg)
    return first


@pytest.fixture(scope="module")
def runs(ray_cluster, tmp_path_factory) -> tuple[Corpus, Path, Path, dict[Path, dict]]:
    root = tmp_path_factory.mktemp("excluded")
    corpus = build_corpus(root / "corpus", n_docs=40)
    sampled_cfg = _config(
        corpus,
        root / "sampled",
        "excluded.sample_rate=0.5",
        "excluded.max_per_reason_per_unit=2",
    )
    # The C4 rewrite off, so a dropped document's text is exactly its normalized input.
    every_cfg = _config(corpus, root / "all", "excluded.all=true", "quality.c4.rewrite_text=false")
    first = {}
    for cfg in (sampled_cfg, every_cfg):
        run_curate(cfg)
        first[Path(cfg.output)] = _resume_pass_2(cfg)
    return corpus, Path(sampled_cfg.output), Path(every_cfg.output), first


def test_sample_holds_text_and_reason_within_rate_and_cap(runs):
    _, sampled, _, _ = runs
    ex, m = _excluded(sampled), _manifest(sampled)
    assert ex.num_rows > 0
    decision = dict(zip(m["doc_id"].to_pylist(), m["decision"].to_pylist(), strict=True))
    reason = dict(zip(m["doc_id"].to_pylist(), m["reason"].to_pylist(), strict=True))
    rows = ex.to_pylist()
    for row in rows:
        assert decision[row["doc_id"]] == row["decision"] != KEPT
        assert reason[row["doc_id"]] == row["reason"]
        assert (row["text"] is None) == (row["decision"] == QUARANTINED), row["doc_id"]
    # Per unit (here one per source) and reason: the 2 smallest hashes under the rate of 0.5.
    out = m.filter(pc.not_equal(m["decision"], KEPT))
    hashes = stable_hash(out["doc_id"])
    groups: dict[tuple[str, str], list[tuple[int, str]]] = {}
    for h, row in zip(hashes.tolist(), out.to_pylist(), strict=True):
        if h < 2**63:
            groups.setdefault((row["source"], row["reason"]), []).append((h, row["doc_id"]))
    expected = {d for group in groups.values() for _, d in sorted(group)[:2]}
    assert {r["doc_id"] for r in rows} == expected
    # Several kinds of drop are there: rules, dedup and bad input.
    kinds = {r["reason"] for r in rows}
    assert kinds & {"exact_duplicate", "near_duplicate"} and len(kinds) >= 4


def _input_texts(corpus: Corpus) -> dict[str, str]:
    texts = {}
    for path in corpus.root.glob("*.jsonl.gz"):
        with gzip.open(path, "rt") as f:
            try:
                for line in f:
                    doc = json.loads(line)
                    texts[doc["id"]] = doc["text"]
            except (EOFError, json.JSONDecodeError):
                pass  # the truncated file: its readable records are enough
    return texts


def test_all_holds_every_excluded_document_with_its_exact_text(runs):
    corpus, _, every, _ = runs
    ex, m = _excluded(every), _manifest(every)
    out = m.filter(pc.not_equal(m["decision"], KEPT))
    assert sorted(ex["doc_id"].to_pylist()) == sorted(out["doc_id"].to_pylist())
    inputs = _input_texts(corpus)
    dropped = [r for r in ex.to_pylist() if r["decision"] == DROPPED and r["input_id"] in inputs]
    assert len(dropped) >= 10
    normalize = Normalize(_config(corpus, every).normalize)
    expected = normalize(doc_table([inputs[r["input_id"]] for r in dropped]))["text"].to_pylist()
    assert [r["text"] for r in dropped] == expected
    # Files are split by reason: each part holds only its directory's reason.
    for f in (every / "excluded").glob("reason=*/part-*.parquet"):
        assert set(pq.read_table(f, columns=["reason"])["reason"].to_pylist()) == {
            f.parent.name.removeprefix("reason=")
        }
    # The catalog's view sees the same rows.
    _, rows = query(RunDir.at(every), "SELECT count(*) FROM excluded")
    assert rows[0][0] == ex.num_rows


def test_resumed_pass_2_writes_identical_files(runs):
    _, sampled, every, first = runs
    for out in (sampled, every):
        assert first[out] and _files(out) == first[out], out


def test_show_lists_reasons_and_prints_documents(runs):
    _, sampled, every, _ = runs
    runner = CliRunner()
    listed = runner.invoke(app, ["show", str(every)])
    assert listed.exit_code == 0, listed.output
    assert "near_duplicate" in listed.output and "malformed_json" in listed.output
    ex = _excluded(every)
    first = ex.filter(pc.equal(ex["reason"], "near_duplicate")).to_pylist()[0]
    shown = runner.invoke(app, ["show", str(every), "--reason", "near_duplicate", "--n", "1"])
    assert shown.exit_code == 0, shown.output
    assert first["doc_id"] in shown.output and first["input_id"] in shown.output
    assert " ".join(first["text"][:40].split()) in " ".join(shown.output.split())
    bad = runner.invoke(app, ["show", str(every), "--reason", "no_such_reason"])
    assert bad.exit_code == 2 and "near_duplicate" in bad.output
