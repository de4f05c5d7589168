#!/usr/bin/env bash
# The one prepared run for a lent GPU machine (README, "GPU"): unpack the Debian packages and the
# shared data that scripts/gpu-deps.sh put in .gpudeps/ and .gpushared/ (name both in the run's
# `carry`), build SentencePiece from the carried sources, configure against the pip torch's
# libtorch (CUDA), build, then the stages of GPU_CHECK_STAGES in order:
#   shim    `compacter data` with the tokenizer (loads the SentencePiece shim), and the same
#           through a shim linked to Debian's shared libsentencepiece, for comparison
#   tests   the CUDA and autocast tests (tests/cuda/cuda_test.cpp, tests/nn/autocast_test.cpp)
#   parity  `compacter forward` on CUDA (fp32, bf16) against Hugging Face's tiny-t5 outputs
#   train   `compacter train` + `eval` on CUDA (t5-small random init, compacter++, RTE), fp32
#           and bf16 autocast; a crash is re-run under cuda-gdb for a backtrace
#   suite   the whole test suite against this libtorch (GPU_CHECK_CTEST_ARGS: more ctest flags)
#   bench   `compacter bench` (Table 3) on t5-base, batch 64, fp32 and autocast-bf16
# GPU_CHECK_TARGETS limits the build (e.g. "compacter tests_cuda tests_nn"). A stage starts only while GPU_CHECK_BUDGET seconds (default 480) are not spent. The summary is
# $OUT/summary.txt; every log is in $OUT/logs.tgz (OUT defaults to ./out/gpu).
set -uo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-out/gpu}
logs=$(mktemp -d)
mkdir -p "$out"
start=$(date +%s)
budget=${GPU_CHECK_BUDGET:-480}
stages=${GPU_CHECK_STAGES:-shim tests parity train suite bench}
log() { echo "[gpu-check $(($(date +%s) - start))s] $*" | tee -a "$out/summary.txt"; }
time_left() { (($(date +%s) - start < budget - ${1:-0})); }
pack() { tar -C "$logs" -czf "$out/logs.tgz" . 2>/dev/null; }
trap pack EXIT

deps=/opt/compacter-deps
mkdir -p "$deps"
for f in .gpudeps/*.deb; do
  [[ -f $f ]] || continue
  if command -v dpkg-deb >/dev/null; then dpkg-deb -x "$f" "$deps"; else
    (cd "$deps" && ar p "$OLDPWD/$f" "$(ar t "$OLDPWD/$f" | grep '^data.tar')" | tar -xJf -)
  fi
done
export LD_LIBRARY_PATH=$deps/usr/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
export PATH=$PATH:/usr/local/cuda/bin
shared=$PWD/../shared
[[ -d .gpushared/data ]] && shared=$PWD/.gpushared
export COMPACTER_SHARED_DIR=$shared
prefix=$(python3 -c 'import torch;print(torch.utils.cmake_prefix_path)')
generator=()
command -v ninja >/dev/null && generator=(-G Ninja)

# SentencePiece from the sources gpu-deps.sh carried, as static archives (PIC) that the shim
# links, compiled by this machine's compiler (GPU_CHECK_SPM=debian: Debian's shared library).
spm_prefix=
if [[ ${GPU_CHECK_SPM:-source} == source && -f .gpudeps/sentencepiece-src.tar.gz ]]; then
  log "sentencepiece from source"
  spm_src=$(mktemp -d)
  tar -C "$spm_src" -xzf .gpudeps/sentencepiece-src.tar.gz
  spm_prefix=$deps/spm
  mkdir -p "$spm_prefix/include" "$spm_prefix/lib"
  if cmake -S "$spm_src"/sentencepiece-* -B "$spm_src/build" "${generator[@]}" \
    -DCMAKE_BUILD_TYPE=Release -DSPM_ENABLE_SHARED=OFF -DSPM_ENABLE_TCMALLOC=OFF \
    -DCMAKE_POSITION_INDEPENDENT_CODE=ON -DCMAKE_POLICY_VERSION_MINIMUM=3.5 \
    -DCMAKE_CXX_FLAGS="-include cstdint" >"$logs/spm-cmake.log" 2>&1 &&
    cmake --build "$spm_src/build" -j"$(nproc)" --target sentencepiece-static \
      sentencepiece_train-static >"$logs/spm-build.log" 2>&1; then
    cp "$spm_src"/sentencepiece-*/src/sentencepiece_{processor,trainer}.h "$spm_prefix/include/"
    cp "$spm_src"/build/src/libsentencepiece{,_train}.a "$spm_prefix/lib/"
  else
    log "sentencepiece build failed; using Debian's library"
    tail -20 "$logs/spm-cmake.log" "$logs/spm-build.log" | tee -a "$out/summary.txt"
    spm_prefix=
  fi
