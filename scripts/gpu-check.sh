#!/usr/bin/env bash
# The one prepared run for a lent GPU machine (see README, "GPU"): unpack the carried Debian
# packages (scripts/gpu-deps.sh), configure against the pip torch's libtorch (CUDA), build, run
# the CUDA tests, Hugging Face parity on CUDA (fp32, bf16), a real `compacter train` + `eval` on
# CUDA with bf16 autocast, `compacter bench` (Table 3) in fp32 and autocast-bf16, and last, while
# time is left, the whole test suite against this libtorch.
# Usage: bash scripts/gpu-check.sh   (logs under $OUT when set, else ./out/gpu; GPU_CHECK_BUDGET
# seconds, default 500, skips the stages that would start after it)
set -uo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-out/gpu}
mkdir -p "$out"
start=$(date +%s)
budget=${GPU_CHECK_BUDGET:-500}
log() { echo "[gpu-check $(($(date +%s) - start))s] $*" | tee -a "$out/summary.txt"; }
time_left() { (($(date +%s) - start < budget - ${1:-0})); }

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
{
  nvidia-smi -L
  python3 -c 'import torch;print("torch", torch.__version__, "cuda", torch.version.cuda)'
  g++ --version | head -1
  command -v nvcc && nvcc --version | tail -2
  cmake --version | head -1
  nproc
} 2>&1 | tee "$out/device.txt"

generator=()
command -v ninja >/dev/null && generator=(-G Ninja)
log "configure"
cmake -S . -B build-cuda "${generator[@]}" -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_PREFIX_PATH="$deps/usr;$prefix" -DCOMPACTER_SHARED_DIR="$shared" \
  >"$out/cmake.log" 2>&1 || {
  tail -40 "$out/cmake.log"
  exit 1
}
log "build"
if ! cmake --build build-cuda -j"$(nproc)" >"$out/build.log" 2>&1; then
  grep -E "error|Error" "$out/build.log" | head -60
  exit 1
fi
bin=build-cuda/compacter
log "built; CUDA tests"
(cd build-cuda && ctest -R 'Cuda\.|Autocast\.' --output-on-failure) >"$out/ctest-cuda.log" 2>&1
grep -E "tests passed|Passed|Failed|\*\*\*|Skipped" "$out/ctest-cuda.log" | tee -a "$out/summary.txt"

log "Hugging Face parity on CUDA"
for dtype in fp32 bf16; do
  "$bin" forward --device cuda --dtype "$dtype" --model "$shared/data/tiny-t5" \
    --inputs "$shared/data/tiny-t5/reference.safetensors" \
    --out "$out/tiny-cuda-$dtype.safetensors" 2>&1 | tail -3 | tee -a "$out/summary.txt"
done

if time_left 200; then
  log "train + eval on CUDA: t5-small (random init), compacter++, RTE, bf16 autocast"
  model=/tmp/t5-small-random
  "$bin" init-model --config t5-small --out "$model" --seed 0 --force >/dev/null &&
    cp "$shared/data/t5-tokenizer/spiece.model" "$model/"
  "$bin" train --model "$model" --device cuda --task rte --data-dir "$shared/data/glue" \
    --method compacter++ --max-steps 150 --batch-size 32 --warmup-steps 10 --eval-steps 75 \
    --eval-batch-size 128 --log-steps 25 --bf16-autocast true --out /tmp/run-rte --overwrite \
    >"$out/train.log" 2>&1
  tail -4 "$out/train.log" | tee -a "$out/summary.txt"
  cp /tmp/run-rte/results.json "$out/train-results.json" 2>/dev/null
  "$bin" eval --model "$model" --device cuda --adapter /tmp/run-rte/best_adapter --task rte \
    --data-dir "$shared/data/glue" --split test 2>&1 | tail -3 | tee -a "$out/summary.txt"
fi

for dtype in fp32 autocast-bf16; do
  time_left 120 || break
  log "Table 3 on CUDA, t5-base, batch 64, $dtype"
  "$bin" bench --device cuda --dtype "$dtype" --model-config t5-base --batch 64 --steps 10 \
    --methods full,adapter,pfeiffer,lowrank,compacter,compacter++,bitfit,prompt-r,said \
    --json >"$out/table3-cuda-t5-base-$dtype.json" 2>"$out/table3-$dtype.err"
  tail -3 "$out/table3-$dtype.err" | tee -a "$out/summary.txt"
done

if time_left 60; then
  log "the whole test suite against this libtorch (CPU tests, 2 threads each)"
  (cd build-cuda && OMP_NUM_THREADS=2 timeout $((budget - ($(date +%s) - start))) \
    ctest -j"$(($(nproc) / 2))" --timeout 240 --output-on-failure) >"$out/ctest-all.log" 2>&1
  grep -E "tests passed|\(Failed\)|\(Timeout\)|Skipped|Not Run" "$out/ctest-all.log" |
    tail -30 | tee -a "$out/summary.txt"
fi
log "done"
