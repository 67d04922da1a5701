"""`python -m jobs.curate --config F [--set k=v ...]`: a curation job, locally or under
`ray job submit` (where RAY_ADDRESS points the job at the cluster)."""

from __future__ import annotations

import argparse
import json
import sys

from curator.config import ConfigError, CurateConfig, load_model
from curator.executor import run_curate


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m jobs.curate")
    parser.add_argument("--config", required=True, help="YAML config of the job")
    parser.add_argument("--set", action="append", default=[], help="override key.sub=value")
    args = parser.parse_args(argv)
    try:
        cfg = load_model(CurateConfig, args.config, args.set)
        stats = run_curate(cfg)  # type: ignore[arg-type]
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(
        json.dumps({k: stats[k] for k in ("records", "kept", "dropped", "quarantined", "tokens")})
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
