"""The run's DuckDB catalog: views over shards and manifest, and the queries `stats` prints."""

from __future__ import annotations

from pathlib import Path

import duckdb

from curator.rundir import RunDir

FUNNEL_SQL = """
SELECT decision, coalesce(reason, '') AS reason, count(*) AS docs,
       round(100.0 * count(*) / sum(count(*)) OVER (), 2) AS pct
FROM manifest GROUP BY decision, coalesce(reason, '')
ORDER BY decision = 'kept' DESC, docs DESC, reason
"""

PER_SOURCE_SQL = """
SELECT source, count(*) AS records,
       count(*) FILTER (decision = 'kept') AS kept,
       count(*) FILTER (decision = 'dropped') AS dropped,
       count(*) FILTER (decision = 'quarantined') AS quarantined,
       coalesce(sum(n_tokens) FILTER (decision = 'kept'), 0) AS tokens
FROM manifest GROUP BY source ORDER BY source
"""

EMPTY_EXCLUDED_SQL = """
SELECT NULL::VARCHAR AS doc_id, NULL::VARCHAR AS source, NULL::BIGINT AS record,
       NULL::VARCHAR AS decision, NULL::VARCHAR AS reason, NULL::VARCHAR AS error,
       NULL::VARCHAR AS duplicate_of, NULL::BIGINT AS n_chars, NULL::VARCHAR AS text
WHERE false
"""


def build_catalog(run: RunDir) -> Path:
    """(Re)create views over this run's parquet files. Cheap, so it runs after every job and
    whenever the catalog is opened from a moved run directory."""
    tmp = run.catalog.with_suffix(".duckdb.tmp")
    tmp.unlink(missing_ok=True)
    with duckdb.connect(str(tmp)) as con:
        _create_views(con, run)
    tmp.replace(run.catalog)
    return run.catalog


def _create_views(con: duckdb.DuckDBPyConnection, run: RunDir) -> None:
    manifest_glob = (run.manifest / "*.parquet").as_posix()
    shards_glob = (run.shards / "stage=*" / "*.parquet").as_posix()
    con.execute(f"CREATE OR REPLACE VIEW manifest AS SELECT * FROM read_parquet('{manifest_glob}')")
    con.execute(
        "CREATE OR REPLACE VIEW shards AS SELECT * FROM "
        f"read_parquet('{shards_glob}', hive_partitioning = false)"
    )
    # excluded/ (curator/excluded.py) may hold no file (nothing dropped, excluded.enabled=false,
    # a run older than it): the view is then empty with the base columns, so queries still bind.
    excluded_glob = (run.excluded / "reason=*" / "*.parquet").as_posix()
    excluded = (
        f"SELECT * FROM read_parquet('{excluded_glob}', hive_partitioning = false, "
        "union_by_name = true)"
        if any(run.excluded.glob("reason=*/*.parquet"))
        else EMPTY_EXCLUDED_SQL
    )
    con.execute(f"CREATE OR REPLACE VIEW excluded AS {excluded}")
    con.execute(f"CREATE OR REPLACE VIEW funnel AS {FUNNEL_SQL}")
    con.execute(f"CREATE OR REPLACE VIEW per_source AS {PER_SOURCE_SQL}")
    con.execute("CREATE OR REPLACE TABLE run_info AS SELECT ? AS root", [run.root.as_posix()])


def open_catalog(run: RunDir, read_only: bool = True) -> duckdb.DuckDBPyConnection:
    """Open the catalog; rebuild it first if it is missing or points at another location."""
    if run.catalog.exists():
        con = duckdb.connect(str(run.catalog), read_only=True)
        root = con.execute("SELECT root FROM run_info").fetchone()[0]
        if root == run.root.as_posix():
            return con
        con.close()
    build_catalog(run)
    return duckdb.connect(str(run.catalog), read_only=read_only)


def query(run: RunDir, sql: str) -> tuple[list[str], list[tuple]]:
    with open_catalog(run) as con:
        cur = con.execute(sql)
        return [d[0] for d in cur.description], cur.fetchall()
