"""URL and domain filters: subdomains match, look-alikes do not, patterns are RE2, rows and
batches without a url pass, and bad filter configuration names the field before any work."""

from __future__ import annotations

import pyarrow as pa
import pytest

from curator.config import ConfigError, CurateConfig, FiltersConfig, load_model
from curator.schema import DROPPED, KEPT
from curator.schema import doc_table as docs
from curator.stages.url_filter import UrlFilter

URLS = [
    "https://example.com/page",             # the domain itself
    "http://News.Sub.EXAMPLE.com:8080/a",   # a subdomain, any case, with a port
    "https://notexample.com/",              # a look-alike: not a subdomain
    "https://example.com.evil.org/",        # the domain as a prefix of another host
    "https://good.org/ads/banner.html",     # a blocked path pattern
    "https://good.org/article",             # clean
    None,                                   # no url
]


def run(cfg: FiltersConfig, urls: list[str | None], decisions: list[str] | None = None):
    table = docs([f"text {i}" for i in range(len(urls))], decisions)
    table = table.append_column("url", pa.array(urls, pa.string()))
    return UrlFilter(cfg)(table)


def test_domains_block_their_subdomains_and_patterns_block_urls():
    cfg = FiltersConfig(blocked_domains=["Example.COM", "*.spam.net"], url_patterns=[r"/ads/"])
    out = run(cfg, URLS)
    assert out.column("reason").to_pylist() == [
        "blocked_domain", "blocked_domain", None, None, "blocked_url", None, None]
    assert out.column("decision").to_pylist()[-2:] == [KEPT, KEPT]


def test_a_domain_file_and_rows_already_dropped(tmp_path):
    blocklist = tmp_path / "domains.txt"
    blocklist.write_text("# ad networks\nexample.com\n\nspam.net  # comment\n")
    cfg = load_model(CurateConfig, base={
        "inputs": [{"path": "x.jsonl"}], "output": "out",
        "filters": {"blocked_domains": str(blocklist)}}).filters
    assert cfg.blocked_domains == ["example.com", "spam.net"]
    out = run(cfg, ["https://a.spam.net/", "https://example.com/"], [KEPT, DROPPED])
    assert out.column("reason").to_pylist() == ["blocked_domain", None]  # first reason stays


def test_a_batch_without_urls_passes_whole():
    table = docs(["a", "b"])
    assert UrlFilter(FiltersConfig(blocked_domains=["example.com"]))(table).equals(table)


@pytest.mark.parametrize(("filters", "field"), [
    ({"blocked_domains": "/no/such/blocklist.txt"}, "blocked_domains"),
    ({"url_patterns": ["(unclosed"]}, "url_patterns"),
])
def test_bad_filter_config_names_the_field(filters, field):
    with pytest.raises(ConfigError, match=field):
        load_model(CurateConfig, base={"inputs": [{"path": "x.jsonl"}], "output": "out",
                                        "filters": filters})
