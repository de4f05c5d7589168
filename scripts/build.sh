#!/usr/bin/env bash
# Configures and builds compacter.cpp into ./build (Release, unity build). Extra arguments go to
# cmake's configure step; COMPACTER_TARGET=compacter builds only the program (no tests).
set -euo pipefail
cd "$(dirname "$0")/.."
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release "$@" >/dev/null
cmake --build build -j"$(nproc)" ${COMPACTER_TARGET:+--target "$COMPACTER_TARGET"}
