"""Bundled trainer: a GPT-style decoder with DSA (dynamic sparse attention) and AMP.

Library API (what the quality agent calls): `build_model`, `build_optimizer`, `lr_at`,
`train_steps` / `scheduled_step`, `evaluate`, `per_document_loss`; `train(cfg)` is the full loop.
Heavy modules load lazily so `import curator.trainer` stays cheap for the CLI.
"""

from __future__ import annotations

from typing import Any

from curator.trainer.config import (
    DataConfig,
    DSAConfig,
    ModelConfig,
    OptimConfig,
    TrainConfig,
    load_train_config,
)

_LAZY = {
    "build_model": "engine",
    "build_optimizer": "engine",
    "lr_at": "engine",
    "train_step": "engine",
    "scheduled_step": "engine",
    "train_steps": "engine",
    "evaluate": "engine",
    "per_document_loss": "engine",
    "train": "train",
    "train_distributed": "ray_train",
    "GPT": "model",
    "DSAttention": "dsa",
    "load_corpus": "data",
    "TokenStream": "data",
}

__all__ = [
    "DataConfig",
    "DSAConfig",
    "ModelConfig",
    "OptimConfig",
    "TrainConfig",
    "load_train_config",
    *_LAZY,
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f"curator.trainer.{_LAZY[name]}"), name)
    raise AttributeError(f"module 'curator.trainer' has no attribute {name!r}")
