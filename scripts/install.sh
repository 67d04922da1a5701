#!/usr/bin/env bash
# Create .venv (if missing) and install curator with the tested pins from constraints.txt.
# Usage: scripts/install.sh [extras]   e.g. scripts/install.sh test
set -euo pipefail
cd "$(dirname "$0")/.."
extras="${1:-}"
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
# torch first, alone: with the exact pin pip takes the provided CPU build instead of resolving
# a CUDA build through another package's looser requirement.
.venv/bin/python -m pip install -q "torch==2.13.0"
spec="."
[ -n "$extras" ] && spec=".[${extras}]"
.venv/bin/python -m pip install -q -c constraints.txt -e "$spec"
# Byte-compile the project's own modules, as pip does for a regular (non-editable) install: an
# editable install leaves that to the first import, which skips writing the cache where
# PYTHONDONTWRITEBYTECODE is set, so every curator process would compile ~17k lines again.
.venv/bin/python -m compileall -q curator connectors policies jobs > /dev/null
