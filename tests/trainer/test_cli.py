"""Entrypoints: train_command (curator train) and python -m jobs.train, config validation."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from tiny_data import tiny_config

from curator.config import ConfigError
from curator.trainer.cli import train_command
from curator.trainer.config import load_train_config
from curator.trainer.engine import build_model

REPO = Path(__file__).resolve().parents[2]


def test_shipped_tiny_config_is_about_a_million_params(run_dir: Path) -> None:
    cfg = load_train_config(
        REPO / "configs" / "train_tiny.yaml", [f"data.path={run_dir}", "model.vocab_size=8000"]
    )
    n = build_model(cfg, 8000).num_params()
    assert 0.8e6 < n < 1.6e6, n


def test_train_command_with_overrides(run_dir: Path, tmp_path: Path) -> None:
    path = tmp_path / "train.yaml"
    path.write_text(yaml.safe_dump(tiny_config(run_dir, tmp_path / "x")))
    summary = train_command(str(path), [f"out_dir={tmp_path / 'out'}", "max_tokens=2048"])
    assert summary["steps"] == 4 and (tmp_path / "out" / "summary.json").exists()
    assert not (tmp_path / "x").exists()


def test_bad_config_fails_before_work_with_the_field(tmp_path: Path) -> None:
    path = tmp_path / "train.yaml"
    path.write_text(yaml.safe_dump({"data": {"path": "nowhere"}, "model": {"d_model": 30}}))
    with pytest.raises(ConfigError, match="d_model"):
        train_command(str(path), [])
    with pytest.raises(ConfigError, match="optim.lrr"):
        train_command(str(path), ["optim.lrr=1"])


def test_jobs_train_module_runs(run_dir: Path, tmp_path: Path) -> None:
    path = tmp_path / "train.yaml"
    path.write_text(yaml.safe_dump(tiny_config(run_dir, tmp_path / "out", max_tokens=1024)))
    proc = subprocess.run(
        [sys.executable, "-m", "jobs.train", "--config", str(path), "--set", "eval_batches=1"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = json.loads(proc.stdout[proc.stdout.index("{") :])
    assert out["steps"] == 2 and out["heldout_loss"] > 0