fi
{
  nvidia-smi -L
  python3 -c 'import torch;print("torch", torch.__version__, "cuda", torch.version.cuda)'
  g++ --version | head -1
  cmake --version | head -1
  echo "cores: $(nproc)"
} 2>&1 | tee -a "$out/summary.txt"

gtest=()
[[ -f $deps/usr/src/googletest/CMakeLists.txt ]] &&
  gtest=(-DCOMPACTER_GTEST_SOURCE_DIR="$deps/usr/src/googletest" -DCMAKE_POLICY_VERSION_MINIMUM=3.5)
log "configure"
cmake -S . -B build-cuda "${generator[@]}" -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_PREFIX_PATH="${spm_prefix:+$spm_prefix;}$deps/usr;$prefix" \
  ${spm_prefix:+-DCMAKE_DISABLE_FIND_PACKAGE_PkgConfig=ON} -DCOMPACTER_SHARED_DIR="$shared" "${gtest[@]}" \
  -DCOMPACTER_TCMALLOC=OFF -DCOMPACTER_HTTP=OFF -DCOMPACTER_OPENMP=OFF >"$logs/cmake.log" 2>&1 || {
  tail -40 "$logs/cmake.log"
  exit 1
}
log "build"
targets=()
for t in ${GPU_CHECK_TARGETS:-}; do targets+=(--target "$t"); done
if ! cmake --build build-cuda -j"$(nproc)" "${targets[@]}" >"$logs/build.log" 2>&1; then
  grep -E "error|Error" "$logs/build.log" | head -60 | tee -a "$out/summary.txt"
  exit 1
fi
bin=$PWD/build-cuda/compacter
log "built"
# How the C++ runtime is linked (the image's compiler is its own GCC under /opt/gcc): which
# libstdc++ each binary loads, and whether the shim carries a copy of libstdc++'s iostreams.
{
  command -v g++
  ldd "$bin" | grep -E "stdc\+\+|torch_cpu|sentencepiece"
  ldd build-cuda/libcompacter_spm.so | grep -E "stdc\+\+|sentencepiece"
  echo "shim symbols from libstdc++ (defined): $(nm -C --defined-only build-cuda/libcompacter_spm.so |
    grep -c -E 'std::(basic_ostream|codecvt|locale)')"
  echo "libtorch_cpu exports std::filesystem: $(nm -D --defined-only \
    "$(dirname "$prefix")/../lib/libtorch_cpu.so" 2>/dev/null | grep -c _ZNSt10filesystem)"
} 2>&1 | tee -a "$out/summary.txt"

# Runs "$@" with its output in $logs/$name.log; on a crash (signal) re-runs it under cuda-gdb.
run_logged() {
  local name=$1
  shift
  "$@" >"$logs/$name.log" 2>&1
  local rc=$?
  tail -3 "$logs/$name.log" | tee -a "$out/summary.txt"
  if ((rc >= 128)) && command -v cuda-gdb >/dev/null; then
    log "$name crashed (exit $rc); backtrace:"
    cuda-gdb -batch -ex run -ex bt --args "$@" >"$logs/$name-gdb.log" 2>&1
    grep -E "^#|signal" "$logs/$name-gdb.log" | head -25 | tee -a "$out/summary.txt"
  fi
  return $rc
}

stage_tests() {
  (cd build-cuda/tests && { ./tests_cuda; ./tests_nn --gtest_filter='Autocast.*'; }) \
    >"$logs/ctest-cuda.log" 2>&1
  grep -E "PASSED|FAILED|SKIPPED|Expected|Which is|out of tolerance" "$logs/ctest-cuda.log" |
    head -30 | tee -a "$out/summary.txt"
}

