#!/usr/bin/env bash
# Fresh machine, no network needed beyond the package registry: install, build a real-text
# corpus from this machine's installed packages + pydoc topics, curate it on an embedded local
# Ray cluster, print the funnel, train the bundled DSA model on the shards for a few steps, and
# run a small closed train-and-filter loop (RUN/report.html shows every arm).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install.sh
export RAY_USAGE_STATS_ENABLED=0
out="${1:-runs/demo}"
.venv/bin/curator demo-corpus "$out/corpus"
.venv/bin/curator curate --config configs/demo.yaml --set output="$out/run" --input "$out/corpus"
.venv/bin/curator train --config configs/train_tiny.yaml --set data.path="$out/run" --set out_dir="$out/train"
.venv/bin/curator loop --config configs/loop_demo.yaml --set output="$out/loop" --quiet
