"""HTML held in a jsonl/parquet/DuckDB field (input.html_field) and .html files: extracted to
text by the same code as WARC pages; bad pages quarantined with a reason, none lost."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from pydantic import ValidationError

from connectors.registry import expand_inputs, format_of, read_unit
from curator.config import InputSpec, ReadConfig
from curator.schema import is_read_schema
from tests.corpus import real_paragraphs

PAGE = (
    "<!DOCTYPE html><html><head><title>Doc {i}</title><script>var tracker = 1;</script>"
    "<style>p {{ color: red }}</style></head><body>"
    "<nav><ul><li><a href='/'>Home</a></li><li><a href='/about'>About us</a></li></ul></nav>"
    "<main><article><h1>Reference {i}</h1><p>{a}</p><p>{b}</p></article></main>"
    "<footer>Copyright 2024 Example Inc. All rights reserved.</footer></body></html>"
)
SCRIPT_ONLY = "<html><head><script>only()</script></head><body></body></html>"
BOILERPLATE = ("tracker", "color: red", "<p>", "</article>", "Copyright", "About us")
EXTRACTORS = ["resiliparse", "trafilatura"]


def pages(n: int) -> list[tuple[str, str]]:
    """(html, a sentence of its article) for n pages built from real English prose."""
    # ASCII quotes: one page is also stored as latin-1 bytes.
    paras = [p.replace("\u2019", "'") for p in real_paragraphs()]
    out = []
    for i in range(n):
        a, b = paras[2 * i], paras[2 * i + 1]
        out.append((PAGE.format(i=i, a=a, b=b), a.split(". ")[0]))
    return out


def read_all(path: Path | str, cfg: ReadConfig | None = None, **spec) -> pa.Table:
    units = expand_inputs([InputSpec(path=str(path), **spec)])
    tables = [t for u in units for t in read_unit(u, cfg or ReadConfig())]
    assert all(is_read_schema(t.schema) for t in tables)
    return pa.concat_tables(tables, promote_options="default")


def write_jsonl(path: Path, rows: list[dict], tail: list[bytes] = ()) -> Path:
    lines = [json.dumps(r).encode() for r in rows] + list(tail)
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path


def assert_article(text: str, sentence: str) -> None:
    assert sentence in text
    for junk in BOILERPLATE:
        assert junk not in text, junk


def jsonl_rows() -> tuple[list[dict], list[str]]:
    good = pages(3)
    rows = [
        {"id": f"p{i}", "url": f"http://example.com/{i}", "html": h}
        for i, (h, _) in enumerate(good)
    ]
    rows += [
        {"id": "script", "html": SCRIPT_ONLY},
        {"id": "empty", "html": ""},
        {"id": "missing", "text": "a row with text but no html"},
    ]
    return rows, [s for _, s in good]


@pytest.mark.parametrize("extractor", EXTRACTORS)
def test_jsonl_html_field_yields_article_text_and_quarantines_bad_pages(
    tmp_path: Path, extractor: str
) -> None:
    rows, sentences = jsonl_rows()
    path = write_jsonl(tmp_path / "pages.jsonl", rows)
    out = read_all(path, html_field="html", html_extractor=extractor).to_pylist()
    assert [r["input_id"] for r in out] == [r["id"] for r in rows]  # none lost, ids kept
    for row, sentence in zip(out[:3], sentences, strict=True):
        assert row["decision"] == "kept"
        assert_article(row["text"], sentence)
    script, empty, missing = out[3:]
    assert script["reason"] == "no_text_extracted" and script["text"] is None
    assert f"{extractor} found no text" in script["error"]
    assert empty["reason"] == "no_text_extracted"
    assert missing["reason"] == "missing_text_field"
    assert "input.html_field" in missing["error"]


def test_jsonl_slow_path_extracts_the_same_text(tmp_path: Path) -> None:
    """A batch with a bad line is parsed line by line; its pages must come out as on the fast
    path, and a non-string html is text_not_string there."""
    rows, _ = jsonl_rows()
    fast = read_all(write_jsonl(tmp_path / "a.jsonl", rows), html_field="html")
    slow = read_all(
        write_jsonl(tmp_path / "b.jsonl", rows + [{"id": "int", "html": 7}], [b"{not json"]),
        html_field="html",
    )
    n = len(rows)
    assert slow.slice(0, n).select(["input_id", "text", "decision", "reason"]) == fast.select(
        ["input_id", "text", "decision", "reason"]
    )
    assert slow.column("reason").to_pylist()[n:] == ["text_not_string", "malformed_json"]
    assert "input.html_field" in slow.column("error")[n].as_py()


@pytest.mark.parametrize("tail", [b"", b"[]\n"], ids=["fast_path", "slow_path"])
def test_missing_text_with_an_html_field_names_html_field_as_the_fix(
    tmp_path: Path, tail: bytes
) -> None:
    """The usual first mistake with scraped pages: the error names the fix."""
    (html, _), *_ = pages(1)
    path = tmp_path / "raw.jsonl.gz"
    path.write_bytes(gzip.compress(json.dumps({"id": "x", "html": html}).encode() + b"\n" + tail))
    row = read_all(path).to_pylist()[0]
    assert row["reason"] == "missing_text_field"
    assert "fields are ['id', 'html']" in row["error"]
    assert "set input.html_field: html" in row["error"]


def test_missing_text_without_html_field_keeps_the_plain_fix(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "x.jsonl", [{"id": "x", "body": "words"}])
    error = read_all(path).column("error")[0].as_py()
    assert error == "field 'text' missing or null; fields are ['id', 'body']; set input.text_field"


def parquet_fixture(path: Path) -> list[str]:
    """String html, the same page as latin-1 bytes (its charset in a <meta>), a null and a
    script-only page."""
    (h0, s0), (h1, s1) = pages(2)
    latin = h1.replace("<head>", "<head><meta charset='iso-8859-1'>").replace(
        "Reference 1", "Référence café"
    )
    table = pa.table(
        {
            "id": ["a", "b", "c", "d"],
            "url": ["http://e.com/a", "http://e.com/b", None, "http://e.com/d"],
            "html": [h0, None, None, SCRIPT_ONLY],
            "raw": pa.array(
                [h0.encode(), latin.encode("latin-1"), None, SCRIPT_ONLY.encode()], pa.binary()
            ),
        }
    )
    pq.write_table(table, path, row_group_size=2)
    return [s0, s1]


@pytest.mark.parametrize("extractor", EXTRACTORS)
def test_parquet_html_field_string_and_binary_columns(tmp_path: Path, extractor: str) -> None:
    path = tmp_path / "pages.parquet"
    s0, s1 = parquet_fixture(path)
    out = read_all(path, html_field="html", html_extractor=extractor).to_pylist()
    assert [r["reason"] for r in out] == [
        None,
        "missing_text_field",
        "missing_text_field",
        "no_text_extracted",
    ]
    assert_article(out[0]["text"], s0)
    assert "input.html_field 'html'" in out[1]["error"]

    raw = read_all(path, html_field="raw", html_extractor=extractor).to_pylist()
    assert [r["decision"] for r in raw] == ["kept", "kept", "quarantined", "quarantined"]
    assert_article(raw[1]["text"], s1)
    assert "Référence café" in raw[1]["text"]  # bytes decoded by the page's own charset


def test_parquet_missing_columns_name_the_fix(tmp_path: Path) -> None:
    path = tmp_path / "pages.parquet"
    parquet_fixture(path)
    no_text = read_all(path).to_pylist()
    assert [r["reason"] for r in no_text] == ["wrong_schema"]
    assert "set input.html_field: html" in no_text[0]["error"]
    no_html = read_all(path, html_field="body").column("error")[0].as_py()
    assert "column 'body' missing" in no_html and no_html.endswith("set input.html_field")


def test_duckdb_query_html_field(tmp_path: Path) -> None:
    path = tmp_path / "pages.parquet"
    s0, _ = parquet_fixture(path)
    out = read_all(
        ":memory:",
        format="duckdb",
        query=f"SELECT id, html FROM read_parquet('{path}') ORDER BY id",
        html_field="html",
    ).to_pylist()
    assert [r["input_id"] for r in out] == ["a", "b", "c", "d"]
    assert_article(out[0]["text"], s0)
    assert out[3]["reason"] == "no_text_extracted"


def test_folder_of_html_files(tmp_path: Path) -> None:
    (h0, s0), (h1, s1) = pages(2)
    root = tmp_path / "site"
    root.mkdir()
    (root / "a.html").write_text(h0)
    (root / "b.htm.gz").write_bytes(gzip.compress(h1.encode()))
    (root / "c.html").write_text(SCRIPT_ONLY)
    (root / "d.html").write_bytes(b"")
    assert format_of("x/page.HTM") == format_of("page.html.zst") == "html"
    out = read_all(root).to_pylist()
    assert [Path(r["source"]).name for r in out] == ["a.html", "b.htm.gz", "c.html", "d.html"]
    assert_article(out[0]["text"], s0)
    assert_article(out[1]["text"], s1)
    assert [r["reason"] for r in out[2:]] == ["no_text_extracted", "no_text_extracted"]


def test_html_file_over_the_batch_budget_is_too_large(tmp_path: Path) -> None:
    (h0, _), *_ = pages(1)
    (tmp_path / "big.html").write_text(h0)
    out = read_all(tmp_path / "big.html", ReadConfig(max_batch_bytes=100)).to_pylist()
    assert out[0]["reason"] == "too_large" and "read.max_batch_bytes" in out[0]["error"]


@pytest.mark.parametrize("fmt", ["warc", "text", "html"])
def test_html_field_on_a_format_without_fields_is_a_config_error(fmt: str) -> None:
    with pytest.raises(ValidationError, match="html_field applies to jsonl, parquet and duckdb"):
        InputSpec(path="x", format=fmt, html_field="html")


def test_curate_keeps_extracted_text_of_an_html_field(ray_cluster, tmp_path: Path) -> None:
    """End to end through `curator curate` and `curator export`: the kept documents are the
    articles' text, the bad page is quarantined, and every input row has its manifest row."""
    import polars as pl
    from typer.testing import CliRunner

    from curator.cli import app

    good = pages(20)
    rows = [{"id": f"p{i}", "html": h} for i, (h, _) in enumerate(good)]
    rows.append({"id": "script", "html": SCRIPT_ONLY})
    path = write_jsonl(tmp_path / "pages.jsonl", rows)
    run, export = tmp_path / "run", tmp_path / "export"
    sets = [
        f"inputs=[{{path: {path}, html_field: html}}]",
        "tokenizer.vocab_size=300",
        # The Python reference quotes identifiers often; its prose is still prose.
        "quality.gopher_quality.min_alpha_words_ratio=0.7",
    ]
    args = ["curate", "--output", str(run), "--quiet"] + [a for s in sets for a in ("--set", s)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    manifest = pl.read_parquet(run / "manifest" / "*.parquet")
    assert sorted(manifest["input_id"]) == sorted(r["id"] for r in rows)
    by_id = {r["input_id"]: r for r in manifest.iter_rows(named=True)}
    assert by_id["script"]["reason"] == "no_text_extracted"
    result = CliRunner().invoke(app, ["export", str(run), "-o", str(export), "-f", "jsonl"])
    assert result.exit_code == 0, result.output
    exported = [json.loads(line) for f in sorted(export.glob("*.jsonl")) for line in open(f)]
    assert len(exported) == sum(r["decision"] == "kept" for r in by_id.values()) >= 10
    sentence = {f"p{i}": s for i, (_, s) in enumerate(good)}
    for doc in exported:
        assert_article(doc["text"], " ".join(sentence[doc["input_id"]].split()))
