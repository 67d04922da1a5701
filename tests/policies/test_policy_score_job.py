import json

import pyarrow.parquet as pq
import pytest

from curator.doc_ids import doc_id
from policies.score_job import run_score


@pytest.mark.timeout(120)
def test_run_score_one_row_per_record(ray_cluster, tmp_path):
    src = tmp_path / "in.jsonl"
    records = [{"id": f"doc-{i}", "text": f"The {i}th story of the town was told by the old "
                "teacher to the children, who listened and then went home for dinner."}
               for i in range(7)]
    lines = [json.dumps(r) for r in records] + ["{not json"]
    src.write_text("\n".join(lines) + "\n")
    out = tmp_path / "scores.parquet"
    summary = run_score([str(src)], str(out), policy=None, batch_size=4, concurrency=1)
    table = pq.read_table(out)
    assert summary["rows"] == table.num_rows == 8
    ids = table.column("input_id").to_pylist()
    assert ids == [r["id"] for r in records] + [None]
    assert table.column("doc_id").to_pylist() == [doc_id(str(src), r) for r in range(8)]
    scores = table.column("quality_score").to_pylist()
    assert all(s is not None for s in scores[:7]) and scores[7] is None  # quarantined row
    assert any(c.startswith("feat_gopher") for c in table.column_names)
