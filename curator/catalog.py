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
SELECT NULL::VARCHAR AS doc_id, NULL::VARCHAR AS input_id, NULL::VARCHAR AS source,
       NULL::BIGINT AS record, NULL::VARCHAR AS decision, NULL::VARCHAR AS reason,
       NULL::VARCHAR AS error,
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


def _search_run(con: duckdb.DuckDBPyConnection, run: RunDir) -> None:
    """Resolve the views' relative paths against the run: DuckDB binds relative file paths
    against `file_search_path`, else the working directory (`cd RUN && duckdb catalog.duckdb`)."""
    root = run.root.resolve().as_posix().replace("'", "''")
    con.execute(f"SET file_search_path = '{root}'")


def _create_views(con: duckdb.DuckDBPyConnection, run: RunDir) -> None:
    # Paths relative to the run, so a moved or copied run still opens (views bind at creation,
    # hence the search path first).
    _search_run(con, run)
    manifest_glob = "manifest/*.parquet"
    shards_glob = "shards/stage=*/*.parquet"
    con.execute(f"CREATE OR REPLACE VIEW manifest AS SELECT * FROM read_parquet('{manifest_glob}')")
    con.execute(
        "CREATE OR REPLACE VIEW shards AS SELECT * FROM "
        f"read_parquet('{shards_glob}', hive_partitioning = false)"
    )
    # excluded/ (curator/excluded.py) may hold no file (nothing dropped, excluded.enabled=false,
    # a run older than it): the view is then empty with the base columns, so queries still bind.
    excluded_glob = "excluded/reason=*/*.parquet"
    excluded = (
        f"SELECT * FROM read_parquet('{excluded_glob}', hive_partitioning = false, "
        "union_by_name = true)"
        if any(run.excluded.glob("reason=*/*.parquet"))
        else EMPTY_EXCLUDED_SQL
    )
    con.execute(f"CREATE OR REPLACE VIEW excluded AS {excluded}")
    con.execute(f"CREATE OR REPLACE VIEW funnel AS {FUNNEL_SQL}")
    con.execute(f"CREATE OR REPLACE VIEW per_source AS {PER_SOURCE_SQL}")


def open_catalog(run: RunDir, read_only: bool = True) -> duckdb.DuckDBPyConnection:
    """Open the catalog (built first if missing) with its paths resolved against the run."""
    if not run.catalog.exists():
        build_catalog(run)
    con = duckdb.connect(str(run.catalog), read_only=read_only)
    _search_run(con, run)
    return con


class CatalogReader:
    """One read-only connection to a run's catalog for many queries. Each open binds the views
    again (~17 ms); the end of a run asks ~15 questions (its stats, then its report)."""

    def __init__(self, run: RunDir) -> None:
        self.run = run
        self.con = open_catalog(run)

    def query(self, sql: str) -> tuple[list[str], list[tuple]]:
        cur = self.con.execute(sql)
        return [d[0] for d in cur.description], cur.fetchall()

    def __enter__(self) -> CatalogReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.con.close()


def query(run: RunDir, sql: str) -> tuple[list[str], list[tuple]]:
    """One question, on a connection of its own."""
    with CatalogReader(run) as cat:
        return cat.query(sql)
