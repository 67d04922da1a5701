"""Entrypoints: train_command (curator train) and python -m jobs.train, config validation,
the console's progress lines and their --quiet."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from tiny_data import tiny_config
from typer.testing import CliRunner

from curator.cli import app
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


PROGRESS = re.compile(
    r"^step (\d+)/8: (?:train (\d+\.\d{4}))?(?:, )?(?:val (\d+\.\d{4}))?, "
    r"tok/s \d+, ETA (\d\d):(\d\d)"
)


def test_train_command_prints_nanogpt_progress_lines(
    run_dir: Path, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    """8 steps, log every 3, eval every 4: a line at each log step, each eval step (with val)
    and the last step, then the final held-out loss; ETA counts down to 00:00."""
    path = tmp_path / "train.yaml"
    cfg = tiny_config(run_dir, tmp_path / "out", log_interval=3, eval_interval=4)
    path.write_text(yaml.safe_dump(cfg))
    summary = train_command(str(path), [])
    err = capfd.readouterr().err
    lines = [m for m in map(PROGRESS.match, err.splitlines()) if m]
    assert [int(m[1]) for m in lines] == [0, 3, 4, 6, 7, 8], err
    assert [m[3] is not None for m in lines] == [True, False, True, False, False, True]
    assert all(m[2] is not None for m in lines[:-1]) and lines[-1][2] is None  # 8/8: val only
    assert float(lines[0][2]) == pytest.approx(summary["losses"][0], abs=1e-4)
    assert float(lines[2][3]) == pytest.approx(summary["heldout"][4], abs=1e-4)
    assert float(lines[-1][3]) == pytest.approx(summary["heldout_loss"], abs=1e-4)
    assert lines[-1].group(4, 5) == ("00", "00")
    assert "loss.png" in err


def test_train_quiet_prints_nothing_but_still_writes_the_plot(
    run_dir: Path, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "train.yaml"
    path.write_text(yaml.safe_dump(tiny_config(run_dir, tmp_path / "out", max_tokens=1024)))
    train_command(str(path), [], quiet=False)  # the console on first, so quiet must turn it off
    capfd.readouterr()
    train_command(str(path), [f"out_dir={tmp_path / 'q'}"], quiet=True)
    out, err = capfd.readouterr()
    assert out == "" and err == ""
    assert (tmp_path / "q" / "loss.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_curator_train_cli_quiet_flag(run_dir: Path, tmp_path: Path) -> None:
    path = tmp_path / "train.yaml"
    path.write_text(yaml.safe_dump(tiny_config(run_dir, tmp_path / "out", max_tokens=1024)))
    loud = CliRunner().invoke(app, ["train", "--config", str(path)])
    assert loud.exit_code == 0, loud.output
    assert "step 0/2: train " in loud.output and "val " in loud.output
    quiet = CliRunner().invoke(
        app, ["train", "--config", str(path), "--set", f"out_dir={tmp_path / 'q'}", "--quiet"]
    )
    assert quiet.exit_code == 0, quiet.output
    assert "step " not in quiet.output and '"heldout_loss"' in quiet.output
