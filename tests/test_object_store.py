"""Object stores for real: `curate` reads `s3://` inputs and writes its run to an `s3://` output
through a real S3 HTTP server on loopback (moto's server mode, s3fs as the client), resumes
after a kill from a fresh staging folder (another machine's view: only what the store holds),
and refuses a bucket that does not exist before any work.

Each run is a `curator curate` process with its own embedded cluster, as a user would start it:
the store's endpoint and credentials reach the workers through the environment (AWS_*)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import polars as pl
import pytest
import yaml

from tests.corpus import build_corpus
from tests.test_curate_e2e import curate_config

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def s3(tmp_path_factory) -> Iterator[dict]:
    """A moto S3 server on a free loopback port, a bucket holding the test corpus, and the
    environment a client needs to reach it."""
    pytest.importorskip("moto", reason="moto[server] is in the test extra")
    from moto.server import ThreadedMotoServer

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    env = {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test",
           "AWS_DEFAULT_REGION": "us-east-1", "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}"}
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)  # this process's s3fs client too
    try:
        import fsspec

        fs = fsspec.filesystem("s3", skip_instance_cache=True)
        fs.mkdir("corpus")
        fs.mkdir("runs")
        local = build_corpus(tmp_path_factory.mktemp("s3") / "corpus", n_files=6)
        for path in sorted(local.root.rglob("*")):
            if path.is_file():
                fs.put_file(str(path), f"corpus/c/{path.relative_to(local.root)}")
        yield {"env": env, "fs": fs}
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        server.stop()


def curate_process(s3: dict, tmp: Path, output: str, staging: Path) -> subprocess.Popen:
    cfg = curate_config(Path("/unused"), Path("/unused")).model_dump(mode="json")
    cfg.update(inputs=[{"path": "s3://corpus/c"}], output=output, staging=str(staging))
    path = tmp / f"{staging.name}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}  # its own cluster
    env.update(s3["env"])
    return subprocess.Popen(
        [sys.executable, "-m", "jobs.curate", "--config", str(path)], cwd=REPO, env=env,
        start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def finish(proc: subprocess.Popen, timeout: float = 400) -> None:
    try:
        _, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        raise
    assert proc.returncode == 0, err.decode()[-3000:]


def store_tables(fs, run: str) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Manifest and shards of a run in the store, read from the store, in a canonical order."""
    def read(pattern: str) -> pl.DataFrame:
        files = sorted(fs.glob(f"{run}/{pattern}"))
        assert files, f"nothing at {run}/{pattern}"
        return pl.concat([pl.read_parquet(fs.cat_file(f)) for f in files], how="diagonal")

    return read("manifest/*.parquet").sort("doc_id"), read("shards/*/*.parquet").sort("doc_id")


def test_s3_in_s3_out_and_a_kill_resumed_from_another_staging_folder(s3, tmp_path):
    fs = s3["fs"]
    finish(curate_process(s3, tmp_path, "s3://runs/whole", tmp_path / "stage-whole"))
    manifest, shards = store_tables(fs, "runs/whole")
    assert fs.exists("runs/whole/_done/run.json") and fs.exists("runs/whole/catalog.duckdb")
    assert not fs.glob("runs/whole/**/.*.tmp-*") and not fs.exists("runs/whole/_lock")
    stats = json.loads(fs.cat_file("runs/whole/stats.json"))
    assert stats["records"] == manifest.height > 0 and stats["kept"] == shards.height > 0
    assert manifest["source"].str.starts_with("s3://corpus/c/").all()

    # killed once the store holds a committed unit, then resumed in a new staging folder
    proc = curate_process(s3, tmp_path, "s3://runs/killed", tmp_path / "stage-a")
    deadline = time.time() + 300
    while not fs.glob("runs/killed/_done/pass1/*.json"):
        assert proc.poll() is None and time.time() < deadline, "no unit reached the store"
        time.sleep(0.2)
        fs.invalidate_cache()
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    fs.invalidate_cache()
    assert not fs.exists("runs/killed/_done/run.json")
    committed = {k: v["LastModified"] for k, v in
                 fs.find("runs/killed/_done/pass1", detail=True).items()}
    for marker in committed:  # a marker in the store always has its unit's files there
        unit = Path(marker).stem
        assert fs.exists(f"runs/killed/_work/pass1/{unit}.parquet"), marker

    finish(curate_process(s3, tmp_path, "s3://runs/killed", tmp_path / "stage-b"))
    fs.invalidate_cache()
    again, again_shards = store_tables(fs, "runs/killed")
    assert again.equals(manifest) and again_shards.equals(shards)
    # resumed, not redone: the units committed before the kill were not written again
    after = fs.find("runs/killed/_done/pass1", detail=True)
    assert {k: after[k]["LastModified"] for k in committed} == committed


def test_a_missing_bucket_is_named_before_any_work(s3, tmp_path):
    proc = curate_process(s3, tmp_path, "s3://no-such-bucket/r1", tmp_path / "stage-x")
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 2
    assert "output: cannot write to s3://no-such-bucket/r1" in err.decode()
    assert not (tmp_path / "stage-x").exists()
