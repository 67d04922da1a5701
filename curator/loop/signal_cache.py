"""The model signal an update computed, kept for the next round's unit.

The loop update after round r computes the model signal (curator/loop/signal.py) of the loop
arm's remaining documents under its round-r checkpoint; the unit of round r+1 ranks the same
documents under the same checkpoint, so it would compute the same numbers again -- two
per-document loss passes over everything the arm has left, the costliest part of a loop round
on CPU. The update writes them next to the policy file it produces
(`round-K.signal.npz`, before the policy file, which marks the update done), and the unit uses
them only if they are for the same signal, the same documents in the same order and the same
checkpoint bytes; anything else (another arm's checkpoint, a redone unit, a file from an older
run) recomputes. Both sides compute with one thread on the same checkpoint, so a unit that
reads the file ranks exactly as one that recomputes.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
import xxhash

from connectors.fs import atomic_open


def signal_cache_path(policy_path: str | Path) -> Path:
    return Path(policy_path).with_suffix(".signal.npz")


def checkpoint_digest(checkpoint: Path) -> str:
    """xxh3-128 of the checkpoint's model weights: which model the signal was computed under."""
    h = xxhash.xxh3_128()
    with open(checkpoint / "model.safetensors", "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            h.update(block)
    return h.hexdigest()


def _key(kind: str, docs: np.ndarray, checkpoint: Path) -> str:
    return json.dumps({
        "kind": kind,
        "docs": xxhash.xxh3_128_hexdigest(np.ascontiguousarray(docs, np.int64).tobytes()),
        "checkpoint": checkpoint_digest(checkpoint),
    }, sort_keys=True)


def save_signal(
    path: Path, kind: str, docs: np.ndarray, checkpoint: Path, gain: np.ndarray
) -> None:
    """Write `gain` (aligned with the pool rows `docs`) computed under `checkpoint`."""
    with atomic_open(path) as f:
        np.savez(f, gain=np.asarray(gain, np.float64), key=np.array(_key(kind, docs, checkpoint)))


def load_signal(path: Path, kind: str, docs: np.ndarray, checkpoint: Path) -> np.ndarray | None:
    """The cached signal of `docs` under `checkpoint`, or None when there is none that fits."""
    if not path.exists():
        return None
    try:
        with np.load(path) as z:
            key, gain = str(z["key"]), z["gain"]
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
        # a torn or foreign file: recompute, never trust it
        return None
    if key != _key(kind, docs, checkpoint) or len(gain) != len(docs):
        return None
    return gain
