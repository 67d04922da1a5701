"""`python -m jobs.train --config F [--set k=v ...]`: entrypoint for `ray job submit`."""

from __future__ import annotations

import argparse
import json

from curator.trainer.cli import train_command


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description="Train the bundled DSA language model.")
    parser.add_argument("--config", required=True, help="TrainConfig YAML file.")
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="Override a config field (repeatable).",
    )
    args = parser.parse_args(argv)
    summary = train_command(args.config, args.overrides)
    brief = {k: v for k, v in summary.items() if k not in ("losses", "heldout", "workers")}
    print(json.dumps(brief, indent=1))
    return summary


if __name__ == "__main__":
    main()
