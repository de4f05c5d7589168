#!/usr/bin/env bash
# The unit tests under sanitizers (fuzz/README.md, "Sanitizers over the test suite"): builds the
# project into build-asan/ with AddressSanitizer + UndefinedBehaviorSanitizer (GCC, -O1, frame
# pointers; every finding stops the test: halt_on_error, no recovery), then runs the `unit` label
# (or the CTest arguments given). With SANITIZER=thread: ThreadSanitizer into build-tsan/, for the
# server and the data loader's threads (`serve`, `tasks` areas by default).
# libtorch itself is not instrumented: reports inside it are out of scope, its allocations are
# still checked where our code touches them. Prints the tests run and the findings; exit 1 when a
# test fails or a sanitizer reports.
#
#   bash scripts/sanitize.sh [CTEST ARGS...]        e.g. -R 'io|tasks'
set -euo pipefail
cd "$(dirname "$0")/.."
kind=${SANITIZER:-address}
if [[ $kind == thread ]]; then
  dir=build-tsan
  flags="-fsanitize=thread -O1 -g -fno-omit-frame-pointer"
  default_args=(-R '^(serve|tasks)$')
  # What those two entries run: their test programs and the CLI the HTTP tests start.
  build_args=(--target compacter compacter_core compacter_spm tests_serve tests_tasks)
else
  dir=build-asan
  flags="-fsanitize=address,undefined -fno-sanitize-recover=all -O1 -g -fno-omit-frame-pointer"
  default_args=(-L unit)
  build_args=()
fi
args=("$@")
[[ ${#args[@]} -gt 0 ]] || args=("${default_args[@]}")
cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_FLAGS="$flags" \
  -DCMAKE_EXE_LINKER_FLAGS="$flags" -DCMAKE_SHARED_LINKER_FLAGS="$flags" \
  -DCOMPACTER_TCMALLOC=OFF -DCOMPACTER_BUILD_BENCH=OFF >/dev/null
cmake --build "$dir" -j"$(nproc)" "${build_args[@]}" >"$dir.build.log" 2>&1 || { tail -30 "$dir.build.log"; exit 1; }
# libtorch's own leaks at exit (static registries) are not ours: leak checking off; everything
# else aborts the test with a report.
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=0:halt_on_error=1:abort_on_error=1:detect_odr_violation=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}
export TSAN_OPTIONS=${TSAN_OPTIONS:-halt_on_error=1:second_deadlock_stack=1}
log=$dir.test.log
set +e
(cd "$dir" && ctest -j"$(nproc)" --timeout 1200 --output-on-failure "${args[@]}") >"$log" 2>&1
rc=$?
set -e
grep -E "tests passed|tests failed" "$log" || true
findings=$(grep -cE "ERROR: AddressSanitizer|runtime error:|WARNING: ThreadSanitizer" "$log" || true)
echo "sanitizer ($kind) reports: $findings (log: $log)"
[[ $rc -eq 0 && $findings -eq 0 ]]
