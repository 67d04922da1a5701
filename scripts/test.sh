#!/usr/bin/env bash
# Install with test extras and run the suite. pytest's exit 5 (no tests collected) is success.
set -uo pipefail
cd "$(dirname "$0")/.."
scripts/install.sh test || exit 1
# No auth for the suite's own cluster, so Ray's single-machine mode: all its ports on 127.0.0.1.
export RAY_USAGE_STATS_ENABLED=0 RAY_AUTH_MODE=disabled RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0
# --durations: the CI log names the slowest tests, so the suite's 15-minute budget is watched
.venv/bin/python -m pytest tests --durations=15 "$@"
rc=$?
[ "$rc" -eq 5 ] && rc=0
exit "$rc"
