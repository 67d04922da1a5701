"""Curriculum stages: difficulty scores, global quantile cut points, stage routing in pass 2.

`curate_in_process` runs the real pass workers, cut points and tokenizer training without Ray
(dedup off: it is the only phase that needs the cluster), so these tests and the export/report
tests get a real RUN directory in seconds.
"""

from __future__ import annotations

import gzip
import json
import random
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import zstandard

from connectors.registry import expand_inputs
from curator.catalog import build_catalog
from curator.config import CurriculumConfig
from curator.executor import _curriculum_cuts, prepare_run_dir, prepare_tokenizer
from curator.passes import Pass1Worker, Pass2Worker, unit_item
from curator.rundir import RunDir
from curator.schema import KEPT, doc_table
from curator.stages.curriculum import (
    Difficulty,
    assign_stage,
    compression_ratio,
    quantile_stages,
    stage_cuts,
)
from tests.corpus import real_paragraphs
from tests.test_curate_e2e import curate_config


def sentence_corpus(root: Path, n_docs: int = 600, n_files: int = 3, seed: int = 0) -> Path:
    """Documents of 1-12 consecutive real sentences, some with repeated lines (easy to
    compress), spread over gzipped JSONL files."""
    rng = random.Random(seed)
    sentences = [s.strip() + "." for p in real_paragraphs() for s in p.split(". ") if s.strip()]
    root.mkdir(parents=True, exist_ok=True)
    docs = []
    for i in range(n_docs):
        n = rng.randint(1, 12)
        start = rng.randrange(len(sentences) - n)
        text = " ".join(sentences[start : start + n])
        if i % 7 == 0:
            text = "\n".join([sentences[start]] * rng.randint(2, 6))
        docs.append({"id": f"d{i:05d}", "text": text})
    for f in range(n_files):
        with gzip.open(root / f"part-{f}.jsonl.gz", "wt") as fh:
            for d in docs[f::n_files]:
                fh.write(json.dumps(d) + "\n")
    return root


NO_RULES = {
    "language.enabled": "false",
    "dedup.exact": "false",
    "dedup.near": "false",
    "quality.gopher_quality.enabled": "false",
    "quality.gopher_repetition.enabled": "false",
    "quality.c4.enabled": "false",
    "quality.fineweb.enabled": "false",
}


def curate_in_process(corpus_root: Path, out: Path, **sets: object) -> RunDir:
    """pass 1 -> cut points -> tokenizer -> pass 2 -> catalog, as run_curate does, on this
    process (no dedup, no Ray)."""
    cfg = curate_config(corpus_root, out, **{**NO_RULES, **sets})
    items = [unit_item(i, u) for i, u in enumerate(expand_inputs(cfg.inputs))]
    run = RunDir.at(cfg.output)
    prepare_run_dir(cfg, run)
    pass1 = Pass1Worker(cfg.model_dump_json(), str(run.root))
    alive_docs = alive_chars = 0
    for item in items:
        stats = pass1.process(item)
        run.write_marker(stats.to_json(), "pass1", item["idx"])
        alive_docs += stats.by_decision()[KEPT]
        alive_chars += stats.chars_alive
    run.write_marker(_curriculum_cuts(cfg, run), "curriculum")
    prepare_tokenizer(cfg, run, alive_docs, alive_chars, len(items))
    pass2 = Pass2Worker(cfg.model_dump_json(), str(run.root), num_threads=1)
    for item in items:
        run.write_marker(pass2.process(item).to_json(), "pass2", item["idx"])
    build_catalog(run)
    return run


@pytest.fixture(scope="module")
def staged_run(tmp_path_factory) -> RunDir:
    root = tmp_path_factory.mktemp("curriculum")
    return curate_in_process(sentence_corpus(root / "corpus"), root / "run")


def test_compression_ratio_matches_one_zstd_call_per_document():
    texts = ["the cat sat. " * 40, "Zebras quickly judge vexing fox jumps!", "", "ab" * 3000]
    got = compression_ratio(pa.array(texts + [None]).slice(0, 4), level=3)
    cctx = zstandard.ZstdCompressor(level=3, write_checksum=False, write_content_size=False)
    want = [len(cctx.compress(t.encode())) / len(t.encode()) if t else 0.0 for t in texts]
    np.testing.assert_allclose(got, want)
    assert got[0] < got[1] and got[3] < got[0]  # repetition compresses: easier


