#!/usr/bin/env bash
# The README's main job, for now (it grows into the pretrain + Compacter++ demo of issue #6):
# build, create a T5-small-shaped model with Hugging Face's initialisation, inspect it, run it,
# and, where ../shared/data is present, check parity with Hugging Face and tokenize real text.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
bash scripts/build.sh
bin=build/compacter
out=out/demo
mkdir -p "$out"
shared=../shared/data

echo "== 1. a T5-small-shaped model (random, Hugging Face init), written as a Hugging Face folder"
"$bin" init-model --config t5-small --out "$out/t5-small-random" --seed 0 --force
"$bin" inspect "$out/t5-small-random" | grep -E "tensors, .* parameters"

if [[ -f $shared/tiny-t5/model.safetensors ]]; then
  echo "== 2. Hugging Face parity on the tiny checkpoint (HF's loss: 6.2369661)"
  "$bin" forward --model "$shared/tiny-t5" --inputs "$shared/tiny-t5/reference.safetensors" \
    --out "$out/tiny-forward.safetensors"
fi
if [[ -f $shared/t5-tokenizer/spiece.model ]]; then
  echo "== 3. the T5 tokenizer"
  text="translate English to German: The house is wonderful."
  echo "$text"
  "$bin" tokenize --tokenizer "$shared/t5-tokenizer/spiece.model" --text "$text"
  echo "== 4. greedy generation with the cached decoder (random weights: the output is noise)"
  "$bin" generate --model "$out/t5-small-random" --tokenizer "$shared/t5-tokenizer/spiece.model" \
    --text "$text" --max-new-tokens 8 --show-ids
fi
echo "done: see README.md for the commands"
