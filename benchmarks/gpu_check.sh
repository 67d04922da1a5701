#!/usr/bin/env bash
# GPU check for issue 19: DSA attention vs SDPA, DSA training throughput/MFU, recompiles.
#
#   bash benchmarks/gpu_check.sh [OUT.md]        # from the repo root; OUT.md defaults to
#                                                # benchmarks/results/gpu_check.md
#
# Expected to run ONCE, unattended, on one NVIDIA H200 (141 GB) with a CUDA build of torch 2.13,
# 16 CPU cores and no network, as
#     bash benchmarks/gpu_check.sh benchmarks/results/gpu_check.md
# after which the output folder is copied back. It finishes in under 8 minutes whatever happens:
# the whole run has a hard budget (GPU_CHECK_TOTAL_S, default 460 s, compilation included), every
# part runs in its own process under `timeout` with its own share, and each part's Python code
# also watches its own deadline and skips what no longer fits.
#
# Writes, in OUT.md's folder:
#   OUT.md    the tables: environment, parts' status, targets (PASS/MISS), (a) attention,
#             (b) training throughput, (c) compilations after warm-up
#   OUT.json  the raw numbers (every timing sample, compile events, recompile reasons, errors
#             with tracebacks)
#   OUT.log   everything the parts printed (nvidia-smi, progress, tracebacks)
# Both OUT.json and OUT.md are rewritten after every measured cell, so a part that crashes or is
# killed keeps what it measured, and the other parts' tables are never lost; a cell that fails
# (flex lowering error, OOM, ...) holds the error text and the part moves on.
#
# Parts, in order, with their share of the budget (seconds; trimmed when time runs short):
#   env          25   versions: torch, CUDA, GPU, driver, dependencies, the SDPA backend
#   attention   160   (a) DSA (compiled flex, the model's CUDA path) vs causal SDPA fwd+bwd,
#                     T = 4K/16K/64K/32K, keep 1/8 and 1/16, bf16, 16 heads x 128, block 128;
#                     then flex-vs-gather numerics at 4K and the whole DSAttention layer
#   train-bf16  125   (b)+(c) ~110M DSA model, 50 steps (3 warm-up + 47 timed), torch.compile
#   train-fp16  115   the same with fp16 autocast and a GradScaler
# If the attention part stops on a sticky CUDA error (exit 3), it is rerun at the end, if time
# is left, and the rerun skips the cells already recorded.
#
# Settings (environment): PYTHON (default python3), GPU_CHECK_TOTAL_S (460),
# GPU_CHECK_SMOKE=1 (CPU, tiny sizes: what tests/trainer/test_gpu_check.py runs).
# Exit status: 0 once OUT.md is written, whatever the parts' results (they are in the tables);
# non-zero only if the results could not be written at all.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OUT_MD="$(realpath -m "${1:-benchmarks/results/gpu_check.md}")"
LOG="${OUT_MD%.md}.log"
TOTAL_S="${GPU_CHECK_TOTAL_S:-460}"
SLACK_S=15 # a part may overrun its own budget by this much before timeout kills it
if [[ -n "${PYTHON:-}" ]]; then
    PY="$PYTHON"
elif command -v python3 >/dev/null 2>&1; then
    PY=python3
else
    PY=python
fi
ARGS=()
if [[ "${GPU_CHECK_SMOKE:-0}" == 1 ]]; then
    ARGS+=(--smoke)
fi

cd "$ROOT"
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1
export GPU_CHECK_COMMAND="bash benchmarks/gpu_check.sh $*"
START=$(date +%s)
DEADLINE=$((START + TOTAL_S))
mkdir -p "$(dirname "$OUT_MD")"
: >"$LOG"

say() { echo "[gpu_check.sh +$(($(date +%s) - START))s] $*" | tee -a "$LOG"; }

check() { "$PY" -m benchmarks.gpu_check --out "$OUT_MD" ${ARGS[@]+"${ARGS[@]}"} "$@" 2>&1 | tee -a "$LOG"; }

mark() { check --part mark --mark "$1" || true; }

# run_part NAME SECONDS: run one part under its budget and timeout; never fails the script
LAST_RC=0
run_part() {
    local part=$1 want=$2 left budget rc
    left=$((DEADLINE - $(date +%s)))
    budget=$((want < left - SLACK_S - 5 ? want : left - SLACK_S - 5))
    if ((budget < 20)); then
        say "part $part: skipped, ${left}s left of ${TOTAL_S}s"
        mark "$part=skipped: only ${left} s left of the ${TOTAL_S} s budget"
        LAST_RC=0
        return 0
    fi
    say "part $part: start, budget ${budget}s (${left}s left)"
    set +e
    timeout -k 5 $((budget + SLACK_S - 5)) \
        "$PY" -m benchmarks.gpu_check --out "$OUT_MD" --part "$part" --budget-s "$budget" \
        ${ARGS[@]+"${ARGS[@]}"} 2>&1 | tee -a "$LOG"
    rc=${PIPESTATUS[0]}
    set -e
    case $rc in
        0) ;;
        124 | 137) mark "$part=timed out: killed after $((budget + SLACK_S - 5)) s (own budget ${budget} s)" ;;
        *) mark "$part=failed: exit code $rc (see the log)" ;;
    esac
    say "part $part: exit code $rc"
    LAST_RC=$rc
    return 0
}

say "output $OUT_MD; python $PY; budget ${TOTAL_S}s"
# a fresh json with the run's metadata (no torch import: instant)
check --part render --fresh
if command -v nvidia-smi >/dev/null 2>&1; then
    timeout 20 nvidia-smi 2>&1 | tee -a "$LOG" || true
fi

run_part env 25
run_part attention 160
ATTENTION_RC=$LAST_RC
run_part train-bf16 125
run_part train-fp16 115
if ((ATTENTION_RC == 3)); then
    say "attention stopped on a sticky CUDA error: rerunning it for the cells not yet recorded"
    run_part attention 120
fi

check --part render || true
say "done in $(($(date +%s) - START))s: $OUT_MD, ${OUT_MD%.md}.json, $LOG"
cat "$OUT_MD"
