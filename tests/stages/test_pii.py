"""PII anonymization: each kind's addresses are replaced and counted, look-alikes (versions,
dates, long ids, @handles, bad checksums, invalid IPv6) are not; email and IP are on by
default; dropped rows are anonymized too, quarantined ones get null counts; the vectorized path
gives what the exact Python patterns give; bad configuration names the field."""

from __future__ import annotations

import ipaddress
import random

import numpy as np
import pyarrow as pa
import pytest

from curator.config import ConfigError, CurateConfig, PiiConfig, load_model
from curator.schema import DROPPED, KEPT, QUARANTINED
from curator.schema import doc_table as docs
from curator.stages.pii import (
    NOT_PUBLIC_V4,
    PiiAnonymizer,
    _python_replace,
    build_patterns,
    ipv4_pattern,
)

ALL = PiiConfig(phone=True, card=True)


def anonymize(text: str, cfg: PiiConfig = ALL) -> tuple[str, dict[str, int]]:
    out = PiiAnonymizer(cfg)(docs([text]))
    counts = {c.removeprefix("pii_"): out[c][0].as_py() for c in out.column_names
              if c.startswith("pii_")}
    return out["text"][0].as_py(), counts


@pytest.mark.parametrize(("kind", "address"), [
    ("email", "john.doe@example.org"),
    ("email", "J.R+tag_1@mail.sub.example.co.uk"),
    ("email", "o'brien@x-y.museum"),
    ("ip", "8.8.8.8"),
    ("ip", "93.184.216.34"),
    ("ip", "255.1.2.3"[1:]),  # 55.1.2.3
    ("ip", "2606:4700:4700::1111"),
    ("ip", "2001:4860:4860:0:0:0:0:8888"),
    ("ip", "2a00:1450:4001:82b::200e"),
    ("phone", "(555) 123-4567"),
    ("phone", "555-123-4567"),
    ("phone", "555.123.4567"),
    ("phone", "1-800-555-0199"),
    ("phone", "+1 415 555 2671"),
    ("phone", "+44 20 7946 0958"),
    ("phone", "+33 1 23 45 67 89"),
    ("card", "4111 1111 1111 1111"),
    ("card", "4111-1111-1111-1111"),
    ("card", "5500005555555559"),
    ("card", "3782 822463 10005"),  # Amex 4-6-5
    ("card", "6011000990139424"),
])
def test_each_kind_is_replaced_and_counted(kind, address):
    for template in ("{}", "Write to {} today.", "({})", "<{}>", "x: {}, y"):
        text, counts = anonymize(template.format(address))
        assert address not in text, (template, text)
        assert text == template.format(getattr(ALL.replacement, _slot(kind, address)))
        assert counts == {k: int(k == kind) for k in counts}, (template, counts)


def _slot(kind: str, address: str) -> str:
    return ("ipv6" if ":" in address else "ipv4") if kind == "ip" else kind


@pytest.mark.parametrize("text", [
    # email look-alikes: handles, no TLD, numeric TLD, file names with a density suffix
    "@alice", "ping @bob.smith", "a@b", "root@localhost", "x@123", "icon@2x.png",
    "logo@3x.JPG", "user@host.c0m",
    # IPv4: versions, dates, out-of-range octets, leading zeros, parts of longer dotted runs
    "version 1.2.3", "2024.01.15", "15.01.2024", "256.1.2.3", "8.8.8.256", "08.8.8.8",
    "oid 1.3.6.1.4.1.311", "release 9.8.8.8.8", "11192.168.1.1", "8.8.8.81234",
    # IPv4 not public (the default): loopback, private, netmask, documentation, multicast
    "127.0.0.1", "10.0.0.1", "192.168.1.10", "172.16.5.4", "255.255.255.0", "192.0.2.55",
    "100.64.1.1", "224.0.0.251", "0.0.0.0", "169.254.10.1",
    # IPv6: times, MACs, code, invalid forms, not public
    "12:30:45", "00:1a:2b:3c:4d:5e", "std::vector<int>", "f :: Int -> Int", "a::b",
    "2606:4700:::1111", "2606:4700::1111::1", "12345::1", "1:2:3:4:5:6:7:8:9", "::1",
    "fe80::1%eth0", "2001:db8::dead:beef",
    # phone look-alikes: dates, times, versions, long digit runs, a longer hyphenated number
    "2024-01-15", "on 01/15/2024 at 10:30", "v1.2.3", "12345678901", "555-123-4567-89",
    "1234-567-8901", "score 12 345 6789x",
    # card look-alikes: bad Luhn, no network prefix, long ids, a longer grouped number
    "4111 1111 1111 1112", "1234567812345670", "id 12345678901234567890",
    "4111 1111 1111 1111 1111 1111", "0.4111111111111111",
])
def test_look_alikes_are_left_alone(text):
    out, counts = anonymize(text)
    assert out == text and not any(counts.values()), counts


