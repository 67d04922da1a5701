"""`python -m jobs.export --config F [--set k=v ...]`: a curriculum export (curator/export.py's
ExportConfig as YAML), locally or under `ray job submit`."""

from __future__ import annotations

import argparse
import json
import sys

from curator.config import ConfigError, load_model
from curator.export import ExportConfig, run_export


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m jobs.export")
    parser.add_argument("--config", required=True, help="YAML ExportConfig")
    parser.add_argument("--set", action="append", default=[], help="override key=value")
    args = parser.parse_args(argv)
    try:
        cfg = load_model(ExportConfig, args.config, args.set)
        summary = run_export(cfg)  # type: ignore[arg-type]
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(json.dumps({k: summary[k] for k in ("format", "docs", "tokens", "files")}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