# The tokenizer through the shim the build made and, for comparison, through one linked to
# Debian's shared libsentencepiece (session 4's protobuf CHECK); on failure, which of
# libsentencepiece's symbols bound outside it.
stage_shim() {
  sha256sum "$shared/data/t5-tokenizer/spiece.model" | tee -a "$out/summary.txt"
  local data=("$bin" data --task rte --data-dir "$shared/data/glue" --split validation
    --tokenizer "$shared/data/t5-tokenizer/spiece.model" --limit 1)
  run_logged data "${data[@]}"
  [[ -f $deps/usr/include/sentencepiece_processor.h ]] || return
  g++ -std=c++17 -O2 -shared -fPIC src/spm_shim/spm_shim.cpp -I"$deps/usr/include" \
    -L"$deps/usr/lib/x86_64-linux-gnu" -lsentencepiece_train -lsentencepiece \
    -Wl,--version-script=src/spm_shim/exports.map -o "$logs/shim-debian.so" >"$logs/shim-debian-build.log" 2>&1 ||
    { log "Debian shim: build failed"; return; }
  log "Debian shim:"
  if ! COMPACTER_SPM_SHIM=$logs/shim-debian.so run_logged data-debian "${data[@]}"; then
    COMPACTER_SPM_SHIM=$logs/shim-debian.so LD_DEBUG=bindings "${data[@]}" 2>&1 |
      grep -E "binding file [^ ]*sentencepiece" | grep -vE "to [^ ]*(sentencepiece|libc\.so|libm\.so)" |
      sed 's/^ *[0-9]*: *//' | sort | uniq | head -40 >"$logs/shim-debian-bindings.log"
    head -15 "$logs/shim-debian-bindings.log" | tee -a "$out/summary.txt"
  fi
}

stage_parity() {
  for dtype in fp32 bf16; do
    run_logged "forward-$dtype" "$bin" forward --device cuda --dtype "$dtype" \
      --model "$shared/data/tiny-t5" --inputs "$shared/data/tiny-t5/reference.safetensors" \
      --out "$logs/tiny-cuda-$dtype.safetensors"
  done
}

stage_train() {
  local model=/tmp/t5-small-random
  "$bin" init-model --model-config t5-small --out "$model" --seed 0 --force >/dev/null &&
    cp "$shared/data/t5-tokenizer/spiece.model" "$model/"
  for autocast in false true; do
    time_left 60 || return
    run_logged "train-autocast-$autocast" "$bin" train --model "$model" --device cuda \
      --task rte --data-dir "$shared/data/glue" --method compacter++ --max-steps 150 \
      --batch-size 32 --warmup-steps 10 --eval-steps 75 --eval-batch-size 128 --log-steps 25 \
      --dtype "$([ "$autocast" = true ] && echo autocast-bf16 || echo fp32)" --out "/tmp/run-rte-$autocast" --overwrite
    cp "/tmp/run-rte-$autocast/results.json" "$logs/train-autocast-$autocast-results.json"
    run_logged "eval-autocast-$autocast" "$bin" eval --model "$model" --device cuda \
      --adapter "/tmp/run-rte-$autocast/best_adapter" --task rte \
      --data-dir "$shared/data/glue" --split test
  done
}

stage_suite() {
  (cd build-cuda && OMP_NUM_THREADS=2 timeout $((budget - ($(date +%s) - start))) \
    ctest -j"$(($(nproc) / 2))" --timeout 240 --output-on-failure ${GPU_CHECK_CTEST_ARGS:-}) \
    >"$logs/ctest-all.log" 2>&1
  grep -E "tests passed|\(Failed\)|\(Timeout\)|Not Run|\(Skipped\)" "$logs/ctest-all.log" |
    tail -30 | tee -a "$out/summary.txt"
  grep -m1 -A25 '\*\*\*Failed' "$logs/ctest-all.log" | tee -a "$out/summary.txt"
}

stage_bench() {
  for dtype in fp32 autocast-bf16; do
    time_left 90 || return
    log "Table 3, t5-base, batch 64, $dtype"
    "$bin" bench --device cuda --dtype "$dtype" --model-config t5-base --batch-size 64 --max-steps 10 \
      --methods full,adapter,pfeiffer,lowrank,compacter,compacter++,bitfit,prompt-r,said \
      --json >"$logs/table3-cuda-t5-base-$dtype.json" 2>"$logs/table3-$dtype.err"
    cp "$logs/table3-cuda-t5-base-$dtype.json" "$out/"
  done
}

for stage in $stages; do
  if ! time_left 30; then
    log "skipped $stage (budget spent)"
    continue
  fi
  log "stage $stage"
  "stage_$stage"
done
log "done"
