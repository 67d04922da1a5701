"""DuckDB query input: streamed batches, wrong schema, bad config raised at expansion."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from connectors.registry import expand_inputs, read_unit
from curator.config import ConfigError, InputSpec, ReadConfig
from curator.schema import is_read_schema


def make_db(path: Path, n: int = 30) -> None:
    with duckdb.connect(str(path)) as con:
        con.execute("CREATE TABLE docs (id INTEGER, body VARCHAR, raw BLOB)")
        con.execute(
            "INSERT INTO docs SELECT i, 'row ' || i, CASE WHEN i = 3 THEN '\\xE9'::BLOB "
            "ELSE ('blob ' || i)::BLOB END FROM range(?) t(i)",
            [n],
        )


def read_all(cfg: ReadConfig | None = None, **spec) -> list[pa.Table]:
    units = expand_inputs([InputSpec(format="duckdb", **spec)])
    assert len(units) == 1 and units[0].format == "duckdb"
    tables = list(read_unit(units[0], cfg or ReadConfig()))
    assert all(is_read_schema(t.schema) for t in tables)
    return tables


def test_round_trip_file_query_in_batches(tmp_path: Path) -> None:
    db = tmp_path / "c.duckdb"
    make_db(db)
    tables = read_all(
        ReadConfig(batch_size=8),
        path=str(db),
        query="SELECT id, body AS text FROM docs ORDER BY id",
    )
    assert len(tables) >= 4
    out = pa.concat_tables(tables, promote_options="default")
    assert out.num_rows == 30
    assert out.column("text").to_pylist() == [f"row {i}" for i in range(30)]
    assert out.column("input_id").to_pylist() == [str(i) for i in range(30)]
    assert out.column("record").to_pylist() == list(range(30))
    # opened read-only: the database is unchanged and still writable by its owner
    with duckdb.connect(str(db)) as con:
        assert con.execute("SELECT count(*) FROM docs").fetchone() == (30,)


def test_memory_query_over_parquet(tmp_path: Path) -> None:
    pq.write_table(pa.table({"text": ["a b", "", "c\x00d"]}), tmp_path / "x.parquet")
    out = pa.concat_tables(
        read_all(path=":memory:", query=f"SELECT * FROM read_parquet('{tmp_path}/x.parquet')")
    )
    assert out.column("reason").to_pylist() == [None, "empty_text", "nul_bytes"]


def test_blob_text_with_invalid_utf8_and_nulls(tmp_path: Path) -> None:
    db = tmp_path / "c.duckdb"
    make_db(db, n=5)
    out = pa.concat_tables(
        read_all(
            path=str(db),
            query="SELECT id, CASE WHEN id = 4 THEN NULL ELSE raw END AS text "
            "FROM docs ORDER BY id",
        )
    )
    assert out.column("reason").to_pylist() == [
        None,
        None,
        None,
        "invalid_utf8",
        "missing_text_field",
    ]


def test_missing_text_column_is_one_wrong_schema_record(tmp_path: Path) -> None:
    db = tmp_path / "c.duckdb"
    make_db(db)
    out = pa.concat_tables(read_all(path=str(db), query="SELECT id, body FROM docs")).to_pylist()
    assert len(out) == 1 and out[0]["reason"] == "wrong_schema"
    assert "'body'" in out[0]["error"]


def test_bad_sql_and_missing_file_raise_config_errors(tmp_path: Path) -> None:
    db = tmp_path / "c.duckdb"
    make_db(db)
    with pytest.raises(ConfigError, match="input.query"):
        expand_inputs([InputSpec(format="duckdb", path=str(db), query="SELECT * FROM nope")])
    with pytest.raises(ConfigError, match="missing.duckdb"):
        expand_inputs(
            [
                InputSpec(
                    format="duckdb", path=str(tmp_path / "missing.duckdb"), query="SELECT 1 AS text"
                )
            ]
        )


@pytest.mark.parametrize(
    "query",
    [
        "COPY (SELECT 'x' AS text) TO '{out}'",
        "SELECT 'x' AS text; COPY (SELECT 1) TO '{out}'",
        "ATTACH '{out}' AS other",
        "CREATE TABLE t AS SELECT 'x' AS text",
    ],
)
def test_a_query_that_is_not_one_select_is_refused_before_it_runs(tmp_path: Path, query):
    out = tmp_path / "written.csv"
    with pytest.raises(ValueError, match="exactly one SELECT"):
        expand_inputs([InputSpec(path=":memory:", format="duckdb", query=query.format(out=out))])
    assert not out.exists()  # validation ran nothing


def test_a_select_and_a_from_first_query_are_accepted() -> None:
    for query in ("SELECT 'a' AS text", "FROM (SELECT 'a' AS text)",
                  "WITH t AS (SELECT 'a' AS text) SELECT * FROM t"):
        assert InputSpec(path=":memory:", format="duckdb", query=query).query == query
