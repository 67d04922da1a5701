"""Plain-text folders: one document per file; quarantine codes that apply to whole files."""

from __future__ import annotations

import gzip
from pathlib import Path

import pyarrow as pa
import pytest

from connectors.registry import expand_inputs, read_unit
from curator.config import InputSpec, ReadConfig
from curator.doc_ids import doc_id
from curator.schema import is_read_schema


def read_all(path: Path | str, cfg: ReadConfig | None = None, **spec) -> pa.Table:
    units = expand_inputs([InputSpec(path=str(path), **spec)])
    tables = [t for u in units for t in read_unit(u, cfg or ReadConfig())]
    assert all(is_read_schema(t.schema) for t in tables)
    return pa.concat_tables(tables, promote_options="default")


def test_folder_round_trip_one_document_per_file(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    files = {
        "a.txt": "First document.\nSecond line.",
        "sub/b.md": "# Title\n\nMarkdown body \u00fc.",
        "c.txt": "\ufeffWith a byte order mark.",
    }
    for name, text in files.items():
        (tmp_path / name).write_text(text, encoding="utf-8")
    (tmp_path / "d.txt.gz").write_bytes(gzip.compress(b"compressed text"))
    (tmp_path / "README").write_text("no extension: not an input")
    (tmp_path / ".hidden.txt").write_text("hidden: skipped")
    out = read_all(tmp_path)
    got = dict(zip(out.column("source").to_pylist(), out.column("text").to_pylist(), strict=True))
    assert got == {
        str(tmp_path / "a.txt"): files["a.txt"],
        str(tmp_path / "c.txt"): "With a byte order mark.",
        str(tmp_path / "d.txt.gz"): "compressed text",
        str(tmp_path / "sub/b.md"): files["sub/b.md"],
    }
    assert out.column("source").to_pylist() == sorted(got)  # deterministic order
    assert out.column("record").to_pylist() == [0, 0, 0, 0]
    assert out.column("doc_id").to_pylist() == [doc_id(s, 0) for s in sorted(got)]


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"caf\xe9 in latin-1", "invalid_utf8"),
        (b"a\x00b", "nul_bytes"),
        (b"", "empty_text"),
        (b" \n\t\n", "empty_text"),
        (b"x" * 30, "too_large"),  # decoded, 30 chars > 10
        (b"x" * 100, "too_large"),  # over 4 bytes/char * 10: not even decoded
    ],
)
def test_quarantine_codes(tmp_path: Path, content: bytes, reason: str) -> None:
    (tmp_path / "doc.txt").write_bytes(content)
    out = read_all(tmp_path / "doc.txt", ReadConfig(max_doc_chars=10)).to_pylist()
    assert len(out) == 1
    assert out[0]["decision"] == "quarantined" and out[0]["reason"] == reason
    assert out[0]["text"] is None and out[0]["error"]


def test_truncated_and_unreadable_compressed_text(tmp_path: Path) -> None:
    full = gzip.compress(b"some words " * 5000)
    (tmp_path / "cut.txt.gz").write_bytes(full[: len(full) // 2])
    (tmp_path / "junk.txt.gz").write_bytes(b"not gzip")
    out = read_all(tmp_path).to_pylist()
    assert [(r["source"].rsplit("/", 1)[-1], r["reason"]) for r in out] == [
        ("cut.txt.gz", "truncated_file"),
        ("junk.txt.gz", "unreadable_file"),
    ]


def test_conservation_one_row_per_file(tmp_path: Path) -> None:
    for i in range(7):
        (tmp_path / f"f{i}.txt").write_bytes(b"ok text" if i % 2 else b"bad \xff")
    out = read_all(tmp_path, ReadConfig(batch_size=2))
    assert out.num_rows == len(list(tmp_path.glob("*.txt")))
    assert out.column("decision").to_pylist().count("kept") == 3
