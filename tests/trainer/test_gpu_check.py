"""benchmarks/gpu_check.sh in its CPU smoke mode: every part runs, every table has its rows; and
the renderer keeps a part's own status and shows failed cells' errors (the GPU run is unattended).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from benchmarks import gpu_check

ROOT = Path(__file__).resolve().parents[2]


def table(md: str, heading: str) -> list[list[str]]:
    """Body rows (cells stripped) of the first markdown table after `heading`."""
    lines = md[md.index(heading) :].splitlines()
    start = next(i for i, ln in enumerate(lines) if ln.startswith("|"))
    rows = []
    for ln in lines[start + 2 :]:
        if not ln.startswith("|"):
            break
        rows.append([c.strip() for c in re.split(r"(?<!\\)\|", ln.strip()[1:-1])])
    return rows


def number(cell: str) -> float:
    return float(cell.replace(",", "").rstrip("%"))


@pytest.fixture(scope="module")
def smoke(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, dict]:
    out = tmp_path_factory.mktemp("gpu_check") / "gpu_check.md"
    env = {**os.environ, "GPU_CHECK_SMOKE": "1", "PYTHON": sys.executable}
    r = subprocess.run(
        ["bash", "benchmarks/gpu_check.sh", str(out)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert out.with_suffix(".log").stat().st_size > 0
    return out.read_text(), json.loads(out.with_suffix(".json").read_text())


@pytest.mark.slow  # runs gpu_check.sh: 5 processes, ~30-60 s on 2 shared CPUs
def test_parts_and_environment(smoke: tuple[str, dict]) -> None:
    md, _ = smoke
    assert md.startswith("# GPU check") and "SMOKE" in md.splitlines()[0]
    env = dict(table(md, "## Environment"))
    assert env["torch"] == torch.__version__ and env["trainer import"] == "ok"
    parts = {r[0]: r[1] for r in table(md, "## Parts")}
    assert parts == {p: "done" for p in gpu_check.PARTS}


@pytest.mark.slow  # runs gpu_check.sh: 5 processes, ~30-60 s on 2 shared CPUs
def test_attention_tables(smoke: tuple[str, dict]) -> None:
    md, data = smoke
    rows = table(md, "## (a) Attention")
    assert [(r[0], r[1]) for r in rows] == [
        (str(T), f"1/{k}") for T in (256, 512) for k in gpu_check.KEEPS
    ]
    for r in rows:
        sdpa_ms, dsa_ms, x = number(r[4]), number(r[5]), number(r[6])
        assert sdpa_ms > 0 and dsa_ms > 0 and x == pytest.approx(sdpa_ms / dsa_ms, rel=0.05)
        assert number(r[8]) > 0 and number(r[9]) > 0  # memory columns filled
    assert "out " in md and "tolerance 1e-04: ok" in md  # eager flex == gather
    layer = table(md, "### The whole DSAttention layer")
    assert [(r[0], r[1]) for r in layer] == [("256", "1/8"), ("256", "1/16")]
    assert all(number(r[2]) > 0 and number(r[3]) > 0 and number(r[5]) > 0 for r in layer)
    cells = data["attention"]["cells"]
    assert {"sdpa|256", "dsa|512|16", "check|256", "layer|256|8"} <= set(cells)
    assert not [k for k, c in cells.items() if "error" in c or "skipped" in c]


@pytest.mark.slow  # runs gpu_check.sh: 5 processes, ~30-60 s on 2 shared CPUs
def test_training_and_recompile_tables(smoke: tuple[str, dict]) -> None:
    md, data = smoke
    rows = {r[0]: r for r in table(md, "## (b) DSA model training")}
    bf16 = rows["bf16"]
    assert (
        number(bf16[1]) > 0 and number(bf16[3]) == 3 and number(bf16[4]) > 0
    )  # params, steps, tok/s
    assert rows["fp16"][1].startswith("skipped: fp16 needs CUDA")
    comp = {r[0]: r for r in table(md, "## (c) Compilations")}
    assert comp["bf16"][1].startswith("1 frames (0: DYNAMO)")  # compiled once, at step 0
    assert comp["bf16"][2] == "0 frames"
    t = data["train"]["bf16"]
    assert t["frames_after_warmup"] == 0 and t["stage"] == "done" and t["mfu"] > 0
    targets = {r[0]: r[2] for r in table(md, "## Targets")}
    assert targets["training bf16: dynamo compilations after warm-up == 0"] == "PASS"


def test_partial_results_render(tmp_path: Path) -> None:
    """A killed part is marked without hiding what it wrote; failed cells show their error."""
    md = tmp_path / "r.md"
    gpu_check.main(["--out", str(md), "--part", "render", "--fresh"])
    gpu_check.set_part(md, "attention", status="running")
    gpu_check.set_part(md, "train-bf16", status="failed", note="RuntimeError: boom")

    def cells(d: dict) -> None:
        d["attention"] = {
            "cells": {
                "sdpa|16384": {"sdpa": {"ms": 2.0, "mb": 10.0}},
                "dsa|16384|8": {"error": "BackendCompilerFailed: flex lowering"},
                "dsa|16384|16": {"skipped": "out of time"},
            }
        }
        d["train"] = {"bf16": {"stage": "warm-up step 0 done", "warmup_s": [40.0]}}

    gpu_check.update(md, cells)
    gpu_check.main(["--out", str(md), "--part", "mark", "--mark", "attention=timed out: killed"])
    gpu_check.main(["--out", str(md), "--part", "mark", "--mark", "train-bf16=failed: exit 1"])
    text = md.read_text()
    parts = {r[0]: (r[1], r[3]) for r in table(text, "## Parts")}
    assert parts["attention"] == ("timed out", "killed")
    assert parts["train-bf16"][0] == "failed" and "boom" in parts["train-bf16"][1]
    att = {(r[0], r[1]): r for r in table(text, "## (a) Attention")}
    assert att[("16384", "1/8")][4] == "2"  # SDPA still shown next to the failed DSA cell
    assert att[("16384", "1/8")][5] == "ERROR: BackendCompilerFailed: flex lowering"
    assert att[("16384", "1/16")][5] == "skipped: out of time"
    assert att[("4096", "1/8")][5] == "not run"
    train = {r[0]: r for r in table(text, "## (b) DSA model training")}
    assert "warm-up step 0 done" in train["bf16"][-1] and train["bf16"][2] == "40.0"
    targets = {r[0]: r[2] for r in table(text, "## Targets")}
    assert targets["attention 16K keep 1/8: SDPA/DSA >= 1.5x"] == "not measured"


def test_training_falls_back_when_the_model_does_not_compile(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """torch.compile(model) failing on the GPU must still leave a throughput row (compile=False)."""

    def broken_compile(model: torch.nn.Module, **kw: object) -> object:
        def call(*a: object, **k: object) -> object:
            raise RuntimeError("inductor boom")

        return call

    md = tmp_path / "r.md"
    gpu_check.main(["--out", str(md), "--part", "render", "--fresh", "--smoke"])
    monkeypatch.setattr(torch, "compile", broken_compile)
    small = {**gpu_check.plan(True), "steps": 3, "warmup": 1}
    monkeypatch.setattr(gpu_check, "plan", lambda smoke: small)
    gpu_check.part_train(md, True, "bf16")
    t = json.loads(md.with_suffix(".json").read_text())["train"]["bf16"]
    assert t["stage"] == "done" and t["timed_steps"] == 2 and t["tokens_per_s"] > 0
    assert t["note"].startswith("torch.compile(model) failed: RuntimeError: inductor boom")
    row = {r[0]: r for r in table(md.read_text(), "## (b) DSA model training")}["bf16"]
    assert "measured with compile=False" in row[-1]
