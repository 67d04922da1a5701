"""PII end to end: `run_curate` on a jsonl of prose carrying emails, IPs, phone and card
numbers; the manifest counts each kind per document, stats.json sums them, and no text the run
writes or exports (pass-1 text, which the tokenizer trains on; jsonl and parquet exports;
decoded token shards; RUN/excluded/) holds an original address."""

from __future__ import annotations

import json

import polars as pl
import sentencepiece as spm

from curator.config import CurateConfig, load_model
from curator.executor import run_curate
from curator.export import ExportConfig, run_export
from tests.corpus import real_paragraphs

N = 8  # documents with one address of each kind


def luhn_card(i: int) -> str:
    """A Visa-shaped, Luhn-valid 16-digit number, grouped by fours."""
    body = f"4{i:014d}"
    total = sum(d if k % 2 else (2 * d - 9 if 2 * d > 9 else 2 * d)
                for k, d in enumerate(int(c) for c in reversed(body)))
    digits = body + str(-total % 10)
    return " ".join(digits[j:j + 4] for j in range(0, 16, 4))


def addresses(i: int) -> dict[str, str]:
    return {"email": f"j.roe{i}@zqx{i}.org", "ipv4": f"93.184.{i}.34",
            "ipv6": f"2606:4700:{i + 1:x}::1111", "phone": f"(415) 555-02{i:02d}",
            "card": luhn_card(i)}


def corpus(path) -> list[str]:
    paras = real_paragraphs()
    lines, originals = [], []
    for i in range(N):
        a = addresses(i)
        originals += a.values()
        text = (f"{paras[i]} Write to {a['email']} or call {a['phone']}; the mirror at "
                f"{a['ipv4']} and {a['ipv6']} and the proxy at 127.0.0.1 answer. The card "
                f"{a['card']} was charged.")
        lines.append({"id": f"d{i}", "text": text})
    lines.append({"id": "copy", "text": lines[0]["text"]})  # dropped later, as exact_duplicate
    lines.append({"id": "short", "text": "Mail boss@zqxcorp.org at 93.184.99.34."})  # too short
    originals += ["boss@zqxcorp.org", "93.184.99.34"]
    lines += [{"id": f"plain{i}", "text": paras[N + i]} for i in range(4)]
    path.write_text("".join(json.dumps(r) + "\n" for r in lines))
    return originals


def test_addresses_are_counted_and_never_written(ray_cluster, tmp_path):
    (tmp_path / "in").mkdir()
    originals = corpus(tmp_path / "in" / "docs.jsonl")
    run = tmp_path / "run"
    cfg = load_model(CurateConfig, base={
        "inputs": [{"path": str(tmp_path / "in")}], "output": str(run), "quiet": True,
        "tokenizer": {"vocab_size": 400}, "language": {"enabled": False},
        "quality": {"gopher_quality": {"min_alpha_words_ratio": 0.5}},
        "pii": {"phone": True, "card": True}})
    assert isinstance(cfg, CurateConfig)
    stats = run_curate(cfg)

    m = pl.read_parquet(run / "manifest" / "*.parquet")
    assert {m.schema[f"pii_{k}"] for k in ("email", "ip", "phone", "card")} == {pl.Int32}
    by_id = {r["input_id"]: r for r in m.iter_rows(named=True)}
    for i in range(N):
        row = by_id[f"d{i}"]
        assert row["decision"] == "kept", row["reason"]
        # one IPv4 and one IPv6 address; 127.0.0.1 is not public and stays
        assert (row["pii_email"], row["pii_ip"], row["pii_phone"], row["pii_card"]) == (1, 2, 1, 1)
    assert by_id["copy"]["reason"] == "exact_duplicate" and by_id["copy"]["pii_ip"] == 2
    assert by_id["short"]["decision"] == "dropped"
    assert (by_id["short"]["pii_email"], by_id["short"]["pii_ip"]) == (1, 1)
    assert by_id["plain0"]["pii_email"] == 0
    assert stats["pii"]["email"] == {"replaced": N + 2, "kept_replaced": N, "kept_docs": N}
    assert stats["pii"]["ip"]["kept_replaced"] == 2 * N
    assert json.loads((run / "stats.json").read_text())["pii"] == stats["pii"]

    texts: dict[str, list[str]] = {}
    texts["pass 1 (tokenizer sample, exports)"] = pl.read_parquet(
        run / "_work" / "pass1" / "*.parquet")["text"].drop_nulls().to_list()
    excluded = pl.read_parquet(run / "excluded" / "**" / "*.parquet", hive_partitioning=False)
    assert {"copy", "short"} <= set(excluded["input_id"].to_list())
    texts["excluded/"] = excluded["text"].drop_nulls().to_list()
    run_export(ExportConfig(run=str(run), output=str(tmp_path / "jsonl"), format="jsonl"))
    texts["jsonl export"] = [json.loads(line)["text"]
                             for f in sorted((tmp_path / "jsonl").glob("part-*.jsonl"))
                             for line in f.read_text().splitlines()]
    run_export(ExportConfig(run=str(run), output=str(tmp_path / "pq"), with_text=True))
    exported = pl.read_parquet(tmp_path / "pq" / "part-*.parquet")
    texts["parquet export"] = exported["text"].to_list()
    sp = spm.SentencePieceProcessor(model_file=str(run / "tokenizer.model"))
    shards = pl.read_parquet(run / "shards" / "**" / "*.parquet", hive_partitioning=False)
    texts["decoded token shards"] = sp.decode(shards["tokens"].to_list())

    kept = N + 4
    assert len(texts["jsonl export"]) == len(texts["parquet export"]) == kept
    assert len(texts["decoded token shards"]) == kept
    for where, found in texts.items():
        leaked = [a for a in originals if any(a in t for t in found)]
        assert not leaked, (where, leaked)
        # what was written is the anonymized text (not, say, nothing)
        least = 2 if where == "excluded/" else N  # excluded/: the copy and the short doc
        assert sum(t.count("email@example.com") for t in found) >= least, where
        assert sum(t.count("192.0.2.1") for t in found) >= least, where
    assert sum(t.count("127.0.0.1") for t in texts["jsonl export"]) == N  # not public: kept
