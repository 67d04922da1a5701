"""PII anonymization (datatrove's PIIFormatter, as FineWeb ran it): emails, IP addresses, phone
and card numbers in the text become the configured replacement strings, and every document gets
its count per kind (`pii_email`, `pii_ip`, `pii_phone`, `pii_card`: int32, one column per kind
turned on) for the manifest; `n_chars` is recomputed where the text changed.

Rows: every row that still has text, kept or dropped: RUN/excluded/ writes dropped rows' text,
and no text may leave the run with an original address. Quarantined rows have no text and get
null counts.

Vectorized: for each pattern one RE2 test over the batch finds the rows with a candidate; on
those rows `count_substring_regex` and `replace_substring_regex` do the work. Python (`re`, the
same pattern text plus lookarounds RE2 lacks) sees only the candidate rows of a kind whose
matches need a check RE2 cannot express (IPv6 validity, the Luhn checksum), and the rare rows
where an IPv4 or phone match borders a longer number (`9.1.2.3.4`, `555-123-4567-89`), which
RE2's word boundaries alone would cut into, or an email match is a file name (`icon@2x.png`).
Public-only IPv4 stays one RE2 pattern: it is generated from the table of reserved blocks.

Only `text` is anonymized: `url` and `metadata` are carried as the input had them.

Order: IPv6 before IPv4 (an IPv4-mapped IPv6 address is one address, counted once), card
before phone (a card number's groups must not be read as a phone number).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from curator.config import PiiConfig
from curator.step import set_column


def column(kind: str) -> str:
    return f"pii_{kind}"


# --- patterns (RE2 and Python `re` syntax alike: no \p, no lookaround, ASCII classes) -------

# local@domain.tld: RFC 5322's unquoted local part, dot-separated; a domain of at least two
# labels ending in an alphabetic TLD, so `@handles`, `a@b` and `user@localhost` are left alone.
_LOCAL = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
EMAIL = (rf"{_LOCAL}(?:\.{_LOCAL})*@(?:[A-Za-z0-9](?:[A-Za-z0-9-]{{0,61}}[A-Za-z0-9])?\.)+"
         r"[A-Za-z]{2,63}\b")
# `icon@2x.png`, `lib@1.2.min.js` have that shape too; file extensions that are no TLD (.zip
# and .mov are TLDs) mark the rows whose email matches Python checks one by one.
FILE_EXTENSIONS = ("png", "jpg", "jpeg", "gif", "svg", "webp", "bmp", "ico", "avif", "tif",
                   "tiff", "js", "css", "htm", "html", "json", "txt", "pdf")
EMAIL_AS_FILE = r"@[A-Za-z0-9.-]*\.(?i:" + "|".join(FILE_EXTENSIONS) + r")\b"


def not_a_file(match: str) -> bool:
    return match.rsplit(".", 1)[1].lower() not in FILE_EXTENSIONS


_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"  # 0-255, no leading zeros
# Not public (RFC 6890's special-purpose registry, plus multicast and reserved): these name no
# one, and tech text is full of them (127.0.0.1, 192.168.1.1, netmasks 255.255.255.0).
NOT_PUBLIC_V4 = (
    "0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16",
    "172.16.0.0/12", "192.0.0.0/24", "192.0.2.0/24", "192.88.99.0/24", "192.168.0.0/16",
    "198.18.0.0/15", "198.51.100.0/24", "203.0.113.0/24", "224.0.0.0/3",
)


def _digits(numbers: list[str]) -> str:
    """Regex matching exactly `numbers` (decimal strings of one length), sharing prefixes."""
    if len(numbers[0]) == 1:
        return _char_class([int(n) for n in numbers])
    by_head: dict[str, list[str]] = {}
    for n in numbers:
        by_head.setdefault(n[0], []).append(n[1:])
    by_tail: dict[str, list[int]] = {}
    for head, tails in by_head.items():
        by_tail.setdefault(_digits(tails), []).append(int(head))
    alts = [_char_class(heads) + tail for tail, heads in by_tail.items()]
    return alts[0] if len(alts) == 1 else "(?:" + "|".join(alts) + ")"


def _char_class(ds: list[int]) -> str:
    runs, start = [], ds[0]
    for a, b in zip(ds, ds[1:] + [-1], strict=True):  # -1: the last run ends
        if b != a + 1:
            runs.append(str(a) if a == start else f"{start}-{a}")
            start = b
    return runs[0] if len(runs) == 1 and "-" not in runs[0] else "[" + "".join(runs) + "]"


def _octets(values: list[int]) -> str:
    if len(values) == 256:
        return _OCTET
    by_len: dict[int, list[str]] = {}
    for v in values:
        by_len.setdefault(len(str(v)), []).append(str(v))
    return "(?:" + "|".join(_digits(by_len[n]) for n in sorted(by_len, reverse=True)) + ")"


def _prefix(cidr: str) -> tuple[range, ...]:
    """An octet-aligned view of a network: one range of values per leading octet."""
    net = ipaddress.IPv4Network(cidr)
    octets, (full, bits) = net.network_address.packed, divmod(net.prefixlen, 8)
    ranges = [range(o, o + 1) for o in octets[:full]]
    if bits:
        ranges.append(range(octets[full], octets[full] + (1 << (8 - bits))))
    return tuple(ranges)


def _outside(blocked: set[tuple[range, ...]], left: int) -> str | None:
    """Regex of `left` dotted octets that start with none of the `blocked` prefixes (None when
    every value is blocked). A regular language, so public-only stays one RE2 pattern."""
    if () in blocked:
        return None
    groups: dict[frozenset, list[int]] = {}  # values with the same remaining prefixes
    for v in range(256):
        groups.setdefault(frozenset(p[1:] for p in blocked if v in p[0]), []).append(v)
    alts = []
    for tails, values in groups.items():
        rest = _outside(set(tails), left - 1) if left > 1 else ("" if not tails else None)
        if rest is not None:
            alts.append(_octets(values) + (r"\." + rest if left > 1 else ""))
    return "(?:" + "|".join(alts) + ")" if alts else None


def ipv4_pattern(public_only: bool) -> str:
    body = (_outside({_prefix(c) for c in NOT_PUBLIC_V4}, 4) if public_only
            else r"\.".join([_OCTET] * 4))
    return rf"\b{body}\b"


# A candidate IPv6 token: where a valid address can start (not after a word char, ':' or '.')
# and reach a '::' or six full groups (`std::vector` fails the start). The token is then taken
# whole and checked by `ipaddress`, and must hold a digit (`a::b`, Haskell's `::` do not).
IPV6_CANDIDATE = r"(?:^|[^\w:.])[0-9A-Fa-f:]*(?:::|(?:[0-9A-Fa-f]{1,4}:){6})"
IPV6_TOKEN = re.compile(r"(?<![\w:.])[0-9A-Fa-f:]{2,39}(?:[0-9]{1,3}(?:\.[0-9]{1,3}){3})?"
                        r"(?![\w:]|\.[0-9])", re.ASCII)

# NANP ((555) 123-4567, 555.123.4567, 1-800-555-0199) and +country forms (+44 20 7946 0958,
# +33 1 23 45 67 89); the 3-3-4 grouping keeps dates (2024-01-15, 15.01.2024) out. No assertion
# before the '+': count_substring_regex restarts its search after a match as if at the start of
# the text, so a leading \B would count a match that replace_substring_regex does not make.
_INTL = r"\+[1-9][0-9]{0,2}(?:[ .-]?\([0-9]{1,4}\)|[ .-]?[0-9]{1,4})(?:[ .-]?[0-9]{2,4}){2,4}"
_NANP = r"(?:\b1[ .-])?(?:\([0-9]{3}\) ?|\b[0-9]{3}[ .-])[0-9]{3}[ .-][0-9]{4}"
PHONE = rf"(?:{_INTL}|{_NANP})\b"
# Rows Python handles: a match bordering a longer number (555-123-4567-89, 12.555-123-4567), or
# a '+' glued to a word (x+1 555 123 4567 is arithmetic or an id, not a number to dial).
PHONE_SUSPECT = rf"[0-9][.-]{PHONE}|{PHONE}[.-][0-9]|\w\+[1-9]"
PHONE_EXACT = re.compile(rf"(?<![0-9][.-])(?:(?<!\w){_INTL}|{_NANP})\b(?![.-][0-9])", re.ASCII)

# 13-19 digits: contiguous, 4-4-4-4(-3) or 4-6-4/5 (Amex, Diners) with one separator kind.
CARD_CANDIDATE = r"\b[0-9](?:[ -]?[0-9]){12,18}\b"
CARD = re.compile(
    r"(?<![.,])(?<![0-9][ -])\b(?:[0-9]{13,19}"
    r"|[0-9]{4}(?P<s>[ -])[0-9]{4}(?P=s)[0-9]{4}(?P=s)[0-9]{4}(?:(?P=s)[0-9]{3})?"
    r"|[0-9]{4}(?P<t>[ -])[0-9]{6}(?P=t)[0-9]{4,5})\b(?![ -][0-9])(?![.,][0-9])", re.ASCII)
# Issuer prefixes and lengths (Visa, Mastercard, Amex, Discover, Diners, JCB, UnionPay): a
# Luhn-valid run of digits is a card number 1 time in 10 by chance, a long id with no
# network's prefix never.
_IIN = ((4, 4, (13, 16, 19)), (51, 55, (16,)), (2221, 2720, (16,)), (34, 34, (15,)),
        (37, 37, (15,)), (6011, 6011, (16, 19)), (644, 649, (16, 19)), (65, 65, (16, 19)),
        (300, 305, (14,)), (36, 36, (14,)), (38, 39, (14,)), (3528, 3589, (16, 19)),
        (62, 62, (16, 17, 18, 19)))


def luhn_ok(digits: str) -> bool:
    total = 0
    for i, c in enumerate(reversed(digits)):
        d = int(c) * (2 if i % 2 else 1)
        total += d - 9 if d > 9 else d
    return total % 10 == 0


def is_card(match: str) -> bool:
    digits = re.sub(r"[ -]", "", match)
    return luhn_ok(digits) and any(
        lo <= int(digits[: len(str(lo))]) <= hi and len(digits) in lengths
        for lo, hi, lengths in _IIN)


def ipv6_checker(public_only: bool) -> Callable[[str], bool]:
    def check(token: str) -> bool:
        # a decimal digit: real addresses have one; `a::b` (C++), `::` (Haskell) do not
        if not any(c.isdigit() for c in token):
            return False
        try:
            addr = ipaddress.IPv6Address(token)
        except ValueError:
            return False
        return not public_only or (addr.is_global and not addr.is_multicast)

    return check


# --- the step --------------------------------------------------------------------------------

@dataclass(frozen=True)
class Pattern:
    kind: str
    candidate: str  # RE2: rows that may hold a match; also the replacing pattern if vectorized
    replacement: str
    exact: re.Pattern | None = None  # the exact pattern, for rows Python handles
    check: Callable[[str], bool] | None = None  # per match, where RE2 cannot say it
    # RE2: the rows Python handles (where `candidate` alone could be wrong); None = all
    # candidate rows when there is a check, none otherwise
    suspect: str | None = None


def _bordered(pattern: str, left: str, right: str) -> tuple[str, re.Pattern]:
    """RE2 test for a match touching `left`/`right` context, and the exact Python pattern that
    refuses such matches (lookarounds; RE2 has none)."""
    suspect = f"(?:{left})(?:{pattern})|(?:{pattern})(?:{right})"
    return suspect, re.compile(f"(?<!{left})(?:{pattern})(?!{right})", re.ASCII)


def build_patterns(cfg: PiiConfig) -> list[Pattern]:
    r = cfg.replacement
    patterns = []
    if cfg.email:
        patterns.append(Pattern("email", EMAIL, r.email, re.compile(EMAIL, re.ASCII), not_a_file,
                                EMAIL_AS_FILE))
    if cfg.ip:
        patterns.append(Pattern("ip", IPV6_CANDIDATE, r.ipv6, IPV6_TOKEN,
                                ipv6_checker(cfg.ip_public_only)))
        v4 = ipv4_pattern(cfg.ip_public_only)
        suspect, exact = _bordered(v4, r"[0-9]\.", r"\.[0-9]")  # 9.1.2.3.4, 1.2.3.4.5
        patterns.append(Pattern("ip", v4, r.ipv4, exact, suspect=suspect))
    if cfg.card:
        patterns.append(Pattern("card", CARD_CANDIDATE, r.card, CARD, is_card))
    if cfg.phone:
        patterns.append(Pattern("phone", PHONE, r.phone, PHONE_EXACT, suspect=PHONE_SUSPECT))
    return patterns


class PiiAnonymizer:
    """Replaces the configured kinds of PII in every row with text; adds `pii_<kind>` counts."""

    name = "pii"

    def __init__(self, cfg: PiiConfig) -> None:
        self.kinds = cfg.kinds
        self.patterns = build_patterns(cfg)

    @property
    def active(self) -> bool:
        return bool(self.kinds)

    def __call__(self, table: pa.Table) -> pa.Table:
        n = table.num_rows
        text = table.column("text").combine_chunks()
        counts = {k: np.zeros(n, np.int32) for k in self.kinds}
        changed = np.zeros(n, bool)
        for p in self.patterns:
            hit = pc.fill_null(pc.match_substring_regex(text, p.candidate), False)
            rows = np.flatnonzero(hit.to_numpy(zero_copy_only=False))
            if not len(rows):
                continue
            new, found = _anonymize(text.take(pa.array(rows)), p)
            text = pc.replace_with_mask(text, hit, new)
            counts[p.kind][rows] += found
            changed[rows] |= found > 0
        has_text = pc.is_valid(text)
        for kind, c in counts.items():
            table = set_column(table, column(kind), pc.if_else(has_text, pa.array(c), None))
        if not changed.any():
            return table
        table = set_column(table, "text", text)
        n_chars = pc.if_else(pa.array(changed), pc.utf8_length(text).cast(pa.int64()),
                             table.column("n_chars"))
        return set_column(table, "n_chars", n_chars)


def _anonymize(text: pa.Array, p: Pattern) -> tuple[pa.Array, np.ndarray]:
    """Candidate rows -> (their new text, matches replaced per row)."""
    if p.suspect is not None:
        exact = pc.match_substring_regex(text, p.suspect).to_numpy(zero_copy_only=False)
    else:
        exact = np.full(len(text), p.check is not None)
    found = np.zeros(len(text), np.int32)
    vec = np.flatnonzero(~exact)
    if len(vec):
        part = text.take(pa.array(vec))
        found[vec] = pc.count_substring_regex(part, p.candidate).to_numpy(zero_copy_only=False)
        # RE2 rewrite strings read \1 as a group: a literal backslash is written \\
        escaped = p.replacement.replace("\\", "\\\\")
        text = pc.replace_with_mask(text, pa.array(~exact),
                                    pc.replace_substring_regex(part, p.candidate, escaped))
    py = np.flatnonzero(exact)
    if len(py):
        assert p.exact is not None
        values = []
        for i, t in zip(py, text.take(pa.array(py)).to_pylist(), strict=True):
            t, found[i] = _python_replace(t, p)
            values.append(t)
        text = pc.replace_with_mask(text, pa.array(exact), pa.array(values, pa.string()))
    return text, found


def _python_replace(text: str, p: Pattern) -> tuple[str, int]:
    hits = 0

    def swap(m: re.Match) -> str:
        nonlocal hits
        if p.check is not None and not p.check(m.group(0)):
            return m.group(0)
        hits += 1
        return p.replacement

    assert p.exact is not None
    return p.exact.sub(swap, text), hits
