"""The one place an agent config's `algorithm` becomes the function that trains it (the job
entrypoint, the default policy's builder and the benchmarks all go through here)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from policies.config import AgentConfig


def trainer_for(cfg: AgentConfig) -> Callable[..., dict[str, Any]]:
    """`main(cfg, pool=None, tokenizer=None, fitted=None)` of cfg.algorithm's module."""
    if cfg.algorithm == "ppo":
        from policies.ppo import main
    elif cfg.algorithm == "es":
        from policies.es import main
    else:
        from policies.reinforce import main
    return main
