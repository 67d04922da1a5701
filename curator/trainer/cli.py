"""`curator train --config FILE [--set k=v]`: the function the typer CLI and jobs/train.py call."""

from __future__ import annotations

import logging

from curator.trainer.config import load_train_config


def train_command(config: str, overrides: list[str]) -> dict:
    """Load and validate the config, then train in-process (workers=0) or on Ray Train.

    Returns the run summary (also written to OUT/summary.json).
    """
    cfg = load_train_config(config, overrides)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    if cfg.workers > 0:
        from curator.trainer.ray_train import train_distributed

        return train_distributed(cfg)
    from curator.trainer.train import train

    return train(cfg)
