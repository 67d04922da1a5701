"""Guards around a RUN folder: one writer at a time, inputs unchanged on resume, no temp files
where readers look, and input folders that cannot be listed are quarantined, not skipped."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import polars as pl
import pyarrow.dataset as ds
import pytest

from connectors.fs import atomic_open, temp_name
from connectors.registry import expand_inputs, read_unit
from curator.config import ConfigError, InputSpec, ReadConfig
from curator.executor import run_curate
from curator.run_lock import run_lock
from tests.corpus import real_paragraphs
from tests.test_curate_e2e import curate_config

REPO = Path(__file__).resolve().parents[1]


def small_corpus(root: Path, n_files: int = 2) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    paras = real_paragraphs()
    for i in range(n_files):
        rows = [{"id": f"{i}-{j}", "text": paras[4 * i + j]} for j in range(4)]
        (root / f"f{i}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return root


def test_a_second_job_on_a_folder_in_use_is_refused_and_a_killed_holder_frees_it(tmp_path):
    out = tmp_path / "run"
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import sys, time; from pathlib import Path; from curator.run_lock import run_lock\n"
         "with run_lock(Path(sys.argv[1])):\n    print('held', flush=True); time.sleep(600)",
         str(out)],
        cwd=REPO, stdout=subprocess.PIPE, text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        with pytest.raises(ConfigError, match=rf"output: .* is in use by pid {holder.pid} on "):
            with run_lock(out):
                pass
    finally:
        holder.kill()
        holder.wait()
    with run_lock(out):  # the kernel released the dead holder's lock: no stale lock file
        pass


def test_a_job_refuses_an_output_folder_another_job_holds(ray_cluster, tmp_path):
    corpus = small_corpus(tmp_path / "in")
    out = tmp_path / "run"
    with run_lock(out), pytest.raises(ConfigError, match="is in use by pid"):
        run_curate(curate_config(corpus, out))
    assert not (out / "_done").exists()  # refused before any work


def test_resume_over_changed_inputs_is_refused_before_any_work(ray_cluster, tmp_path):
    corpus = small_corpus(tmp_path / "in")
    out = tmp_path / "run"
    run_curate(curate_config(corpus, out))
    run_curate(curate_config(corpus, out))  # unchanged inputs: the finished run is returned
    (corpus / "f9.jsonl").write_text(json.dumps({"text": "a new file"}) + "\n")
    with pytest.raises(ConfigError, match=r"inputs changed since this RUN started \(added .*f9"):
        run_curate(curate_config(corpus, out))
    (corpus / "f9.jsonl").unlink()
    with (corpus / "f0.jsonl").open("a") as f:  # same name, new content
        f.write(json.dumps({"text": "one more line"}) + "\n")
    with pytest.raises(ConfigError, match=r"\(changed .*f0\.jsonl\)"):
        run_curate(curate_config(corpus, out))


def test_temp_files_are_hidden_from_globs_and_removed_on_resume(ray_cluster, tmp_path):
    name = temp_name(str(tmp_path / "manifest" / "part-00000.parquet"))
    assert Path(name).name.startswith(".part-00000.parquet.tmp-")
    assert not name.endswith(".parquet")
    corpus = small_corpus(tmp_path / "in")
    out = tmp_path / "run"
    # What a worker killed mid-write leaves behind, in the final folders themselves.
    stale = [out / "manifest" / ".part-00000.parquet.tmp-0badc0de",
             out / "shards" / "stage=0" / ".part-00001.parquet.tmp-0badc0de"]
    for path in stale:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"PAR1 half a file")
    run_curate(curate_config(corpus, out))
    assert not any(p.exists() for p in stale)
    assert ds.dataset(out / "manifest", format="parquet").count_rows() == 8
    assert pl.read_parquet(out / "shards" / "*" / "*.parquet").height > 0


def test_a_failed_atomic_write_leaves_nothing_behind(tmp_path):
    target = tmp_path / "x.parquet"
    with pytest.raises(RuntimeError), atomic_open(target) as f:
        f.write(b"partial")
        raise RuntimeError("killed")
    assert list(tmp_path.iterdir()) == []


def _expand_and_read_as(uid: int | None, root: Path) -> list[dict]:
    """expand_inputs + read_unit over `root`, as user `uid` (forked, so no interpreter under a
    private home needs to be reachable by that user); None: as we are."""
    def work() -> list[dict]:
        units = expand_inputs([InputSpec(path=str(root))])
        return [row for u in units for t in read_unit(u, ReadConfig()) for row in
                t.select(["source", "decision", "reason", "error"]).to_pylist()]

    if uid is None:
        return work()
    work_as_root = work  # import every lazily loaded module before privileges go
    _ = work_as_root()
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # child
        try:
            os.setgid(uid)
            os.setuid(uid)
            os.write(write, json.dumps(work()).encode())
        finally:
            os._exit(0)
    os.close(write)
    with os.fdopen(read) as f:
        data = f.read()
    os.waitpid(pid, 0)
    return json.loads(data)


def test_a_folder_that_cannot_be_listed_is_quarantined_not_skipped():
    root = Path(tempfile.mkdtemp(prefix="curator-perm-"))
    try:
        os.chmod(root, 0o755)
        (root / "ok").mkdir(mode=0o755)
        (root / "ok" / "a.jsonl").write_text(json.dumps({"text": "readable"}) + "\n")
        os.chmod(root / "ok" / "a.jsonl", 0o644)
        (root / "closed").mkdir()
        (root / "closed" / "b.jsonl").write_text(json.dumps({"text": "behind a wall"}) + "\n")
        os.chmod(root / "closed", 0o000)
        rows = _expand_and_read_as(65534 if os.geteuid() == 0 else None, root)
        by_source = {Path(r["source"]).name: r for r in rows}
        assert by_source["a.jsonl"]["decision"] == "kept"
        closed = by_source["closed"]
        assert closed["decision"] == "quarantined" and closed["reason"] == "unreadable_folder"
        assert "Permission denied" in closed["error"]
    finally:
        os.chmod(root / "closed", 0o755)
        subprocess.run(["rm", "-rf", str(root)], check=True)


def test_a_run_begun_by_an_older_curator_is_not_resumed(tmp_path):
    from curator.input_fingerprint import check_or_record_inputs
    from curator.rundir import RunDir

    corpus = small_corpus(tmp_path / "in")
    units = expand_inputs([InputSpec(path=str(corpus))])
    run = RunDir.at(tmp_path / "run")
    run.write_marker({"records": 4}, "pass1", 0)  # finished work, no inputs.json
    with pytest.raises(ConfigError, match="started by an older curator"):
        check_or_record_inputs(units, run.inputs)
    fresh = RunDir.at(tmp_path / "fresh")
    check_or_record_inputs(units, fresh.inputs)  # a new RUN records its inputs
    check_or_record_inputs(units, fresh.inputs)  # and resumes over the same ones
    assert [e["source"] for e in json.loads(fresh.inputs.read_text())] == [u.source for u in units]


def test_a_run_whose_file_was_cut_another_way_is_not_resumed(tmp_path):
    """Resume matches units by position; a curator that cuts a large file at other offsets
    (an older one, before the short tail ranges) must not take over a run begun with the other
    cut, which the file's path, size and time alone would let through."""
    from dataclasses import replace

    from curator.input_fingerprint import check_or_record_inputs
    from curator.rundir import RunDir

    big = tmp_path / "in" / "big.jsonl"
    big.parent.mkdir()
    big.write_text("".join(f'{{"id": "{i}", "text": "line {i} of a big file"}}\n'
                           for i in range(2000)))
    units = expand_inputs([InputSpec(path=str(big.parent))], unit_bytes=8192)
    assert len(units) > 3
    run = RunDir.at(tmp_path / "run")
    check_or_record_inputs(units, run.inputs)
    check_or_record_inputs(units, run.inputs)  # the same cut resumes
    moved = replace(units[1].part, start=units[1].part.start + 1)
    recut = [*units[:1], replace(units[1], part=moved), *units[2:]]
    with pytest.raises(ConfigError, match=r"big\.jsonl are cut into units differently"):
        check_or_record_inputs(recut, run.inputs)
    with pytest.raises(ConfigError, match="cut into units differently"):
        check_or_record_inputs(units[:-1], run.inputs)  # one range fewer


def test_a_config_section_added_since_the_run_began_resumes_at_its_defaults(tmp_path):
    """A run's config.yaml written before curator had a section (pii, decontaminate, ...)
    resumes when the section is at its defaults, and is refused when it is not."""
    import yaml

    from curator.config import CurateConfig, check_or_record_config, load_model

    base = {"inputs": [{"path": str(tmp_path)}], "output": str(tmp_path / "run")}
    cfg = load_model(CurateConfig, base=base)
    older = cfg.model_dump(mode="json")
    del older["pii"], older["decontaminate"]
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(older))
    check_or_record_config(cfg, path, "run")  # the same job: resumes
    changed = load_model(CurateConfig, base={**base, "pii": {"phone": True}})
    with pytest.raises(ConfigError, match=r"sections \['pii'\] differ"):
        check_or_record_config(changed, path, "run")
