"""`python -m jobs.loop --config F [--set k=v ...]`: the closed train-and-filter loop (a Ray job
entrypoint: under `ray job submit` it joins that cluster, locally it starts an embedded one)."""

from __future__ import annotations

import json
import sys
from typing import Any

from curator.config import ConfigError
from curator.loop.config import load_loop_config
from curator.loop.driver import run_loop
from jobs.args import config_args


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = config_args("python -m jobs.loop", "Run a closed train-and-filter loop.", argv)
    try:
        summary = run_loop(load_loop_config(args.config, args.overrides))
    except ConfigError as err:  # bad config: say which field and how to fix it, exit 2
        print(f"error: {err}", file=sys.stderr)
        raise SystemExit(2) from None
    print(json.dumps({k: summary[k] for k in ("target_loss", "arms", "wall_s")}, indent=1))
    return summary


if __name__ == "__main__":
    main()
