"""`python -m jobs.curate --config F [--set k=v ...]`: a curation job, locally or under
`ray job submit` (where RAY_ADDRESS points the job at the cluster)."""

from __future__ import annotations

import json
import sys

from curator.config import ConfigError, CurateConfig, load_model
from curator.executor import run_curate
from jobs.args import config_args


def main(argv: list[str] | None = None) -> int:
    args = config_args("python -m jobs.curate", "Curate inputs into a RUN directory.", argv)
    try:
        cfg = load_model(CurateConfig, args.config, args.overrides)
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