def test_all_ips_when_not_public_only():
    cfg = PiiConfig(ip_public_only=False)
    text, counts = anonymize("lo 127.0.0.1 lan 192.168.1.10 v6 ::1 fe80::1 v 1.2.3", cfg)
    assert text == "lo 192.0.2.1 lan 192.0.2.1 v6 2001:db8::1 2001:db8::1 v 1.2.3"
    assert counts == {"email": 0, "ip": 4}


def test_public_ipv4_pattern_equals_the_reserved_block_table():
    """The generated regex against ipaddress: every first and second octet, the third and
    fourth at the values where a reserved block starts or ends."""
    nets = [ipaddress.IPv4Network(c) for c in NOT_PUBLIC_V4]
    pairs = [(a, b) for a in range(256) for b in range(256)]
    tails = [(0, 0), (0, 1), (2, 9), (99, 1), (100, 7), (113, 200), (255, 255)]
    addrs = [f"{a}.{b}.{c}.{d}" for a, b in pairs for c, d in tails]
    got = pa.compute.match_substring_regex(pa.array(addrs), f"^{ipv4_pattern(True)}$")
    # membership in the table as integer masks (ipaddress per address took 15 s)
    ints = np.array([(a << 24) | (b << 16) | (c << 8) | d for a, b in pairs for c, d in tails],
                    dtype=np.uint64)
    reserved = np.zeros(len(ints), bool)
    for n in nets:
        reserved |= (ints & np.uint64(int(n.netmask))) == np.uint64(int(n.network_address))
    want = ~reserved
    wrong = [x for x, g, w in zip(addrs, got.to_pylist(), want, strict=True) if g != w]
    assert not wrong, wrong[:10]
    assert want.sum() > 0.8 * len(addrs)  # most of the space is public


def test_defaults_replace_email_and_ip_only():
    cfg = PiiConfig()
    assert cfg.kinds == ["email", "ip"]
    text = "a@example.org 8.8.8.8 555-123-4567 4111 1111 1111 1111"
    out = PiiAnonymizer(cfg)(docs([text]))
    assert out["text"][0].as_py() == "email@example.com 192.0.2.1 555-123-4567 4111 1111 1111 1111"
    assert [c for c in out.column_names if c.startswith("pii_")] == ["pii_email", "pii_ip"]
    assert out.schema.field("pii_email").type == pa.int32()


def test_several_per_document_and_adjacent_ones():
    text, counts = anonymize("ns 8.8.8.8 8.8.4.4,1.1.1.1;a@x.org,b@y.org "
                             "2606:4700::1111 2606:4700::1001")
    assert counts["ip"] == 5 and counts["email"] == 2
    assert text == ("ns 192.0.2.1 192.0.2.1,192.0.2.1;email@example.com,email@example.com "
                    "2001:db8::1 2001:db8::1")


def test_an_ipv4_mapped_ipv6_address_counts_once():
    text, counts = anonymize("peer ::ffff:8.8.8.8 seen")
    assert "8.8.8.8" not in text and counts["ip"] == 1


def test_dropped_rows_are_anonymized_quarantined_rows_get_null_counts():
    """Dropped rows' text may be written to RUN/excluded/: it is anonymized like the rest,
    and their decision and reason stay."""
    table = docs(["mail a@example.org", "mail b@example.org", None, ""],
                 [KEPT, DROPPED, QUARANTINED, KEPT])
    table = table.set_column(table.schema.get_field_index("reason"), "reason",
                             pa.array([None, "too_few_words", "malformed_json", None]))
    out = PiiAnonymizer(PiiConfig())(table)
    assert out["text"].to_pylist() == ["mail email@example.com", "mail email@example.com",
                                       None, ""]
    assert out["pii_email"].to_pylist() == [1, 1, None, 0]
    assert out["decision"].to_pylist() == table["decision"].to_pylist()
    assert out["reason"].to_pylist() == table["reason"].to_pylist()
    assert out["n_chars"].to_pylist() == [22, 22, 0, 0]  # recounted where the text changed


