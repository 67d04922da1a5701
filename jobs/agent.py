"""`python -m jobs.agent --config F [--set k=v ...]`: train a quality agent (ray job entrypoint)."""

from __future__ import annotations

import argparse
import json
from typing import Any

from policies.config import AgentConfig, load_agent_config


def train_agent(cfg: AgentConfig) -> dict[str, Any]:
    """Run the configured algorithm; returns its summary (checkpoint path, timings)."""
    if cfg.algorithm == "ppo":
        from policies.ppo import main as run
    else:
        from policies.reinforce import main as run
    return run(cfg)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description="Train the RL quality agent.")
    parser.add_argument("--config", required=True, help="AgentConfig YAML file.")
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="Override a config field (repeatable).",
    )
    args = parser.parse_args(argv)
    summary = train_agent(load_agent_config(args.config, args.overrides))
    print(json.dumps({k: v for k, v in summary.items() if k != "episodic_returns"}, indent=1))
    return summary


if __name__ == "__main__":
    main()
