"""Input expansion: folders, globs, fsspec URIs, format by extension, config errors."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import fsspec
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from connectors.registry import SourceUnit, expand_inputs, format_of, read_unit
from curator.config import ConfigError, InputSpec, ReadConfig
from curator.doc_ids import doc_id


@pytest.mark.parametrize(
    ("name", "fmt"),
    [
        ("a.jsonl", "jsonl"),
        ("a.JSONL.GZ", "jsonl"),
        ("a.jsonl.zst", "jsonl"),
        ("a.json.gz", "jsonl"),
        ("a.ndjson.xz", "jsonl"),
        ("a.parquet", "parquet"),
        ("a.txt", "text"),
        ("a.md", "text"),
        ("a.txt.bz2", "text"),
        ("a.warc", "warc"),
        ("a.warc.gz", "warc"),
        ("a.parquet.gz", None),
        ("a.csv", None),
        ("README", None),
    ],
)
def test_format_by_extension(name: str, fmt: str | None) -> None:
    assert format_of(f"/data/{name}") == fmt


def make_tree(root: Path) -> None:
    (root / "b" / "deep").mkdir(parents=True)
    (root / "a.jsonl").write_text('{"text": "a"}\n')
    (root / "b" / "c.jsonl.gz").write_bytes(gzip.compress(b'{"text": "c"}\n'))
    (root / "b" / "deep" / "d.txt").write_text("d")
    pq.write_table(pa.table({"text": ["e"]}), root / "b" / "e.parquet")
    (root / "notes.csv").write_text("x,y")
    (root / "_SUCCESS").write_text("")
    (root / ".cache").mkdir()
    (root / ".cache" / "f.jsonl").write_text('{"text": "hidden"}\n')


def test_folder_is_recursive_sorted_and_skips_unknown(tmp_path: Path) -> None:
    make_tree(tmp_path)
    units = expand_inputs([InputSpec(path=str(tmp_path))])
    assert [(Path(u.source).relative_to(tmp_path).as_posix(), u.format) for u in units] == [
        ("a.jsonl", "jsonl"),
        ("b/c.jsonl.gz", "jsonl"),
        ("b/deep/d.txt", "text"),
        ("b/e.parquet", "parquet"),
    ]
    assert all(isinstance(u, SourceUnit) for u in units)


def test_explicit_format_filters_a_folder_and_overrides_extension(tmp_path: Path) -> None:
    make_tree(tmp_path)
    units = expand_inputs([InputSpec(path=str(tmp_path), format="text")])
    assert [Path(u.source).name for u in units] == ["d.txt"]
    (tmp_path / "data.log").write_text('{"text": "log line"}\n')
    unit = expand_inputs([InputSpec(path=str(tmp_path / "data.log"), format="jsonl")])[0]
    assert unit.format == "jsonl"
    assert pa.concat_tables(read_unit(unit, ReadConfig())).column("text").to_pylist() == [
        "log line"
    ]


def test_glob_and_dedup_across_specs(tmp_path: Path) -> None:
    make_tree(tmp_path)
    specs = [InputSpec(path=f"{tmp_path}/**/*.jsonl*"), InputSpec(path=str(tmp_path))]
    sources = [Path(u.source).relative_to(tmp_path).as_posix() for u in expand_inputs(specs)]
    # the glob's files first, then the folder's remaining files; none twice
    assert sources == ["a.jsonl", "b/c.jsonl.gz", "b/deep/d.txt", "b/e.parquet"]


def test_relative_paths_become_absolute(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    make_tree(tmp_path)
    monkeypatch.chdir(tmp_path)
    assert expand_inputs([InputSpec(path="a.jsonl")])[0].source == str(tmp_path / "a.jsonl")


def test_file_uri_round_trip(tmp_path: Path) -> None:
    make_tree(tmp_path)
    units = expand_inputs([InputSpec(path=f"file://{tmp_path}/b/*.jsonl.gz")])
    assert [u.source for u in units] == [f"file://{tmp_path}/b/c.jsonl.gz"]
    out = pa.concat_tables(read_unit(units[0], ReadConfig()))
    assert out.column("text").to_pylist() == ["c"]
    assert out.column("doc_id").to_pylist() == [doc_id(units[0].source, 0)]


def test_memory_uri_round_trip_and_conservation() -> None:
    fs = fsspec.filesystem("memory")
    lines = [json.dumps({"id": f"m{i}", "text": f"in memory {i}"}) for i in range(12)]
    lines[5] = "{broken"
    with fs.open("/conn-test/part-0.jsonl.gz", "wb") as f:
        f.write(gzip.compress("\n".join(lines).encode()))
    with fs.open("/conn-test/part-1.txt", "wb") as f:
        f.write(b"a text file in memory")
    try:
        units = expand_inputs([InputSpec(path="memory://conn-test")])
        assert [(u.source, u.format) for u in units] == [
            ("memory:///conn-test/part-0.jsonl.gz", "jsonl"),
            ("memory:///conn-test/part-1.txt", "text"),
        ]
        out = pa.concat_tables([t for u in units for t in read_unit(u, ReadConfig(batch_size=5))])
        assert out.num_rows == len(lines) + 1
        assert out.column("reason").to_pylist().count("malformed_json") == 1
        assert out.column("text").to_pylist()[-1] == "a text file in memory"
    finally:
        fs.rm("/conn-test", recursive=True)


@pytest.mark.parametrize(
    ("path", "match"),
    [
        ("missing.jsonl", "does not exist"),
        ("*.nothing", "glob matches no readable file"),
        ("notes.csv", "no reader for this extension.*input.format"),
        ("empty_dir", "folder holds no readable file"),
    ],
)
def test_config_errors_name_the_path_and_the_fix(tmp_path: Path, path: str, match: str) -> None:
    make_tree(tmp_path)
    (tmp_path / "empty_dir").mkdir()
    with pytest.raises(ConfigError, match=match) as err:
        expand_inputs([InputSpec(path=str(tmp_path / path))])
    assert path in str(err.value)
