"""One feature path: training, `curator score` and the curate stage give the same vectors.

The three callers reach `FeatureExtractor.__call__` differently: training on the pool's raw
strings, `curator score` on records a Ray job read, the curate stage on the text its chain has
normalized and (C4) rewritten. The extractor normalizes itself, so the same document gets the
same vector everywhere; a document whose lines C4 removes is scored in curate as the text the
run keeps, which must equal the extractor's vector of that text.
"""

import json
import unicodedata

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from connectors.registry import expand_inputs, read_unit
from curator.config import AgentStageConfig, CurateConfig, InputSpec, ReadConfig
from curator.pipeline import build_pass1_steps, run_chain
from policies.checkpoint import DEFAULT_POLICY, load_policy
from policies.score_job import run_score
from policies.scorer import PolicyScorer

SENTENCES = [
    "The committee met on Tuesday to discuss the budget for the coming year.",
    "After a long debate, the members agreed that the library should get more money.",
    "The park near the school needed repairs before the summer holidays began.",
    "Several parents offered to help paint the benches and plant new trees.",
    "The mayor thanked everyone and promised to report back within a month.",
    "Local newspapers covered the meeting in detail the following morning.",
]


def documents() -> list[str]:
    # \r\n line ends, a decomposed accent (NFD) and doubled spaces: the normalization the
    # extractor applies is visible in the text, so skipping it would change the features
    cafe = unicodedata.normalize("NFD", "The new café opened its doors to the town.")
    kept_as_is = "\r\n".join(SENTENCES + [cafe])
    spaced = "  ".join(SENTENCES[::-1]) + "\n" + cafe
    # lines without end punctuation: C4 removes them in curate, so curate scores the rest
    rewritten = "\n".join(["Home | About | Contact", *SENTENCES, "Share this page", cafe])
    return [kept_as_is, spaced, rewritten]


@pytest.mark.timeout(300)
def test_training_score_and_curate_share_one_feature_path(ray_cluster, tmp_path):
    texts = documents()
    src = tmp_path / "docs.jsonl"
    src.write_text("".join(json.dumps({"id": str(i), "text": t}) + "\n"
                           for i, t in enumerate(texts)))
    policy = load_policy(DEFAULT_POLICY)
    names = [f"feat_{n}" for n in policy.spec.names]

    # training: the extractor on the raw strings
    training = policy.feature_extractor()(pa.array(texts, pa.string()))

    # curator score: a Ray job reading the file
    out = tmp_path / "scores.parquet"
    run_score([str(src)], str(out), policy=None, batch_size=2, concurrency=1, quiet=True)
    scored = pq.read_table(out).sort_by("input_id")
    served = np.stack([scored.column(n).to_numpy() for n in names], axis=1)
    np.testing.assert_array_equal(served, training)

    # the curate stage: the pass-1 chain curate builds, on the records its reader yields
    cfg = CurateConfig(inputs=[InputSpec(path=str(src))], output=str(tmp_path / "run"),
                       agent=AgentStageConfig(enabled=True))
    steps = build_pass1_steps(cfg)
    scorer = next(s for s in steps if isinstance(s, PolicyScorer))
    scorer.with_features = True
    (unit,) = expand_inputs(cfg.inputs)
    table = run_chain(steps, pa.concat_tables(list(read_unit(unit, ReadConfig()))))
    assert table.column("decision").to_pylist() == ["kept"] * 3
    curated = np.stack([table.column(n).to_numpy() for n in names], axis=1)
    np.testing.assert_array_equal(curated[:2], training[:2])
    # the third document reached the scorer without its menu lines: scored as kept
    kept_text = table.column("text").to_pylist()[2]
    assert "Home | About" not in kept_text and "Home | About" in texts[2]
    np.testing.assert_array_equal(
        curated[2], policy.feature_extractor()(pa.array([kept_text], pa.string()))[0])
    assert not np.array_equal(curated[2], training[2])
