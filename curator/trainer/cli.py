"""`curator train --config FILE [--set k=v]`: the function the typer CLI and jobs/train.py call."""

from __future__ import annotations

import logging
import sys

from curator.trainer.config import load_train_config

CONSOLE = "curator.trainer"  # the training loop logs its progress lines under this logger


class _Stderr(logging.StreamHandler):
    """A stream handler on whatever sys.stderr is at each line (test runners swap it)."""

    @property
    def stream(self):  # type: ignore[override]
        return sys.stderr

    @stream.setter
    def stream(self, _value) -> None:
        pass


def console_progress(quiet: bool = False) -> None:
    """Show the training loop's log lines on stderr as they are (no timestamp or logger name:
    they are nanoGPT-style progress lines), or nothing but warnings when `quiet`.

    Idempotent: one handler on the logger however often it is called."""
    logger = logging.getLogger(CONSOLE)
    logger.setLevel(logging.WARNING if quiet else logging.INFO)
    if not any(h.get_name() == CONSOLE for h in logger.handlers):
        handler = _Stderr()
        handler.set_name(CONSOLE)
        handler.setFormatter(logging.Formatter("%(message)s"))
        logger.addHandler(handler)
    logger.propagate = False  # one copy on the console even if the root logger has a handler


def train_command(config: str | None, overrides: list[str], quiet: bool = False) -> dict:
    """Load and validate the config, then train in-process (workers=0) or on Ray Train.

    Progress lines go to stderr unless `quiet`. Returns the run summary (also written to
    OUT/summary.json, with the loss plot OUT/loss.png).
    """
    cfg = load_train_config(config, overrides)
    console_progress(quiet)
    if cfg.workers > 0:
        from curator.trainer.ray_train import train_distributed

        return train_distributed(cfg)
    from curator.trainer.train import train

    return train(cfg)
