#!/usr/bin/env bash
# The test command of the README and CI: install dependencies, build, run every test (CTest).
# Tests that need ../shared/data skip (reported as skipped) when it is absent.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
bash scripts/build.sh
cd build
ctest --output-on-failure --timeout 600 -j"$(nproc)"
