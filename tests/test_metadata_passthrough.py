"""An input's own metadata reaches the manifest and the exports: a WARC page's target URI,
date and record id; a jsonl line's `url`, `date` and `metadata` object (as JSON text). DuckDB
over the manifest can then answer "drops by domain", and the url filters act on those urls."""

from __future__ import annotations

import json

import polars as pl

from curator.catalog import open_catalog
from curator.config import CurateConfig, load_model
from curator.executor import run_curate
from curator.export import ExportConfig, run_export
from curator.rundir import RunDir
from tests.connectors.test_warc_reader import html_responses, write_warc
from tests.corpus import real_paragraphs


def test_urls_dates_and_metadata_reach_the_manifest_and_the_exports(ray_cluster, tmp_path):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    uris = write_warc(corpus / "pages.warc.gz", n_articles=4)
    paras = real_paragraphs()
    lines = [{"id": f"j{i}", "text": paras[i], "url": f"https://blog{i % 2}.example.org/p{i}",
              "date": f"2024-05-0{i + 1}", "metadata": {"lang_hint": "en", "rank": i}}
             for i in range(6)]
    lines.append({"id": "plain", "text": paras[10]})  # a line without any metadata
    (corpus / "docs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))
    cfg = load_model(CurateConfig, base={
        "inputs": [{"path": str(corpus)}], "output": str(tmp_path / "run"), "quiet": True,
        "tokenizer": {"vocab_size": 400}, "language": {"enabled": False},
        "quality": {"gopher_quality": {"min_alpha_words_ratio": 0.5}},
        # the url filters act on the urls the readers kept
        "filters": {"blocked_domains": ["blog1.example.org"], "url_patterns": ["/p4$"]}})
    run_curate(cfg)

    m = pl.read_parquet(tmp_path / "run" / "manifest" / "*.parquet")
    warc = m.filter(pl.col("source").str.ends_with("pages.warc.gz"))
    record_ids = {rid for rid, _ in html_responses(corpus / "pages.warc.gz")}
    assert sorted(warc["url"].to_list()) == sorted(uris)  # every HTML page, kept or not
    assert warc["date"].null_count() == 0
    assert {json.loads(x)["warc_record_id"] for x in warc["metadata"]} == record_ids
    docs = m.filter(pl.col("source").str.ends_with("docs.jsonl")).sort("input_id")
    by_id = {r["input_id"]: r for r in docs.iter_rows(named=True)}
    assert by_id["j3"]["url"] == "https://blog1.example.org/p3"
    assert by_id["j3"]["date"] == "2024-05-04"
    assert json.loads(by_id["j3"]["metadata"]) == {"lang_hint": "en", "rank": 3}
    assert by_id["plain"]["url"] is None and by_id["plain"]["metadata"] is None
    assert [by_id[f"j{i}"]["reason"] for i in (1, 3, 4, 5)] == [
        "blocked_domain", "blocked_domain", "blocked_url", "blocked_domain"]
    assert by_id["plain"]["reason"] != "blocked_domain"

    # DuckDB over the run: decisions by domain
    con = open_catalog(RunDir.at(tmp_path / "run"))
    rows = con.execute(
        "SELECT regexp_extract(url, '://([^/]+)', 1) AS domain, decision, count(*) "
        "FROM manifest WHERE url IS NOT NULL GROUP BY ALL ORDER BY ALL").fetchall()
    assert {r[0] for r in rows} == {"example.com", "blog0.example.org", "blog1.example.org"}

    # the jsonl export carries url at the top level, with the text
    run_export(ExportConfig(run=str(tmp_path / "run"), output=str(tmp_path / "export"),
                            format="jsonl"))
    exported = [json.loads(line) for f in sorted((tmp_path / "export").glob("part-*.jsonl"))
                for line in f.read_text().splitlines()]
    kept = m.filter(pl.col("decision") == "kept")
    assert len(exported) == kept.height
    assert {r["url"] for r in exported} == set(kept["url"].to_list())
    assert all("text" in r for r in exported)


def test_parquet_and_duckdb_inputs_pass_their_metadata_columns_as_text(tmp_path):
    """url / date / metadata columns of a columnar input: strings as they are, a timestamp as
    ISO text, a struct as compact JSON; a null stays null; a file without them adds none."""
    import datetime

    import duckdb
    import pyarrow as pa
    import pyarrow.parquet as pq

    from connectors.registry import expand_inputs, read_unit
    from curator.config import InputSpec, ReadConfig

    table = pa.table({
        "id": ["a", "b"], "text": ["hello there", "second doc"],
        "url": ["https://x.org/1", None],
        "date": pa.array([datetime.datetime(2024, 1, 2), None]),
        "metadata": pa.array([{"k": 1, "s": "v"}, None]),
    })
    pq.write_table(table, tmp_path / "docs.parquet")
    con = duckdb.connect(str(tmp_path / "docs.duckdb"))
    con.execute(f"CREATE TABLE docs AS SELECT * FROM '{tmp_path / 'docs.parquet'}'")
    con.close()
    want = [{"url": "https://x.org/1", "date": "2024-01-02 00:00:00.000000",
             "metadata": '{"k":1,"s":"v"}'}, {"url": None, "date": None, "metadata": None}]
    for spec in (InputSpec(path=str(tmp_path / "docs.parquet")),
                 InputSpec(path=str(tmp_path / "docs.duckdb"), format="duckdb",
                           query="SELECT * FROM docs ORDER BY id")):
        (unit,) = expand_inputs([spec])
        (batch,) = list(read_unit(unit, ReadConfig()))
        assert batch.select(["url", "date", "metadata"]).to_pylist() == want, spec
    pq.write_table(table.select(["id", "text"]), tmp_path / "plain.parquet")
    (unit,) = expand_inputs([InputSpec(path=str(tmp_path / "plain.parquet"))])
    (batch,) = list(read_unit(unit, ReadConfig()))
    assert not {"url", "date", "metadata"} & set(batch.column_names)
