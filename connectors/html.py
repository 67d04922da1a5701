"""HTML -> plain text for WARC responses: resiliparse (default, fast) or trafilatura (optional).

Both take raw payload bytes: the charset comes from the HTTP Content-Type when it names one,
else from resiliparse's detector (meta tags, byte statistics). Web pages in the wild are
often mislabelled, so undecodable bytes are replaced here rather than quarantined: the
quarantine for invalid UTF-8 is about corrupted text records, not about lenient HTML decoding.
"""

from __future__ import annotations

import re
from collections.abc import Callable

_CHARSET = re.compile(r"charset\s*=\s*[\"']?([\w.:-]+)", re.IGNORECASE)

HtmlToText = Callable[[bytes, "str | None"], str]


def html_encoding(payload: bytes, content_type: str | None) -> str:
    """Charset named by the Content-Type header, else detected from the bytes."""
    from resiliparse.parse.encoding import detect_encoding

    if content_type:
        match = _CHARSET.search(content_type)
        if match:
            try:
                "".encode(match.group(1))  # only trust names Python knows
                return match.group(1)
            except LookupError:
                pass
    return detect_encoding(payload)


def _resiliparse(payload: bytes, content_type: str | None) -> str:
    from resiliparse.extract.html2text import extract_plain_text
    from resiliparse.parse.html import HTMLTree

    tree = HTMLTree.parse_from_bytes(payload, html_encoding(payload, content_type), "replace")
    return extract_plain_text(tree, preserve_formatting=True, main_content=True)


def _trafilatura(payload: bytes, content_type: str | None) -> str:
    import trafilatura

    html = payload.decode(html_encoding(payload, content_type), errors="replace")
    return trafilatura.extract(html, include_comments=False, include_tables=True) or ""


_EXTRACTORS: dict[str, HtmlToText] = {"resiliparse": _resiliparse, "trafilatura": _trafilatura}


def html_extractor(name: str) -> HtmlToText:
    """The extractor `name` (InputSpec.html_extractor), failing early if it is not installed."""
    if name not in _EXTRACTORS:
        raise ValueError(f"unknown html_extractor {name!r}; use one of {sorted(_EXTRACTORS)}")
    __import__(name)  # optional dependency: fail when the reader is built, not mid-file
    return _EXTRACTORS[name]