def test_difficulty_scores_alive_rows_only():
    table = doc_table(["one two three", "alpha beta", "gone"], ["kept", "kept", "dropped"])
    out = Difficulty(CurriculumConfig(score="length"))(table)
    assert out["difficulty"].to_pylist() == [13.0, 10.0, None]
    # quality_score is a keep logit: difficulty is the drop probability 1 - sigmoid(score),
    # in [0, 1] however large the logit (a huge one overflows exp to the limit, 0)
    logits = [-2.0, 3.0, 0.5]
    scored = table.append_column("quality_score", pa.array(logits, pa.float32()))
    agent = Difficulty(CurriculumConfig(score="agent_score"))(scored)["difficulty"].to_pylist()
    assert agent[0] == pytest.approx(1 - 1 / (1 + np.exp(2.0)), rel=1e-6)
    assert agent[1] == pytest.approx(1 - 1 / (1 + np.exp(-3.0)), rel=1e-6)
    assert agent[0] > agent[1]  # a lower score is harder, as before
    assert agent[2] is None
    big = table.append_column("quality_score", pa.array([200.0, -200.0, 0.0], pa.float32()))
    assert Difficulty(CurriculumConfig(score="agent_score"))(big)["difficulty"].to_pylist()[
        :2] == [0.0, 1.0]
    with pytest.raises(ValueError, match="quality_score"):
        Difficulty(CurriculumConfig(score="agent_score"))(table)


def test_assign_stage_ties_go_up_and_nulls_to_stage_zero():
    stage = assign_stage(pa.array([0.1, 0.5, 0.7, None, 2.0], pa.float32()), [0.5, 1.0])
    assert stage.tolist() == [0, 1, 1, 0, 2]
    d = np.arange(9, dtype=float)
    stages, cuts = quantile_stages(d, 3)
    assert np.bincount(stages).tolist() == [3, 3, 3] and len(cuts) == 2


def test_stage_cuts_skip_dropped_and_duplicate_docs(tmp_path):
    pq.write_table(
        pa.table(
            {
                "doc_id": ["a", "b", "c", "d", "e", "f", "g"],
                "decision": ["kept"] * 6 + ["dropped"],
                "difficulty": pa.array([1, 2, 3, 4, 100, None, -50], pa.float32()),
            }
        ),
        tmp_path / "p.parquet",
    )
    pq.write_table(pa.table({"doc_id": ["e"]}), tmp_path / "dups.parquet")
    cuts = stage_cuts(str(tmp_path / "p.parquet"), str(tmp_path / "dups.parquet"), 2)
    assert cuts == [2.5]  # median of 1..4: e is a duplicate, f has no score, g was dropped
    assert stage_cuts(str(tmp_path / "p.parquet"), None, 2) == [3.0]


def test_pass2_routes_kept_docs_to_their_stage_shards(staged_run):
    run = staged_run
    marker = run.read_marker("curriculum")
    assert marker["score"] == "compression_ratio" and len(marker["cuts"]) == 2
    m = pl.read_parquet(run.manifest / "*.parquet")
    kept = m.filter(pl.col("decision") == "kept")
    assert kept.height > 500
    assert kept["difficulty"].null_count() == 0 and kept["stage"].null_count() == 0
    assert m.filter(pl.col("decision") != "kept")["stage"].null_count() == m.height - kept.height
    want = assign_stage(kept["difficulty"].to_numpy(), marker["cuts"])
    assert (kept["stage"].to_numpy() == want).all()
    # Quantile stages: about a third of the kept documents each.
    counts = kept["stage"].value_counts().sort("stage")["count"].to_list()
    assert all(abs(c - kept.height / 3) <= 2 for c in counts), counts
    seen = []
    for k in range(3):
        files = sorted((run.shards / f"stage={k}").glob("part-*.parquet"))
        assert len(files) == 3  # one part per input unit and stage
        shard = pl.read_parquet(files)
        assert set(shard["stage"].to_list()) == {k}
        seen += shard["doc_id"].to_list()
    assert sorted(seen) == sorted(kept["doc_id"].to_list())
    # Harder stages compress worse, by construction of the score.
    means = [kept.filter(pl.col("stage") == k)["difficulty"].mean() for k in range(3)]
    assert means[0] < means[1] < means[2]


def test_score_none_writes_one_stage(tmp_path):
    corpus = sentence_corpus(tmp_path / "c", n_docs=40, n_files=1)
    run = curate_in_process(corpus, tmp_path / "run", **{"curriculum.score": "none"})
    assert [p.name for p in run.shards.iterdir()] == ["stage=0"]
    m = pl.read_parquet(run.manifest / "*.parquet").filter(pl.col("decision") == "kept")
    assert m["difficulty"].null_count() == m.height and set(m["stage"]) == {0}
