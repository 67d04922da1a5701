"""The agent's upweight action through a real curate run: the scorer's `sample_weight` reaches
the manifest and the shards, parquet/jsonl exports carry it, the bin export and the trainer
repeat each document that many times; a run without the agent (or older shards) weighs 1."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pyarrow.parquet as pq
import pytest
import torch

from curator.export import ExportConfig, run_export
from curator.rundir import RunDir
from curator.trainer.data import load_corpus
from policies.agent import PolicyNet
from policies.checkpoint import DEFAULT_POLICY, load_policy, save_policy
from tests.test_curriculum import curate_in_process, sentence_corpus

FACTOR = 3


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    return sentence_corpus(tmp_path_factory.mktemp("weights") / "corpus", n_docs=240)


@pytest.fixture(scope="module")
def upweight_policy(tmp_path_factory) -> Path:
    """The shipped policy's keep scorer plus an upweight head with random weights (about half
    of the documents upweighted), saved with save_policy like a trained one."""
    base = load_policy(DEFAULT_POLICY)
    torch.manual_seed(0)
    net = PolicyNet(base.spec.dim, base.net.hidden, upweight=True)
    net.load_state_dict({**net.state_dict(), **base.net.state_dict()})
    with torch.no_grad():
        net.up_head.weight.normal_(std=1.0)
    path = tmp_path_factory.mktemp("policy") / "upweight.safetensors"
    return save_policy(path, net, base.norm, base.spec, base.tokenizer,
                       {"env": {"upweight": True, "upweight_factor": FACTOR}}, base.target,
                       base.reference)


@pytest.fixture(scope="module")
def run(corpus, upweight_policy, tmp_path_factory) -> RunDir:
    out = tmp_path_factory.mktemp("weighted") / "run"
    return curate_in_process(corpus, out, **{"agent.enabled": "true",
                                             "agent.policy": str(upweight_policy)})


def _export(run: RunDir, out: Path, fmt: str) -> dict:
    return run_export(ExportConfig(run=str(run.root), output=str(out), format=fmt, seed=1))


def _kept(run: RunDir) -> pl.DataFrame:
    manifest = pl.read_parquet(run.manifest / "*.parquet")
    assert manifest.schema["sample_weight"] == pl.Int32
    assert manifest.filter(pl.col("decision") != "kept")["sample_weight"].null_count() == \
        manifest.filter(pl.col("decision") != "kept").height
    return manifest.filter(pl.col("decision") == "kept")


def test_manifest_and_shards_carry_the_policy_weights(run):
    kept = _kept(run)
    assert set(kept["sample_weight"].to_list()) == {1, FACTOR}  # both choices occur
    shards = pl.read_parquet(run.shards / "*" / "*.parquet", hive_partitioning=False)
    assert shards.schema["sample_weight"] == pl.Int32
    joined = shards.join(kept.select("doc_id", "sample_weight"), on="doc_id", suffix="_m")
    assert joined.height == kept.height == shards.height
    assert (joined["sample_weight"] == joined["sample_weight_m"]).all()


def test_exports_carry_the_weight_and_bin_repeats_documents(run, tmp_path):
    kept = _kept(run).select("doc_id", "n_tokens", "sample_weight")
    weights = dict(zip(kept["doc_id"], kept["sample_weight"], strict=True))

    _export(run, tmp_path / "pq", "parquet")
    parquet = pl.read_parquet(tmp_path / "pq" / "*.parquet")
    assert parquet.height == kept.height
    assert [weights[d] for d in parquet["doc_id"]] == parquet["sample_weight"].to_list()
    _export(run, tmp_path / "js", "jsonl")
    rows = pl.read_ndjson(sorted((tmp_path / "js").glob("*.jsonl")))
    assert [weights[d] for d in rows["doc_id"]] == rows["sample_weight"].to_list()

    summary = _export(run, tmp_path / "bin", "bin")
    header = json.loads((tmp_path / "bin" / "header.json").read_text())
    weighted_tokens = int((kept["n_tokens"] * kept["sample_weight"]).sum())
    assert header["sample_weight_applied"] is True
    assert header["n_tokens"] == weighted_tokens == summary["weighted_tokens"]
    assert header["n_docs"] == int(kept["sample_weight"].sum())
    assert header["n_distinct_docs"] == kept.height
    assert summary["sample_weight_applied"] is True
    # each document's copies are whole documents in a row, in the parquet export's order
    corpus = load_corpus(tmp_path / "bin")
    ids, docs = corpus.doc_ids.to_pylist(), corpus.docs()
    expect = [d for d in parquet["doc_id"] for _ in range(weights[d])]
    assert ids == expect
    by_id = dict(zip(parquet["doc_id"], parquet["tokens"].to_list(), strict=True))
    assert all(doc.tolist() == by_id[i] for i, doc in zip(ids, docs, strict=True))


def test_trainer_repeats_weighted_documents_from_shards(run):
    kept = _kept(run)
    corpus = load_corpus(run.root)
    assert len(corpus.tokens) == int((kept["n_tokens"] * kept["sample_weight"]).sum())
    assert corpus.n_docs == int(kept["sample_weight"].sum())
    ids = corpus.doc_ids.to_pylist()
    weights = dict(zip(kept["doc_id"], kept["sample_weight"], strict=True))
    assert all(ids.count(d) == w for d, w in weights.items())


def test_without_the_agent_and_in_older_shards_every_weight_is_one(corpus, tmp_path):
    run = curate_in_process(corpus, tmp_path / "plain")
    kept = _kept(run)
    assert kept["sample_weight"].to_list() == [1] * kept.height
    # shards written before sample_weight existed: same exports and corpus, weight 1
    for shard in run.shards.glob("*/*.parquet"):
        table = pq.read_table(shard)
        pq.write_table(table.drop_columns(["sample_weight"]), shard)
    summary = _export(run, tmp_path / "bin", "bin")
    assert summary["weighted_tokens"] == int(kept["n_tokens"].sum())
    header = json.loads((tmp_path / "bin" / "header.json").read_text())
    assert header["n_docs"] == header["n_distinct_docs"] == kept.height
    _export(run, tmp_path / "pq", "parquet")
    assert set(pl.read_parquet(tmp_path / "pq" / "*.parquet")["sample_weight"]) == {1}
    assert load_corpus(run.root).n_docs == kept.height
