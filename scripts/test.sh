#!/usr/bin/env bash
# The test command of the README and CI: install dependencies, build, run every test (CTest).
# Tests that need ../shared/data skip (reported as skipped, never as passed) when it is absent.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
bash scripts/build.sh
cd build
status=0
ctest --output-on-failure --timeout 600 -j"$(nproc)" || status=$?
# CTest names a skipped program ("Skipped"); its skipped tests and their reasons are in the log.
grep -hE '^\[  SKIPPED \] [^ ]+: ' Testing/Temporary/LastTest.log || true
exit "$status"
