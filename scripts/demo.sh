#!/usr/bin/env bash
# The README's first command, run by CI after the tests so it cannot rot.
# Fresh machine, no network needed beyond the package registry: install, build a real-text
# corpus from this machine's installed packages + pydoc topics, curate it on an embedded local
# Ray cluster (free ports: it starts beside any other Ray), print the funnel, export it in
# curriculum order, train the bundled DSA model on it, and run a small closed train-and-filter
# loop (RUN/report.html shows every arm).
#
# Sized by work, not time: ~0.8 MB of text curated, 300K training tokens, a 3-round loop of
# 5 arms x 16K tokens. Measured on 2 idle cores: about 6 minutes after the install (each phase
# prints its time); a machine busy with other jobs takes longer.
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-runs/demo}"
phase() { printf '\n=== demo %s: %s\n' "$1" "$2" >&2; }

phase 1/6 "install (scripts/install.sh)"
scripts/install.sh
export RAY_USAGE_STATS_ENABLED=0
curator=.venv/bin/curator

phase 2/6 "build the offline demo corpus -> $out/corpus"
$curator demo-corpus "$out/corpus"

phase 3/6 "curate it on an embedded Ray cluster -> $out/run"
$curator curate --config configs/demo.yaml --set output="$out/run" --input "$out/corpus"

phase 4/6 "export every kept document in curriculum order -> $out/export"
$curator export "$out/run" --format parquet --schedule phases --output "$out/export" --overwrite

phase 5/6 "train the bundled DSA model on the shards (300K tokens) -> $out/train"
$curator train --config configs/train_tiny.yaml --set data.path="$out/run" \
  --set out_dir="$out/train" --set max_tokens=300000

phase 6/6 "closed train-and-filter loop, 3 rounds x 5 arms -> $out/loop"
$curator loop --config configs/loop_demo.yaml --set output="$out/loop"

printf '\n=== demo done: %s/run/report.html, %s/loop/report.html\n' "$out" "$out" >&2
