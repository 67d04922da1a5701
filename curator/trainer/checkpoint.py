"""Checkpoints without pickle: safetensors for weights and optimizer tensors, JSON for the rest.

Layout: `OUT/checkpoints/step_<N>/{model.safetensors, optim.safetensors, state.json}`. Each file
is written through a temp name; `state.json` goes last, so a folder without it is an interrupted
save and is ignored. Batches are a pure function of the step, so (weights, AdamW moments, step)
is everything needed to continue the exact same loss curve.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save

from connectors.fs import atomic_open, write_text_atomic

STATE = "state.json"


def _optimizer_to_flat(opt: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict]:
    sd = opt.state_dict()
    tensors, scalars = {}, {}
    for pid, entry in sd["state"].items():
        for key, value in entry.items():
            if isinstance(value, torch.Tensor):
                tensors[f"{pid}.{key}"] = value.detach().contiguous().cpu()
            else:
                scalars[f"{pid}.{key}"] = value
    return tensors, {"param_groups": sd["param_groups"], "scalars": scalars}


def _optimizer_from_flat(tensors: dict[str, torch.Tensor], meta: dict) -> dict:
    state: dict[int, dict[str, Any]] = {}
    for name, value in list(tensors.items()) + list(meta["scalars"].items()):
        pid, key = name.split(".", 1)
        state.setdefault(int(pid), {})[key] = value
    return {"state": state, "param_groups": meta["param_groups"]}


def save_checkpoint(
    out_dir: str | Path,
    step: int,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler | None = None,
    extra: dict | None = None,
    keep: int = 2,
) -> Path:
    """Save the state *before* `step` runs (resume starts at `step`); prune to `keep` newest."""
    root = Path(out_dir) / "checkpoints"
    path = root / f"step_{step:08d}"
    path.mkdir(parents=True, exist_ok=True)
    # the head is tied by reusing embed.weight (no second parameter), so no shared storage here
    weights = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    with atomic_open(path / "model.safetensors") as f:
        f.write(save(weights))
    tensors, meta = _optimizer_to_flat(optimizer)
    with atomic_open(path / "optim.safetensors") as f:
        f.write(save(tensors))
    state = {
        "step": step,
        "optimizer": meta,
        "extra": extra or {},
        "scaler": scaler.state_dict() if scaler is not None else None,
    }
    write_text_atomic(json.dumps(state), path / STATE)
    done = sorted(p for p in root.glob("step_*") if (p / STATE).exists())
    for old in done[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return path


def latest_checkpoint(out_dir: str | Path) -> Path | None:
    done = sorted(p for p in (Path(out_dir) / "checkpoints").glob("step_*") if (p / STATE).exists())
    return done[-1] if done else None


def load_checkpoint(
    path: str | Path,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer | None = None,
    scaler: torch.amp.GradScaler | None = None,
) -> int:
    """Restore in place; returns the step to continue from."""
    path = Path(path)
    state = json.loads((path / STATE).read_text())
    device = next(model.parameters()).device
    weights = load_file(str(path / "model.safetensors"), device=str(device))
    try:
        model.load_state_dict(weights, strict=True)
    except RuntimeError as err:
        raise ValueError(
            f"checkpoint {path} does not fit this model (config changed?): {err}"
        ) from None
    if optimizer is not None:
        tensors = load_file(str(path / "optim.safetensors"), device=str(device))
        optimizer.load_state_dict(_optimizer_from_flat(tensors, state["optimizer"]))
    if scaler is not None and state.get("scaler"):
        scaler.load_state_dict(state["scaler"])
    return int(state["step"])
