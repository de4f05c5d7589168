#!/usr/bin/env bash
# The paper's Table 3 efficiency report on this machine: every method on a randomly initialised
# t5-small, batch 16, source 128, target 3, 3 timed steps each (one child process per method),
# written as JSON to bench/results/table3-<device>-<host>-<date>.json; progress goes to stderr.
# A method that fails is an "error" entry in the file and makes the script exit non-zero.
# Needs ./build/compacter (bash scripts/build.sh). Extra arguments go to `compacter bench`,
# e.g. --device cuda --dtype bf16.
# Usage: bash bench/run_table3.sh [extra compacter bench flags]
set -euo pipefail
cd "$(dirname "$0")/.."
device=cpu
args=("$@")
for ((i = 0; i + 1 < ${#args[@]}; ++i)); do
  if [[ ${args[i]} == --device ]]; then device=${args[i + 1]}; fi
done
mkdir -p bench/results
out="bench/results/table3-${device//:/}-$(hostname -s)-$(date +%Y%m%d-%H%M%S).json"
status=0
build/compacter bench --model-config t5-small --methods all --batch-size 16 --source-len 128 \
  --target-len 3 --max-steps 3 --json "$@" >"$out" || status=$?
if [[ -s $out ]]; then echo "wrote $out" >&2; else rm -f "$out"; fi
exit "$status"
