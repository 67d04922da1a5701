"""`python -m jobs.export --config F [--set k=v ...]`: a curriculum export (curator/export.py's
ExportConfig as YAML), locally or under `ray job submit`."""

from __future__ import annotations

import json
import sys

from curator.config import ConfigError, load_model
from curator.export import ExportConfig, run_export
from jobs.args import config_args


def main(argv: list[str] | None = None) -> int:
    args = config_args("python -m jobs.export", "Export a finished run in curriculum order.", argv)
    try:
        cfg = load_model(ExportConfig, args.config, args.overrides)
        summary = run_export(cfg)  # type: ignore[arg-type]
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(json.dumps({k: summary[k] for k in ("format", "docs", "tokens", "files")}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
