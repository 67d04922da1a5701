"""`python -m jobs.train --config F [--set k=v ...]`: entrypoint for `ray job submit`."""

from __future__ import annotations

import json

from curator.trainer.cli import train_command
from jobs.args import config_args


def main(argv: list[str] | None = None) -> dict:
    args = config_args("python -m jobs.train", "Train the bundled DSA language model.", argv)
    summary = train_command(args.config, args.overrides)
    brief = {k: v for k, v in summary.items() if k not in ("losses", "heldout", "workers")}
    print(json.dumps(brief, indent=1))
    return summary


if __name__ == "__main__":
    main()
