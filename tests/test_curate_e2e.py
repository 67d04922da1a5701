"""End to end: a small real-looking corpus with planted duplicates, junk and bad input through
`run_curate` on the session's real Ray cluster; the run-directory contract; conservation."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import duckdb
import polars as pl
import pyarrow.parquet as pq
import pytest
import sentencepiece as spm
from typer.testing import CliRunner

from curator.catalog import open_catalog
from curator.cli import app
from curator.config import CurateConfig, load_model
from curator.executor import run_curate
from curator.rundir import RunDir
from curator.schema import SHARD_SCHEMA
from tests.corpus import Corpus, build_corpus


def curate_config(corpus_root: Path, out: Path, **overrides: object) -> CurateConfig:
    sets = [f"{k}={v}" for k, v in overrides.items()]
    return load_model(  # type: ignore[return-value]
        CurateConfig,
        base={
            "inputs": [{"path": str(corpus_root)}],
            "output": str(out),
            "quiet": True,
            "tokenizer": {"vocab_size": 1000},
            # Short single-paragraph docs: a lower LSH threshold (~0.55) finds 1-word edits surely.
            "dedup": {"bands": 20, "rows": 5},
            # The Python reference quotes identifiers often; its prose is still prose.
            "quality": {"gopher_quality": {"min_alpha_words_ratio": 0.7}},
        },
        overrides=sets,
    )


@pytest.fixture(scope="module")
def curated(ray_cluster, tmp_path_factory) -> tuple[Corpus, Path, dict]:
    root = tmp_path_factory.mktemp("e2e")
    corpus = build_corpus(root / "corpus")
    out = root / "run"
    stats = run_curate(curate_config(corpus.root, out))
    return corpus, out, stats


def manifest(out: Path) -> pl.DataFrame:
    return pl.read_parquet(out / "manifest" / "*.parquet")


def test_every_input_record_has_one_manifest_row_per_source(curated):
    corpus, out, stats = curated
    m = manifest(out)
    counts = dict(m.group_by("source").len().iter_rows())
    for path, n in corpus.files.items():
        if n >= 0:
            assert counts[path] == n, path
    assert m.height == stats["records"] == stats["kept"] + stats["dropped"] + stats["quarantined"]
    assert m["doc_id"].n_unique() == m.height


def test_each_bad_record_is_quarantined_with_its_reason(curated):
    corpus, out, _ = curated
    m = manifest(out)
    for source, record, reason in corpus.bad:
        rows = m.filter((pl.col("source") == source) & (pl.col("decision") == "quarantined"))
        if record is not None:
            rows = rows.filter(pl.col("record") == record)
        assert rows.height == 1, (source, record)
        row = rows.row(0, named=True)
        assert row["reason"] == reason, (source, record)
        assert row["error"], (source, record)
        assert row["n_tokens"] is None and row["duplicate_of"] is None


def test_truncated_file_keeps_records_before_the_break(curated):
    corpus, out, _ = curated
    trunc = [p for p, n in corpus.files.items() if n == -1][0]
    rows = manifest(out).filter(pl.col("source") == trunc)
    assert rows.filter(pl.col("decision") != "quarantined").height >= 5
    assert rows.filter(pl.col("reason") == "truncated_file").height == 1


def test_planted_duplicates_point_at_a_kept_representative(curated):
    corpus, out, _ = curated
    m = manifest(out)
    by_id = {r["doc_id"]: r for r in m.iter_rows(named=True)}
    checked = 0
    for planted, kind in [
        (corpus.exact_dups, "exact_duplicate"),
        (corpus.near_dups, "near_duplicate"),
    ]:
        for dup, original in planted.items():
            if by_id[original]["decision"] != "kept":
                continue  # the original failed a rule; its copy fails it too or is dropped as dup
            assert by_id[dup]["decision"] == "dropped", dup
            assert by_id[dup]["reason"] == kind, dup
            assert by_id[dup]["duplicate_of"] == original, dup
            checked += 1
    assert checked >= 3
    reps = m.filter(pl.col("duplicate_of").is_not_null())["duplicate_of"].unique().to_list()
    assert all(by_id[r]["decision"] == "kept" for r in reps)


def test_planted_junk_is_dropped(curated):
    corpus, out, _ = curated
    m = manifest(out).filter(pl.col("doc_id").is_in(list(corpus.junk_ids)))
    assert m.height == len(corpus.junk_ids)
    assert set(m["decision"]) == {"dropped"}


def test_shards_hold_kept_documents_with_eos_terminated_tokens(curated):
    corpus, out, stats = curated
    files = sorted((out / "shards").glob("stage=*/part-*.parquet"))
    assert files
    shards = pq.read_table(files[0]).schema
    assert shards.equals(SHARD_SCHEMA, check_metadata=False)
    table = pl.read_parquet([str(f) for f in files])
    kept = manifest(out).filter(pl.col("decision") == "kept")
    assert sorted(table["doc_id"]) == sorted(kept["doc_id"])
    sp = spm.SentencePieceProcessor(model_file=str(out / "tokenizer.model"))
    assert table["tokens"].list.last().unique().to_list() == [sp.eos_id()]
    assert (table["tokens"].list.len() == table["n_tokens"]).all()
    assert table["n_tokens"].sum() == stats["tokens"] == kept["n_tokens"].sum()
    # Tokens decode back to the normalized document.
    original = {}
    for path in corpus.files:
        if path.endswith(".jsonl.gz") and "truncated" not in path:
            for rec in pl.read_ndjson(path).iter_rows(named=True):
                original[rec["id"]] = rec["text"]
    row = table.filter(pl.col("doc_id").is_in(list(original))).row(0, named=True)
    decoded = sp.decode(row["tokens"][:-1])
    assert decoded.split() == original[row["doc_id"]].split()


def test_catalog_views_and_stats_command(curated):
    _, out, stats = curated
    with open_catalog(RunDir.at(out)) as con:
        n = con.execute("SELECT count(*) FROM manifest").fetchone()[0]
        kept_tokens = con.execute("SELECT sum(n_tokens) FROM shards").fetchone()[0]
        funnel = dict(
            con.execute("SELECT reason, docs FROM funnel WHERE decision='dropped'").fetchall()
        )
    assert n == stats["records"] and kept_tokens == stats["tokens"]
    assert funnel.get("exact_duplicate", 0) >= 1
    result = CliRunner().invoke(app, ["stats", str(out)])
    assert result.exit_code == 0, result.output
    assert "exact_duplicate" in result.output and "per source" in result.output
    saved = json.loads((out / "stats.json").read_text())
    assert saved["records"] == stats["records"] and (out / "config.yaml").exists()


def test_a_moved_run_still_opens_its_catalog(curated, tmp_path, monkeypatch):
    """The views hold paths relative to the run: a copy elsewhere answers from its own files,
    through `curator sql` and through plain DuckDB opened in the run folder."""
    _, out, stats = curated
    moved = tmp_path / "elsewhere" / "run"
    shutil.copytree(out, moved)
    # One more manifest part in the copy only: the copy's answer must count it, which a view
    # pointing back at the original's files would not.
    first_part = sorted((moved / "manifest").glob("*.parquet"))[0]
    (moved / "manifest" / "extra.parquet").write_bytes(first_part.read_bytes())
    expected = stats["records"] + pq.ParquetFile(first_part).metadata.num_rows
    result = CliRunner().invoke(app, ["sql", str(moved), "SELECT count(*) AS n FROM manifest"])
    assert result.exit_code == 0, result.output
    assert f" {expected} " in result.output, result.output
    monkeypatch.chdir(moved)
    with duckdb.connect("catalog.duckdb", read_only=True) as con:
        assert con.execute("SELECT sum(n_tokens) FROM shards").fetchone()[0] == stats["tokens"]


def test_rerun_of_a_finished_run_changes_nothing(curated):
    corpus, out, stats = curated
    before = {p: p.stat().st_mtime_ns for p in out.rglob("*.parquet")}
    again = run_curate(curate_config(corpus.root, out))
    assert again == stats
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*.parquet")} == before


def test_dedup_command_gives_one_row_per_record_with_duplicate_of(ray_cluster, tmp_path):
    corpus = build_corpus(tmp_path / "corpus", bad_inputs=False)
    out = tmp_path / "dups.parquet"
    result = CliRunner().invoke(
        app,
        ["dedup", "--input", str(corpus.root), "--output", str(out), "--quiet",
         "--set", "dedup.bands=20", "--set", "dedup.rows=5"],
    )
    assert result.exit_code == 0, result.output
    table = pl.read_parquet(out)
    assert table.height == sum(corpus.files.values())
    by_id = dict(zip(table["doc_id"], table["duplicate_of"], strict=True))
    # Dedup alone applies no quality rule: every planted copy points at its original.
    for dup, original in {**corpus.exact_dups, **corpus.near_dups}.items():
        assert by_id[dup] == original, dup
        assert by_id[original] is None
    assert by_id["doc0000"] is None


def test_a_run_where_nothing_survives_finishes_and_says_why(ray_cluster, tmp_path):
    """Every document dropped (too short) and one line malformed: the run still writes its
    manifest, stats, catalog and report, and the CLI names the reasons that removed them."""
    src = tmp_path / "in"
    src.mkdir()
    with open(src / "short.jsonl", "w") as f:
        for i in range(12):
            f.write(json.dumps({"id": f"s{i}", "text": f"Too short to keep, number {i}."}) + "\n")
        f.write("{not json\n")
    out = tmp_path / "run"
    result = CliRunner().invoke(
        app, ["curate", "--input", str(src), "--output", str(out), "--quiet"]
    )
    assert result.exit_code == 0, result.output
    stats = json.loads((out / "stats.json").read_text())
    assert (stats["records"], stats["kept"], stats["quarantined"], stats["tokens"]) == (13, 0, 1, 0)
    assert manifest(out).height == 13
    assert (out / "report.html").exists() and not (out / "tokenizer.model").exists()
    assert "nothing survived: 0 of 13 records kept" in result.output
    assert "malformed_json 1" in result.output
    top = max((n, k) for k, n in stats["outcomes"].items() if k.startswith("dropped/"))[1]
    assert top.split("/", 1)[1] in result.output
    # the run's tables answer too
    stats_out = CliRunner().invoke(app, ["stats", str(out)])
    assert stats_out.exit_code == 0 and "quarantined" in stats_out.output
    # what comes after a curate says plainly that there is nothing to work on
    train_cfg = Path(__file__).resolve().parents[1] / "configs" / "train_tiny.yaml"
    for args in (["export", str(out), "--output", str(tmp_path / "export")],
                 ["train", "--config", str(train_cfg), "--set", f"data.path={out}",
                  "--set", f"out_dir={tmp_path / 'train'}"]):
        result = CliRunner().invoke(app, args)
        said = " ".join(result.output.split())  # rich wraps long lines
        assert result.exit_code == 2, said
        assert "kept no documents" in said and "Traceback" not in said


def test_an_output_path_that_is_a_file_fails_before_any_work(tmp_path):
    not_a_folder = tmp_path / "run.txt"
    not_a_folder.write_text("x")
    result = CliRunner().invoke(
        app, ["curate", "--input", str(tmp_path), "--output", str(not_a_folder)]
    )
    assert result.exit_code == 2
    said = " ".join(result.output.split())  # rich wraps long lines (the tmp path's length varies)
    assert "output:" in said and "is a file" in said
    assert "Traceback" not in said


def test_a_quote_in_the_output_path_and_all_bad_input(ray_cluster, tmp_path):
    """SQL never holds a path (a quote in the run folder once broke the curriculum's cut
    query), and a source whose every record is bad is accounted like any other."""
    corpus = build_corpus(tmp_path / "in", n_docs=16, n_files=2, bad_inputs=False)
    (corpus.root / "all-bad.jsonl").write_text("{not json\n[1, 2]\n\"text\"\n")
    out = tmp_path / "it's a run"
    stats = run_curate(curate_config(corpus.root, out))
    assert stats["kept"] >= 8 and stats["quarantined"] == 3
    assert stats["records"] == sum(corpus.files.values()) + 3
    cuts = json.loads((out / "_done" / "curriculum.json").read_text())["cuts"]
    assert len(cuts) == 2  # three stages: the quantile query ran on the quoted path
    result = CliRunner().invoke(app, ["sql", str(out), "SELECT count(*) FROM manifest"])
    assert result.exit_code == 0 and str(stats["records"]) in result.output, result.output
