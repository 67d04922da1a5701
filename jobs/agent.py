"""`python -m jobs.agent --config F [--set k=v ...]`: train a quality agent (ray job entrypoint)."""

from __future__ import annotations

import json
from typing import Any

from jobs.args import config_args
from policies.config import AgentConfig, load_agent_config


def train_agent(cfg: AgentConfig) -> dict[str, Any]:
    """Run the configured algorithm; returns its summary (checkpoint path, timings)."""
    from policies.algorithms import trainer_for

    return trainer_for(cfg)(cfg)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = config_args("python -m jobs.agent", "Train the RL quality agent.", argv)
    summary = train_agent(load_agent_config(args.config, args.overrides))
    print(json.dumps({k: v for k, v in summary.items() if k != "episodic_returns"}, indent=1))
    return summary


if __name__ == "__main__":
    main()
