"""URL and domain filters (datatrove's URLFilter, Dolma's and DCLM's blocklists): drop a
document whose url's host is a blocked domain or one of its subdomains (`blocked_domain`), or
whose url matches a blocked pattern (`blocked_url`). Rows without a url pass; a batch without a
`url` column passes whole.

Vectorized: the host is one regex extraction over the batch; for each label count k among the
blocked domains, the host's last k labels are one more extraction and one set lookup, so a
host `a.b.example.com` is tested against `example.com` (k = 2), `b.example.com` (k = 3), ...
without a loop over documents or domains.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from curator.config import FiltersConfig
from curator.stages.text_columns import scatter
from curator.step import alive_mask, apply_drops, first_reason

# scheme, optional userinfo, then the host up to a port, path, query or fragment
_HOST = r"^(?:[A-Za-z][A-Za-z0-9+.\-]*:)?//(?:[^@/?#]*@)?(?P<host>[^:/?#]+)"


def hosts(urls: pa.Array) -> pa.Array:
    """Lower-cased host of each url (null where there is none), without a trailing dot."""
    found = pc.struct_field(pc.extract_regex(urls, _HOST), "host")
    return pc.utf8_rtrim(pc.utf8_lower(found), characters=".")


class UrlFilter:
    name = "url_filter"

    def __init__(self, cfg: FiltersConfig):
        assert isinstance(cfg.blocked_domains, list)  # the config read a file into a list
        by_labels: dict[int, list[str]] = {}
        for domain in cfg.blocked_domains:
            by_labels.setdefault(domain.count(".") + 1, []).append(domain)
        self.domains = {k: pa.array(v, pa.string()) for k, v in sorted(by_labels.items())}
        self.patterns = list(cfg.url_patterns)

    @property
    def active(self) -> bool:
        return bool(self.domains or self.patterns)

    def __call__(self, table: pa.Table) -> pa.Table:
        if not self.active or "url" not in table.column_names:
            return table
        alive = alive_mask(table).to_numpy(zero_copy_only=False)
        urls = pc.filter(table.column("url"), pa.array(alive)).combine_chunks()
        host = hosts(urls)
        domain_hit = np.zeros(len(urls), bool)
        for k, blocked in self.domains.items():
            suffix = pc.struct_field(
                pc.extract_regex(host, rf"(?P<s>(?:[^.]+\.){{{k - 1}}}[^.]+)$"), "s")
            domain_hit |= pc.fill_null(pc.is_in(suffix, value_set=blocked), False).to_numpy(
                zero_copy_only=False)
        url_hit = np.zeros(len(urls), bool)
        for pattern in self.patterns:
            url_hit |= pc.fill_null(pc.match_substring_regex(urls, pattern), False).to_numpy(
                zero_copy_only=False)
        conditions = [
            ("blocked_domain", scatter(pa.array(domain_hit), alive, pa.bool_())),
            ("blocked_url", scatter(pa.array(url_hit), alive, pa.bool_())),
        ]
        return apply_drops(table, first_reason(conditions, table.num_rows))