def test_an_empty_batch_has_the_count_columns():
    out = PiiAnonymizer(ALL)(docs([]))
    assert out.num_rows == 0
    assert {"pii_email", "pii_ip", "pii_phone", "pii_card"} <= set(out.column_names)


def test_replacements_are_literal_and_ip_is_idempotent():
    cfg = PiiConfig(replacement={"email": r"[\1 \\ $0]"})
    text, _ = anonymize("a@example.org", cfg)
    assert text == r"[\1 \\ $0]"  # RE2 rewrite syntax does not apply
    once = PiiAnonymizer(PiiConfig())(docs(["8.8.8.8 and 2606:4700::1111"]))
    twice = PiiAnonymizer(PiiConfig())(once)
    assert twice["text"].equals(once["text"]) and twice["pii_ip"].to_pylist() == [0]


FRAGMENTS = [
    "a@example.org", "x.y@mail.example.co.uk", "@handle", "icon@2x.png", "8.8.8.8",
    "192.168.0.1", "1.2.3", "9.8.8.8.8", "1.1.1.1", "2606:4700::1111", "::1", "std::map",
    "12:30:45", "555-123-4567", "555-123-4567-89", "+44 20 7946 0958", "2024-01-15",
    "4111 1111 1111 1111", "4111111111111112", "12345678901234567890", "7", "-", ".", ",",
    " ", "\n", "word", "(", ")", "x", "+1 415 555 2671", "(555) 123-4567", "fe80::1", "0958",
    "1-", "5500005555555559", "3782 822463 10005",
]


def test_the_vectorized_path_equals_the_exact_python_patterns():
    """Random mixtures (addresses glued to digits, dots and dashes included): RE2 handles most
    rows; the result must equal running the exact patterns on every row in Python."""
    rng = random.Random(0)
    texts = ["".join(rng.choice(FRAGMENTS) for _ in range(rng.randint(1, 12)))
             for _ in range(1500)]
    out = PiiAnonymizer(ALL)(docs(texts))
    for i, text in enumerate(texts):
        counts = dict.fromkeys(ALL.kinds, 0)
        for p in build_patterns(ALL):
            text, n = _python_replace(text, p)
            counts[p.kind] += n
        assert out["text"][i].as_py() == text, texts[i]
        assert {k: out[f"pii_{k}"][i].as_py() for k in counts} == counts, texts[i]


def _curate(pii: dict) -> CurateConfig:
    return load_model(CurateConfig, base={"inputs": [{"path": "x.jsonl"}], "output": "out",
                                          "pii": pii})  # type: ignore[return-value]


@pytest.mark.parametrize(("pii", "field", "hint"), [
    ({"ssn": True}, "pii", "pii takes email, ip, phone, card, ip_public_only"),
    ({"replacement": {"iban": "X"}}, "pii.replacement", "takes email, ipv4, ipv6, phone, card"),
    ({"email": "sometimes"}, "pii.email", "boolean"),
    ({"replacement": {"email": None}}, "pii.replacement.email", "string"),
])
def test_bad_pii_config_names_the_field_and_the_fix(pii, field, hint):
    with pytest.raises(ConfigError) as err:
        _curate(pii)
    assert f"  {field}:" in str(err.value) and hint in str(err.value), str(err.value)


def test_placement_is_last_in_pass_1_and_only_in_curate():
    from curator.passes import manifest_schema
    from curator.pipeline import build_pass1_steps, output_schema

    steps = build_pass1_steps(_curate({}))
    assert [s.name for s in steps][-3:] == ["exact_hash", "minhash", "pii"]
    m = manifest_schema(output_schema(steps))
    assert m.field("pii_email").type == m.field("pii_ip").type == pa.int32()
    assert "pii" not in [s.name for s in build_pass1_steps(_curate({}), filters=False)]
    off = build_pass1_steps(_curate({"email": False, "ip": False}))
    assert "pii" not in [s.name for s in off]
