"""Schedules and exports: the order follows the schedule (checked against the manifest), each
format is read by the libraries users read it with, and the trainer reads the bin export."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import numpy as np
import polars as pl
import pyarrow.dataset as ds
import pytest
import sentencepiece as spm
import yaml
from typer.testing import CliRunner

from curator.cli import app
from curator.config import ConfigError
from curator.export import ExportConfig, run_export
from curator.rundir import RunDir
from curator.schedules import builtin_schedule, load_schedule, phase_targets, plan_order
from curator.trainer.data import TokenStream, load_corpus
from tests.test_curriculum import curate_in_process, sentence_corpus

PHASES = [(0.3, [0.7, 0.2, 0.1]), (0.7, [0.2, 0.5, 0.3]), (1.0, [0.1, 0.3, 0.6])]


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> RunDir:
    root = tmp_path_factory.mktemp("export")
    return curate_in_process(sentence_corpus(root / "corpus", n_docs=900), root / "run")


@pytest.fixture(scope="module")
def skewed(tmp_path_factory) -> RunDir:
    """Stages by length: the short (easy) third holds few tokens, and `phases` wants 32% of its
    budget easy, so it cannot place every token at its mix. Language id on (keeping every
    language): the manifest holds lang/lang_score, input metadata the exports carry."""
    root = tmp_path_factory.mktemp("skewed")
    sets = {
        "curriculum.score": "length",
        "language.enabled": "true",
        "language.keep": "[]",
        "language.min_score": "0",
    }
    return curate_in_process(sentence_corpus(root / "corpus", n_docs=300), root / "run", **sets)


def phase_shares(stage: np.ndarray, n_tokens: np.ndarray, ends: list[float]) -> np.ndarray:
    """Token share of each stage in each phase of a reading order: a document belongs to the
    phase its token midpoint falls in."""
    cum = np.cumsum(n_tokens)
    mid = (cum - n_tokens / 2) / cum[-1]
    phase = np.searchsorted(np.array(ends), mid, side="right")
    tokens = np.zeros((len(ends), stage.max() + 1))
    np.add.at(tokens, (phase, stage), n_tokens)
    return tokens / tokens.sum(1, keepdims=True)


@pytest.mark.parametrize("name", ["phases", "linear", "step", "uniform"])
def test_plan_follows_each_builtin_schedule(name):
    rng = np.random.default_rng(1)
    stage = rng.integers(0, 3, 20_000)
    n_tokens = rng.integers(20, 400, 20_000)
    schedule = builtin_schedule(name, 3)
    # truncate: the mix holds exactly even where a stage runs short (fill is tested below)
    plan = plan_order(stage, n_tokens, schedule, 3, seed=5, on_exhausted="truncate")
    got = phase_shares(stage[plan.order], n_tokens[plan.order], [p.until for p in schedule.phases])
    want = schedule.mixes(np.bincount(stage, weights=n_tokens))
    np.testing.assert_allclose(got, want, atol=0.01)
    assert len(np.unique(plan.order)) == len(plan.order)
    if name == "uniform":
        assert len(plan.order) == len(stage)  # the control never leaves anything out


def test_truncate_scales_the_budget_and_fill_uses_everything():
    stage = np.repeat([0, 1, 2], [1000, 1000, 200])  # few hard documents
    n_tokens = np.full(len(stage), 100)
    schedule = builtin_schedule("phases", 3)
    tight = plan_order(stage, n_tokens, schedule, 3, on_exhausted="truncate")
    # hard demand is 0.03 + 0.12 + 0.18 = 0.33 of the budget -> budget = 20000 / 0.33
    assert n_tokens[tight.order].sum() == pytest.approx(20_000 / 0.33, rel=0.01)
    left = tight.summary(n_tokens, stage)["left_out_tokens_per_stage"]
    assert left[2] <= 100 and left[0] > 0
    full = plan_order(stage, n_tokens, schedule, 3, on_exhausted="fill")
    assert sorted(full.order) == list(range(len(stage)))
    # Up to the phase where hard runs out, the mix is still the schedule's.
    first = full.actual[0] / full.actual[0].sum()
    np.testing.assert_allclose(first, [0.7, 0.2, 0.1], atol=0.01)


def test_fill_gives_an_exhausted_stage_share_to_the_nearest_stage():
    phases = builtin_schedule("phases", 3)
    # Hard runs out in phase 1: its unmet 130 tokens go to medium (nearest), none to easy; in
    # phase 2 medium runs out too and the rest falls to easy.
    t = phase_targets(phases, np.array([1000.0, 1000.0, 200.0]), "fill")
    np.testing.assert_allclose(t, [[462, 132, 66], [176, 570, 134], [362, 298, 0]])
    # Medium runs out in phase 0: its unmet 78 tokens split between its two neighbours by their
    # mix, 0.7 : 0.1.
    t = phase_targets(phases, np.array([3000.0, 300.0, 3000.0]), "fill")
    np.testing.assert_allclose(t[0], [1323 + 68.25, 300, 189 + 9.75])
    # Whatever the stage sizes: every token is placed, each phase gets its width of them.
    rng = np.random.default_rng(0)
    for name in ["phases", "linear", "step", "uniform"]:
        schedule = builtin_schedule(name, 3)
        for _ in range(30):
            available = rng.integers(0, 10_000, 3) * (rng.random(3) > 0.2)
            if available.sum() == 0:
                continue
            t = phase_targets(schedule, available, "fill")
            assert (t >= 0).all()
            np.testing.assert_allclose(t.sum(0), available, atol=1e-6)
            np.testing.assert_allclose(t.sum(1), schedule.widths * available.sum(), atol=1e-6)


def test_plan_is_deterministic_and_shuffled_within_phases():
    rng = np.random.default_rng(2)
    stage, n_tokens = rng.integers(0, 3, 3000), rng.integers(5, 50, 3000)
    schedule = builtin_schedule("linear", 3)
    a = plan_order(stage, n_tokens, schedule, 3, seed=7)
    b = plan_order(stage, n_tokens, schedule, 3, seed=7)
    c = plan_order(stage, n_tokens, schedule, 3, seed=8)
    assert np.array_equal(a.order, b.order) and not np.array_equal(a.order, c.order)
    phases = a.phase[a.order]
    assert (np.diff(phases) >= 0).all()  # phases in order
    first = a.order[phases == 0]
    assert not (np.diff(stage[first]) >= 0).all()  # but stages mixed inside a phase
    assert not (np.diff(first) > 0).all()  # and not in input order


def test_schedule_yaml_and_bad_schedules(tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text(yaml.safe_dump({"phases": [{"until": 0.5, "mix": [1, 1]}, {"until": 1.0}]}))
    s = load_schedule(str(path), 2)
    assert s.name == "mine" and s.mixes(np.array([1.0, 3.0]))[1].tolist() == [0.25, 0.75]
    with pytest.raises(ConfigError, match="3 stages"):
        load_schedule("phases", 4)
    with pytest.raises(ConfigError, match="unknown|neither"):
        load_schedule("zigzag", 3)
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({"phases": [{"until": 0.7}, {"until": 0.5}]}))
    with pytest.raises(ConfigError, match="increase"):
        load_schedule(str(bad), 3)


def export(run: RunDir, out: Path, fmt: str, **kw: object) -> dict:
    cfg = ExportConfig(run=str(run.root), output=str(out), format=fmt, **kw)
    return run_export(cfg)


def kept_manifest(run: RunDir) -> pl.DataFrame:
    return pl.read_parquet(run.manifest / "*.parquet").filter(pl.col("decision") == "kept")


def test_parquet_export_follows_the_schedule_per_the_manifest(run, tmp_path):
    # Small buckets: the external shuffle must stitch many part files back in order. truncate:
    # the schedule's mix holds exactly (fill's default is tested on a skewed run below).
    summary = export(
        run, tmp_path / "pq", "parquet", bucket_tokens=5000, seed=3, on_exhausted="truncate"
    )
    files = sorted((tmp_path / "pq").glob("*.parquet"))
    assert len(files) == len(summary["files"]) > 3
    by_polars = pl.read_parquet(files)
    assert by_polars["position"].to_list() == list(range(by_polars.height))
    by_duck = duckdb.sql(
        f"SELECT doc_id FROM read_parquet('{tmp_path / 'pq'}/*.parquet')"
    ).fetchall()
    by_arrow = ds.dataset(str(tmp_path / "pq"), format="parquet").to_table()
    assert [r[0] for r in by_duck] == by_polars["doc_id"].to_list()
    assert by_arrow["doc_id"].to_pylist() == by_polars["doc_id"].to_list()
    # Stages, token counts and the input's ids from the manifest, in the export's order.
    m = kept_manifest(run).select("doc_id", "input_id", "stage", "n_tokens")
    ordered = by_polars.select("doc_id").join(m, on="doc_id", how="left", maintain_order="left")
    assert ordered["stage"].null_count() == 0
    assert by_polars["input_id"].equals(ordered["input_id"])
    assert by_polars["input_id"].str.starts_with("d").all()  # sentence_corpus's ids
    got = phase_shares(
        ordered["stage"].to_numpy(), ordered["n_tokens"].to_numpy(), [e for e, _ in PHASES]
    )
    np.testing.assert_allclose(got, [mix for _, mix in PHASES], atol=0.03)
    assert summary["tokens"] == ordered["n_tokens"].sum()
    left = sum(summary["left_out_tokens_per_stage"])
    assert summary["tokens"] + left == m["n_tokens"].sum()
    export(run, tmp_path / "pq2", "parquet", seed=3, on_exhausted="truncate")
    assert pl.read_parquet(tmp_path / "pq2" / "*.parquet")["doc_id"].equals(by_polars["doc_id"])


def test_jsonl_export_carries_the_normalized_text(run, tmp_path):
    export(run, tmp_path / "js", "jsonl", schedule="uniform")
    rows = pl.read_ndjson(sorted((tmp_path / "js").glob("*.jsonl")))
    assert rows.height == kept_manifest(run).height
    pass1 = pl.read_parquet(run.work / "pass1" / "*.parquet").select("doc_id", "input_id", "text")
    joined = rows.select("doc_id", "input_id", "text").join(pass1, on="doc_id", suffix="_run")
    assert joined.height == rows.height and (joined["text"] == joined["text_run"]).all()
    assert (joined["input_id"] == joined["input_id_run"]).all()
    assert {"stage", "phase", "difficulty", "n_tokens", "position"} <= set(rows.columns)


def test_jsonl_falls_back_to_decoding_tokens_without_work_dir(run, tmp_path):
    import shutil

    copy = RunDir.at(tmp_path / "run")
    shutil.copytree(run.root, copy.root, ignore=shutil.ignore_patterns("_work"))
    export(copy, tmp_path / "js", "jsonl", schedule="uniform")
    rows = pl.read_ndjson(sorted((tmp_path / "js").glob("*.jsonl")))
    pass1 = pl.read_parquet(run.work / "pass1" / "*.parquet").select("doc_id", "text")
    joined = rows.join(pass1, on="doc_id", suffix="_run")
    assert joined.height == rows.height
    same = [a.split() == b.split() for a, b in zip(joined["text"], joined["text_run"], strict=True)]
    assert sum(same) >= 0.95 * len(same)  # sentencepiece may normalize a rare character


def test_bin_export_memmaps_and_feeds_the_trainer(run, tmp_path):
    out = tmp_path / "bin"
    export(run, out, "bin", seed=3)
    header = json.loads((out / "header.json").read_text())
    sp = spm.SentencePieceProcessor(model_file=str(run.tokenizer))
    assert header["dtype"] == "uint16" and header["vocab_size"] == sp.get_piece_size()
    tokens = np.memmap(out / "tokens.bin", dtype=header["dtype"], mode="r")
    offsets = np.fromfile(out / "tokens.idx", dtype=np.int64)
    assert len(tokens) == header["n_tokens"] == offsets[-1]
    assert (tokens[offsets[1:] - 1] == header["eos_id"]).all()  # every doc ends in EOS
    # Same order as the parquet export with the same seed and schedule, token for token.
    export(run, tmp_path / "pq", "parquet", seed=3)
    ref = pl.read_parquet(tmp_path / "pq" / "*.parquet")
    first = ref.row(0, named=True)
    assert tokens[offsets[0] : offsets[1]].tolist() == first["tokens"]
    corpus = load_corpus(out)
    assert corpus.doc_ids.to_pylist() == ref["doc_id"].to_list()
    assert corpus.n_docs == ref.height and corpus.eos_id == sp.eos_id()
    x, y = TokenStream(corpus.tokens, seq_len=32).batch(0, batch_size=2)
    assert x.shape == (2, 32) and (x[0, 1:] == y[0, :-1]).all()


def test_megatron_export_is_read_as_is_by_megatron_core(run, tmp_path):
    """`--format megatron`: Megatron-core's own IndexedDataset opens the export, every document
    is one sequence and one document, in the parquet export's order token for token (the
    curriculum order), with Megatron's dtype; curator's trainer reads it too."""
    pytest.importorskip("megatron.core", reason="megatron-core is in the test extra")
    from megatron.core.datasets.indexed_dataset import IndexedDataset

    out = tmp_path / "megatron"
    export(run, out, "megatron", seed=3)
    export(run, tmp_path / "pq", "parquet", seed=3)
    ref = pl.read_parquet(tmp_path / "pq" / "*.parquet")
    dataset = IndexedDataset(str(out / "tokens"))
    assert len(dataset) == ref.height
    assert dataset.index.dtype == np.uint16
    assert dataset.document_indices.tolist() == list(range(ref.height + 1))
    for i in (0, 1, ref.height // 2, ref.height - 1):
        assert dataset[i].tolist() == ref["tokens"][i].to_list()
    assert dataset.sequence_lengths.tolist() == ref["n_tokens"].to_list()
    header = json.loads((out / "header.json").read_text())
    assert header["layout"] == "megatron" and header["n_docs"] == ref.height
    corpus = load_corpus(out)  # the bundled trainer reads either layout
    assert corpus.doc_ids.to_pylist() == ref["doc_id"].to_list()
    assert corpus.n_docs == ref.height


def test_megatron_index_stores_large_vocabularies_as_int32(tmp_path):
    """Megatron has no uint32 code: a 100k vocabulary is written as int32 and read back."""
    pytest.importorskip("megatron.core", reason="megatron-core is in the test extra")
    import pyarrow as pa
    from megatron.core.datasets.indexed_dataset import IndexedDataset

    from connectors.bin import BinWriter

    docs = [[5, 99_999, 7], [70_000], [1, 2, 3, 4, 0]]
    writer = BinWriter(tmp_path, 100_000, eos_id=0, layout="megatron", prefix="corpus")
    writer.write(pa.array(docs, pa.list_(pa.int64())))
    header = writer.close()
    assert header["dtype"] == "int32" and header["files"] == ["corpus.bin", "corpus.idx"]
    dataset = IndexedDataset(str(tmp_path / "corpus"))
    assert [dataset[i].tolist() for i in range(len(dataset))] == docs
    assert dataset.index.dtype == np.int32


def test_model_loss_restages_by_checkpoint_loss(run, tmp_path):
    import torch

    from curator.trainer.checkpoint import save_checkpoint
    from curator.trainer.config import load_train_config
    from curator.trainer.data import shard_files
    from curator.trainer.engine import build_model, build_optimizer, per_document_loss

    vocab = spm.SentencePieceProcessor(model_file=str(run.tokenizer)).get_piece_size()
    cfg_path = tmp_path / "train.yaml"
    cfg_path.write_text(
        yaml.safe_dump(
            {
                "data": {"path": str(run.root)},
                "model": {"vocab_size": vocab, "seq_len": 64, "n_layer": 1, "d_model": 32},
                "device": "cpu",
                "precision": "fp32",
            }
        )
    )
    cfg = load_train_config(cfg_path)
    torch.manual_seed(0)
    model = build_model(cfg, vocab)
    save_checkpoint(tmp_path / "train", 0, model, build_optimizer(model, cfg.optim))
    summary = export(
        run,
        tmp_path / "ml",
        "parquet",
        difficulty="model_loss",
        checkpoint=str(tmp_path / "train"),
        train_config=str(cfg_path),
        schedule="uniform",
    )
    rows = pl.read_parquet(tmp_path / "ml" / "*.parquet")
    some = pl.read_parquet(shard_files(run.root)[0]).head(20)
    docs = [np.array(t) for t in some["tokens"].to_list()]
    want = per_document_loss(model, docs)
    got = rows.filter(pl.col("doc_id").is_in(some["doc_id"].to_list()))
    got = some.select("doc_id").join(got, on="doc_id", maintain_order="left")
    np.testing.assert_allclose(got["difficulty"].to_numpy(), want, rtol=1e-4)
    cuts = summary["cuts"]
    stage = np.searchsorted(cuts, rows["difficulty"].to_numpy(), side="right")
    assert (stage == rows["stage"].to_numpy()).all() and len(set(stage)) == 3


def test_export_cli_and_job_and_refusing_to_overwrite(run, tmp_path):
    out = tmp_path / "cli"
    args = ["export", str(run.root), "--format", "parquet", "--schedule", "step", "--output"]
    result = CliRunner().invoke(app, args + [str(out), "--seed", "4"])
    assert result.exit_code == 0, result.output
    assert json.loads((out / "_export.json").read_text())["schedule"]["name"] == "step"
    again = CliRunner().invoke(app, args + [str(out)])
    assert again.exit_code == 2 and "--overwrite" in again.output
    from jobs.export import main

    cfg = tmp_path / "export.yaml"
    cfg.write_text(
        yaml.safe_dump({"run": str(run.root), "output": str(tmp_path / "job"), "format": "bin"})
    )
    assert main(["--config", str(cfg)]) == 0
    assert (tmp_path / "job" / "header.json").exists()


def test_default_export_places_every_kept_document_and_truncate_reports_the_rest(skewed, tmp_path):
    kept = kept_manifest(skewed).select("doc_id", "stage", "n_tokens")
    full = export(skewed, tmp_path / "fill", "parquet")
    rows = pl.read_parquet(tmp_path / "fill" / "*.parquet")
    assert sorted(rows["doc_id"].to_list()) == sorted(kept["doc_id"].to_list())
    assert rows["n_tokens"].sum() == kept["n_tokens"].sum() == full["tokens"]
    assert (full["on_exhausted"], full["left_out_docs"], full["left_out_tokens"]) == ("fill", 0, 0)
    assert (full["docs"], full["tokens"]) == (full["kept_docs"], full["kept_tokens"])
    assert (np.diff(rows["phase"].to_numpy()) >= 0).all()
    # truncate must be asked for; on this run it leaves out a good part of the corpus, and
    # says exactly what: per stage, in documents and in tokens.
    cut = export(skewed, tmp_path / "truncate", "parquet", on_exhausted="truncate")
    placed = pl.read_parquet(tmp_path / "truncate" / "*.parquet")
    assert cut["tokens"] < 0.9 * cut["kept_tokens"] and cut["left_out_docs"] > 0
    assert placed.height == cut["docs"] == cut["kept_docs"] - cut["left_out_docs"]
    assert cut["tokens"] + cut["left_out_tokens"] == kept["n_tokens"].sum()
    left = kept.filter(~pl.col("doc_id").is_in(placed["doc_id"].to_list()))
    assert left.height == cut["left_out_docs"]
    per_stage = np.bincount(left["stage"], weights=left["n_tokens"], minlength=3)
    assert per_stage.astype(int).tolist() == cut["left_out_tokens_per_stage"]


def test_export_cli_prints_where_the_tokens_went(skewed, tmp_path):
    out = tmp_path / "cli"
    result = CliRunner().invoke(app, ["export", str(skewed.root), "--output", str(out)])
    assert result.exit_code == 0, result.output
    s = json.loads((out / "_export.json").read_text())
    kt, kd = s["kept_tokens"], s["kept_docs"]
    assert f"placed {kt:,} of {kt:,} kept tokens ({kd:,} of {kd:,} documents)" in result.output
    assert "left out" not in result.output
    for row in s["phase_tokens"]:  # one table row per phase, its stages' tokens and the total
        assert all(f"{t:,}" in result.output for t in [*row, sum(row)])

    args = ["export", str(skewed.root), "--on-exhausted", "truncate", "--output"]
    result = CliRunner().invoke(app, args + [str(tmp_path / "cut")])
    assert result.exit_code == 0, result.output
    s = json.loads((tmp_path / "cut" / "_export.json").read_text())
    assert f"placed {s['tokens']:,} of {s['kept_tokens']:,} kept tokens" in result.output
    left = f"left out {s['left_out_tokens']:,} tokens ({s['left_out_docs']:,} documents)"
    assert s["left_out_docs"] > 0 and left in result.output
    bad = CliRunner().invoke(app, args[:-1] + ["drop", "--output", str(tmp_path / "bad")])
    assert bad.exit_code != 0 and not (tmp_path / "bad").exists()
    help_text = CliRunner().invoke(app, ["export", "--help"]).output
    assert "--on-exhausted" in help_text and "--with-text" in help_text


def test_parquet_with_text_and_both_formats_carry_the_input_metadata(skewed, tmp_path):
    export(skewed, tmp_path / "pq", "parquet", with_text=True, schedule="uniform")
    rows = pl.read_parquet(tmp_path / "pq" / "*.parquet")
    assert rows.height == kept_manifest(skewed).height
    pass1 = pl.read_parquet(skewed.work / "pass1" / "*.parquet").select("doc_id", "text")
    joined = rows.join(pass1, on="doc_id", suffix="_run")
    assert joined.height == rows.height and (joined["text"] == joined["text_run"]).all()
    assert rows["tokens"].list.len().to_list() == rows["n_tokens"].to_list()
    export(skewed, tmp_path / "plain", "parquet", schedule="uniform")
    assert "text" not in pl.read_parquet(tmp_path / "plain" / "*.parquet").columns
    export(skewed, tmp_path / "js", "jsonl", schedule="uniform")
    lines = pl.read_ndjson(sorted((tmp_path / "js").glob("*.jsonl")))
    manifest = kept_manifest(skewed).select("doc_id", "lang", "lang_score")
    assert manifest["lang"].null_count() == 0
    for got in (rows, lines):
        both = got.join(manifest, on="doc_id", suffix="_m")
        assert both.height == got.height
        assert (both["lang"] == both["lang_m"]).all()
        np.testing.assert_allclose(both["lang_score"], both["lang_score_m"], rtol=1e-6)
    with pytest.raises(ConfigError, match="with_text"):
        export(skewed, tmp_path / "bin", "bin", with_text=True)


def test_metadata_one_unit_lacks_is_null_in_the_export(skewed, tmp_path):
    import shutil

    copy = RunDir.at(tmp_path / "run")
    shutil.copytree(skewed.root, copy.root)
    part = copy.manifest_part(0)  # only unit 0's input had urls
    m = pl.read_parquet(part)
    m.with_columns(url=pl.lit("https://example.org/") + pl.col("doc_id")).write_parquet(part)
    unit0 = set(m["doc_id"].to_list())
    for fmt in ("parquet", "jsonl"):
        export(copy, tmp_path / fmt, fmt, schedule="uniform")
        got = (
            pl.read_parquet(tmp_path / fmt / "*.parquet")
            if fmt == "parquet"
            else (pl.read_ndjson(sorted((tmp_path / fmt).glob("*.jsonl"))))
        )
        has = got.filter(pl.col("doc_id").is_in(list(unit0)))
        assert 0 < has.height < got.height
        assert (has["url"] == "https://example.org/" + has["doc_id"]).all()
        assert got.filter(~pl.col("doc_id").is_in(list(unit0)))["url"].null_count() == (
            got.height - has.height
        )
