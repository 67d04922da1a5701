"""The quality agent as a stage of `curator curate`, and the `curator score` / `curator agent
train` commands."""

from __future__ import annotations

import polars as pl
import pytest
from typer.testing import CliRunner

from curator.cli import app
from curator.config import ConfigError
from policies.checkpoint import load_policy
from tests.test_curriculum import curate_config, curate_in_process, sentence_corpus


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return sentence_corpus(tmp_path_factory.mktemp("agent-stage") / "corpus", n_docs=240)


def manifest(run) -> pl.DataFrame:
    return pl.read_parquet(run.manifest / "*.parquet")


def test_agent_stage_scores_and_drops_with_its_reason(corpus, tmp_path):
    scored = manifest(curate_in_process(corpus, tmp_path / "a", **{"agent.enabled": "true"}))
    alive = scored.filter(pl.col("decision") == "kept")
    assert alive["quality_score"].null_count() == 0  # every kept doc has a score
    assert "agent_low_score" not in scored["reason"].to_list()  # score only: nothing dropped

    cut = manifest(
        curate_in_process(
            corpus, tmp_path / "b", **{"agent.enabled": "true", "agent.keep_fraction": "0.5"}
        )
    )
    dropped = cut.filter(pl.col("reason") == "agent_low_score")
    kept = cut.filter(pl.col("decision") == "kept")
    assert 0.3 < dropped.height / (dropped.height + kept.height) < 0.7
    # the dropped docs are the low-scored ones: their best score is under the kept median
    assert dropped["quality_score"].max() <= kept["quality_score"].median()
    assert cut.height == scored.height  # conservation: one manifest row per input record


def test_agent_score_curriculum_needs_the_stage(corpus, tmp_path):
    with pytest.raises(ConfigError, match="agent.enabled"):
        curate_config(corpus, tmp_path / "c", **{"curriculum.score": "agent_score"})
    with pytest.raises(ConfigError, match="agent.policy"):
        curate_config(
            corpus, tmp_path / "c", **{"agent.enabled": "true", "agent.policy": "/no/such/policy"}
        )


def test_score_command_heuristic_and_default(ray_cluster, corpus, tmp_path):
    for policy in ("heuristic", "default"):
        out = tmp_path / f"{policy}.parquet"
        result = CliRunner().invoke(
            app, ["score", "--input", str(corpus), "--output", str(out), "--policy", policy]
        )
        assert result.exit_code == 0, result.output
        table = pl.read_parquet(out)
        assert table.height == 240 and table["quality_score"].null_count() == 0
        assert table["input_id"].str.starts_with("d").all()  # the input's own ids
        assert table["doc_id"].n_unique() == table.height


def test_agent_train_command(tmp_path):
    out = tmp_path / "p.safetensors"
    sets = [
        f"output={out}",
        "total_steps=16",
        "pool.n_docs=120",
        "pool.heldout_docs=20",
        "env.docs_per_step=8",
        "env.episode_steps=4",
        "sketch_dim=8",
        "eval_interval=0",
    ]
    result = CliRunner().invoke(app, ["agent", "train", *[a for s in sets for a in ("--set", s)]])
    assert result.exit_code == 0, result.output
    assert '"steps": 16' in result.output.replace("\n", "")
    assert load_policy(out).config["total_steps"] == 16
