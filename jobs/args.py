"""The arguments every job entrypoint takes: `--config FILE` and repeatable `--set key=value`."""

from __future__ import annotations

import argparse


def config_args(prog: str, description: str, argv: list[str] | None = None) -> argparse.Namespace:
    """Parse `--config F [--set k=v ...]`; `.config` and `.overrides` on the result."""
    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.add_argument("--config", required=True, help="YAML config of the job.")
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="Override a config field, key.sub=value (repeatable).",
    )
    return parser.parse_args(argv)
