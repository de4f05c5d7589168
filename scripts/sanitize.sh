#!/usr/bin/env bash
# The unit tests under sanitizers (fuzz/README.md, "Sanitizers over the test suite"): builds the
# project into build-asan/ with AddressSanitizer + UndefinedBehaviorSanitizer (GCC, -O1, frame
# pointers; every finding stops the test: halt_on_error, no recovery), then runs the `unit` label
# (or the CTest arguments given). With SANITIZER=thread: ThreadSanitizer into build-tsan/, for the
# server and the data loader's threads (`serve`, `tasks` areas by default).
# libtorch itself is not instrumented: reports inside it are out of scope, its allocations are
# still checked where our code touches them. Every process's reports (the test programs and the
# `compacter` processes they start, whose stderr the tests read) go to files in $dir.reports/.
# Prints the tests run and the findings; exit 1 when a test fails or a sanitizer reports.
# TSan reads scripts/tsan.supp (what it is and why, in that file).
#
#   bash scripts/sanitize.sh [CTEST ARGS...]        e.g. -R 'io|tasks'
set -euo pipefail
cd "$(dirname "$0")/.."
kind=${SANITIZER:-address}
if [[ $kind == thread ]]; then
  dir=build-tsan
  flags="-fsanitize=thread -O1 -g -fno-omit-frame-pointer"
  default_args=(-R '^(serve|tasks)$')
  openmp=OFF  # libgomp is not instrumented: its barriers would read as races (CMakeLists.txt)
  # What those two entries run: their test programs and the CLI the HTTP tests start.
  build_args=(--target compacter compacter_core compacter_spm tests_serve tests_tasks)
  # The instrumented server answers ~10x slower: tests that wait for a request to be under way
  # wait that much longer (tests/support/test_support.h, time_scale).
  export COMPACTER_TEST_TIME_SCALE=${COMPACTER_TEST_TIME_SCALE:-10}
else
  dir=build-asan
  flags="-fsanitize=address,undefined -fno-sanitize-recover=all -O1 -g -fno-omit-frame-pointer"
  default_args=(-L unit)
  openmp=ON
  build_args=()
fi
args=("$@")
[[ ${#args[@]} -gt 0 ]] || args=("${default_args[@]}")
cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_FLAGS="$flags" \
  -DCMAKE_EXE_LINKER_FLAGS="$flags" -DCMAKE_SHARED_LINKER_FLAGS="$flags" \
  -DCOMPACTER_TCMALLOC=OFF -DCOMPACTER_BUILD_BENCH=OFF -DCOMPACTER_OPENMP="$openmp" >/dev/null
cmake --build "$dir" -j"$(nproc)" "${build_args[@]}" >"$dir.build.log" 2>&1 || { tail -30 "$dir.build.log"; exit 1; }
# libtorch's own leaks at exit (static registries) are not ours: leak checking off; everything
# else aborts the test with a report.
reports=$PWD/$dir.reports
rm -rf "$reports" && mkdir -p "$reports"
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=0:halt_on_error=1:abort_on_error=1:detect_odr_violation=0:log_path=$reports/asan}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1:log_path=$reports/ubsan}
export TSAN_OPTIONS=${TSAN_OPTIONS:-halt_on_error=1:second_deadlock_stack=1:log_path=$reports/tsan:suppressions=$PWD/scripts/tsan.supp}
log=$dir.test.log
set +e
(cd "$dir" && ctest -j"$(nproc)" --timeout 1200 --output-on-failure "${args[@]}") >"$log" 2>&1
rc=$?
set -e
grep -E "tests passed|tests failed" "$log" || true
# Not findings: the SIGSEGV that tests/kernels' fake OpenBLAS raises on purpose in a probe's child
# (KernelsProbe.ACrashIsAFailedTrial and the launcher's tests), which ASan reports before dying.
for f in "$reports"/*; do
  [[ -f $f ]] && grep -q "fake_blas/fake_openblas.cpp" "$f" && mv "$f" "$f.provoked"
done
provoked=$(ls "$reports" | grep -c "\.provoked$" || true)
findings=$(cat "$log" $(ls "$reports"/* 2>/dev/null | grep -v "\.provoked$") 2>/dev/null |
  grep -cE "ERROR: AddressSanitizer|runtime error:|WARNING: ThreadSanitizer" || true)
echo "crashes provoked on purpose by the fake OpenBLAS (not findings): $provoked"
echo "sanitizer ($kind) reports: $findings (log: $log; reports: $reports/)"
[[ $rc -eq 0 && $findings -eq 0 ]]
