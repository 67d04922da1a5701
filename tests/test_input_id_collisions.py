"""Inputs that reuse ids lose and duplicate nothing: the same document under the same id in 8
files is kept once, a unique document sharing that id is kept, and every record is in the
manifest once, on the first run, a resumed one and a fresh one alike.

Before doc_id was (source, record), the input id was the key: dedup saw the 8 copies as one
document (kept all 8) and dropped the unique one as that document's duplicate.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import polars as pl
import pytest

from curator.executor import run_curate
from curator.rundir import RunDir
from tests.corpus import real_paragraphs
from tests.test_curate_e2e import curate_config

N_FILES, PER_FILE = 8, 3  # per file: the shared document (id "0"), then ids "1".."3"
# Dedup alone decides: rules and language id off, so every distinct text is kept.
NO_RULES = {
    "language.enabled": "false",
    "quality.gopher_quality.enabled": "false",
    "quality.gopher_repetition.enabled": "false",
    "quality.c4.enabled": "false",
    "quality.fineweb.enabled": "false",
}


def write_inputs(root: Path) -> dict[str, str]:
    """The files, and the texts the test looks for by name."""
    paras = real_paragraphs()
    shared, lone, extra = paras[0], paras[1], paras[2:4]
    distinct = iter(paras[4:])
    root.mkdir(parents=True)
    for f in range(N_FILES):
        rows = [{"id": "0", "text": shared}]
        rows += [{"id": str(i), "text": next(distinct)} for i in range(1, PER_FILE + 1)]
        if f == 3:
            rows.append({"id": "0", "text": lone})  # unique, under the duplicates' id
        if f == 5:
            rows.append({"id": "only-here", "text": extra[0]})  # an id used once
            rows.append({"text": extra[1]})  # no id at all
        (root / f"part-{f}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return {"shared": shared, "lone": lone}


def manifest(out: Path) -> pl.DataFrame:
    return pl.read_parquet(out / "manifest" / "*.parquet").sort("doc_id")


@pytest.fixture(scope="module")
def runs(ray_cluster, tmp_path_factory) -> tuple[Path, dict[str, str], Path, dict]:
    root = tmp_path_factory.mktemp("collisions")
    texts = write_inputs(root / "in")
    out = root / "run"
    stats = run_curate(curate_config(root / "in", out, **NO_RULES))
    return root, texts, out, stats


def test_every_record_is_in_the_manifest_once(runs):
    root, _, out, stats = runs
    m = manifest(out)
    n = N_FILES * (PER_FILE + 1) + 3
    assert m.height == stats["records"] == n
    assert m["doc_id"].n_unique() == n
    assert m.select("source", "record").unique().height == n
    assert stats["quarantined"] == 0


def test_the_shared_document_is_kept_once_and_the_lone_one_is_kept(runs):
    _, texts, out, stats = runs
    m = manifest(out)
    by_doc = {r["doc_id"]: r for r in m.iter_rows(named=True)}
    hashes = m.group_by("text_hash").agg(pl.col("doc_id"), pl.col("decision"))
    shared = m.filter(pl.col("input_id") == "0").group_by("text_hash").len()
    assert sorted(shared["len"].to_list()) == [1, N_FILES]  # the lone one, the 8 copies
    for row in hashes.iter_rows(named=True):
        assert row["decision"].count("kept") == 1, row  # one copy of each text, no more
    copies = m.filter(pl.col("reason") == "exact_duplicate")
    assert copies.height == N_FILES - 1 == stats["dropped"]
    (rep,) = copies["duplicate_of"].unique().to_list()
    assert by_doc[rep]["decision"] == "kept" and by_doc[rep]["input_id"] == "0"
    assert by_doc[rep]["text_hash"] == copies["text_hash"][0]
    lone = m.filter((pl.col("input_id") == "0") & (pl.col("text_hash") != copies["text_hash"][0]))
    assert lone["decision"].to_list() == ["kept"] and lone["duplicate_of"].to_list() == [None]
    assert stats["kept"] == m.height - (N_FILES - 1)


def test_collisions_count_every_row_whose_input_id_is_on_another(runs):
    _, _, out, stats = runs
    m = manifest(out)
    # ids "0".."3" are in every file (and "0" once more); "only-here" and the null are not.
    assert stats["input_id_collisions"] == N_FILES * (PER_FILE + 1) + 1
    assert m["input_id"].null_count() == 1
    assert json.loads((out / "stats.json").read_text())["input_id_collisions"] == (
        stats["input_id_collisions"]
    )


def test_resumed_and_fresh_runs_give_the_same_manifest(runs):
    root, _, out, stats = runs
    first = manifest(out)
    # A finished run returns its stats and rewrites nothing.
    assert run_curate(curate_config(root / "in", out, **NO_RULES)) == stats
    assert manifest(out).equals(first)
    # Killed in pass 1 (one unit unfinished): that unit, dedup, pass 2 and the catalog are
    # redone; the other units' pass-1 files are reused.
    resumed = root / "resumed"
    shutil.copytree(out, resumed)
    (resumed / "config.yaml").unlink()  # it names the original output folder
    done = RunDir.at(resumed).done
    redo = ["run.json", "dedup.json", "curriculum.json", "pass1/source=00003.json"]
    for marker in redo + _markers(done, "pass2"):
        (done / marker).unlink()
    shutil.rmtree(resumed / "manifest")
    again = run_curate(curate_config(root / "in", resumed, **NO_RULES))
    assert manifest(resumed).equals(first)
    assert again["input_id_collisions"] == stats["input_id_collisions"]
    # A fresh run into another folder: the same ids, the same decisions.
    fresh = root / "fresh"
    run_curate(curate_config(root / "in", fresh, **NO_RULES))
    assert manifest(fresh).equals(first)


def _markers(done: Path, phase: str) -> list[str]:
    return [str(p.relative_to(done)) for p in sorted((done / phase).glob("*.json"))]
