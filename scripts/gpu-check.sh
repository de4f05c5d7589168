#!/usr/bin/env bash
# The one prepared run for a lent GPU machine (see README): configure against the pip torch's
# libtorch (CUDA), build, run the test suite, check HF parity on CUDA, run the step benchmark
# and `compacter bench` (Table 3) for three methods.
# Usage: bash scripts/gpu-check.sh   (writes logs under $OUT when set, else ./out/gpu)
set -uo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-out/gpu}
mkdir -p "$out"
prefix=$(python3 -c 'import torch;print(torch.utils.cmake_prefix_path)')
nvidia-smi -L | tee "$out/device.txt"
cmake -S . -B build-cuda -DCMAKE_BUILD_TYPE=Release -DCMAKE_PREFIX_PATH="$prefix" \
  >"$out/cmake.log" 2>&1 || { tail -40 "$out/cmake.log"; exit 1; }
cmake --build build-cuda -j"$(nproc)" >"$out/build.log" 2>&1 || { tail -40 "$out/build.log"; exit 1; }
(cd build-cuda && ctest --output-on-failure -j8) >"$out/ctest.log" 2>&1
tail -5 "$out/ctest.log"
if [[ -f ../shared/data/tiny-t5/model.safetensors ]]; then
  for dtype in fp32 bf16; do
    build-cuda/compacter forward --device cuda --dtype "$dtype" --model ../shared/data/tiny-t5 \
      --inputs ../shared/data/tiny-t5/reference.safetensors --out "$out/tiny-cuda-$dtype.safetensors"
  done
fi
for dtype in fp32 bf16; do
  build-cuda/bench/bench_t5_step --device cuda --dtype "$dtype" --steps 5 | tee -a "$out/bench.jsonl"
done
# Table 3 on the GPU (also the check that CUDA peak memory is read): a few methods, t5-small.
build-cuda/compacter bench --device cuda --methods full,compacter++,bitfit --steps 5 --json \
  >"$out/table3-cuda.json" && tail -c 600 "$out/table3-cuda.json"
