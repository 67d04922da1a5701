import numpy as np
import pyarrow as pa
import pytest

from curator.schema import DOC_SCHEMA, DROPPED, KEPT
from policies.pool import char_soup, token_shuffle
from policies.scorer import AGENT_REASON, PolicyScorer

PROSE = [
    "The committee met on Tuesday to discuss the budget for the coming year. After a long "
    "debate, the members agreed that the library should receive more money for new books, "
    "and that the park near the school needed repairs before the summer.",
    "When the train arrived at the station, the travellers stepped onto the platform and "
    "looked around for their friends. It had been a long journey through the mountains, and "
    "everyone was glad to be home again after so many weeks away.",
]


def _table(texts: list[str | None], decisions: list[str]) -> pa.Table:
    n = len(texts)
    return pa.table({
        "doc_id": [f"d{i}" for i in range(n)], "source": ["s"] * n, "record": list(range(n)),
        "text": pa.array(texts, pa.string()), "decision": decisions,
        "reason": pa.array([None if d == KEPT else "earlier" for d in decisions], pa.string()),
        "error": pa.nulls(n, pa.string()), "n_chars": [len(t or "") for t in texts],
    })


@pytest.fixture(scope="module")
def junk() -> list[str]:
    rng = np.random.default_rng(0)
    return [char_soup(PROSE[0], rng), token_shuffle(PROSE[1], rng)]


@pytest.mark.parametrize("policy", [None, "heuristic"])
def test_clean_scores_above_junk(policy, junk):
    out = PolicyScorer(policy)(_table(PROSE + junk, [KEPT] * 4))
    s = out.column("quality_score").to_numpy()
    assert out.schema.field("quality_score").type == pa.float32()
    assert min(s[:2]) > s[2]  # character soup is the clearest junk
    assert np.mean(s[:2]) > np.mean(s[2:])


def test_only_alive_rows_scored_and_decisions_untouched():
    out = PolicyScorer()(_table([PROSE[0], PROSE[1], None], [KEPT, DROPPED, "quarantined"]))
    assert out.column("quality_score").null_count == 2
    assert out.column("decision").to_pylist() == [KEPT, DROPPED, "quarantined"]
    assert out.column("reason").to_pylist() == [None, "earlier", "earlier"]


def test_threshold_drops_with_reason(junk):
    out = PolicyScorer("heuristic", threshold=5.0)(_table(PROSE + junk[:1], [KEPT] * 3))
    assert out.column("decision").to_pylist()[2] == DROPPED
    assert out.column("reason").to_pylist()[2] == AGENT_REASON


def test_keep_fraction(junk):
    out = PolicyScorer(keep_fraction=0.5)(_table(PROSE + junk, [KEPT] * 4))
    decisions = out.column("decision").to_pylist()
    assert decisions.count(KEPT) == 2
    assert set(out.column("reason").drop_null().to_pylist()) == {AGENT_REASON}


def test_empty_table_and_features():
    scorer = PolicyScorer(with_features=True)
    out = scorer(DOC_SCHEMA.empty_table())
    assert out.num_rows == 0 and "quality_score" in out.column_names
    assert f"feat_{scorer.feature_names[0]}" in out.column_names


def test_bad_options():
    with pytest.raises(ValueError, match="not both"):
        PolicyScorer("heuristic", threshold=0.0, keep_fraction=0.5)
    with pytest.raises(FileNotFoundError):
        PolicyScorer("/nonexistent/policy.safetensors")
