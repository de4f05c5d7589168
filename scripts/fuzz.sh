#!/usr/bin/env bash
# The long fuzzing run (fuzz/README.md): builds every libFuzzer target with clang, AddressSanitizer
# and UndefinedBehaviorSanitizer into build-fuzz/, seeds each corpus from the committed seeds
# (fuzz/corpus/TARGET/) plus real files of ../shared/data where the target reads such files, and
# runs each target for SECONDS (default 60) with its dictionary. Findings are written to
# out/fuzz/TARGET/ as crash-* / timeout-* / oom-*; the summary (executions, corpus size, coverage,
# findings per target) is printed as one JSON object and written to out/fuzz/summary.json (and each
# target's part to out/fuzz/TARGET/summary.json).
# CI does not run this script: it replays the committed seeds (ctest -R fuzz_).
# FUZZ_RUNS=N stops a target after N executions when that comes before SECONDS (the 10M goal:
# FUZZ_RUNS=10000000 with a generous SECONDS). FUZZ_TIMEOUT=S (default 10): seconds one input may
# take; libFuzzer counts wall-clock time, so a niced fuzzer beside a build needs more.
# FUZZ_CONTINUE=1 starts from the corpus a previous run left in out/fuzz/TARGET/corpus (its log
# and findings are moved to out/fuzz/TARGET/previous/) instead of from the seeds alone: a long
# campaign in several runs, each run's executions counted apart.
#
#   [FUZZ_RUNS=N] [FUZZ_TIMEOUT=S] bash scripts/fuzz.sh [SECONDS=60] [TARGET...]
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-60}
runs=${FUZZ_RUNS:--1}
shift || true
targets=("$@")
[[ ${#targets[@]} -gt 0 ]] || targets=(safetensors pytorch_bin config_json task_rows run_state serve_requests adapter_config
  sentencepiece peft_config adapterhub_config weight_map metrics_jsonl results_json bench_plot
  tokenizer_config predict_fields wordnet tokenizer_text)
shared=${COMPACTER_SHARED_DIR:-../shared}
command -v clang++ >/dev/null || { echo "fuzz.sh: needs clang (apt-get install clang)" >&2; exit 2; }
cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_COMPILER=clang++ \
  -DCOMPACTER_FUZZ=ON -DCOMPACTER_BUILD_BENCH=OFF >/dev/null
cmake --build build-fuzz -j"$(nproc)" $(printf -- "--target fuzz_%s " "${targets[@]}") >/dev/null
out=out/fuzz
mkdir -p "$out"
summary=()
for t in "${targets[@]}"; do
  work=$out/$t
  corpus=$work/corpus
  if [[ ${FUZZ_CONTINUE:-0} == 1 && -d $corpus ]]; then
    rm -rf "$work/previous" && mkdir -p "$work/previous"
    find "$work" -maxdepth 1 -type f -exec mv {} "$work/previous/" \;
  else
    rm -rf "$work" && mkdir -p "$corpus"
  fi
  cp fuzz/corpus/"$t"/* "$corpus"/
  # Real files as seeds (never committed: they stay in ../shared).
  if [[ -d $shared/data ]]; then
    case $t in
      config_json)
        i=0
        for f in "$shared"/data/*/config.json "$shared"/data/*/generation_config.json; do
          [[ -f $f ]] && cp "$f" "$corpus/shared-$((i++))"
        done
        ;;
      task_rows)
        i=0
        for f in "$shared"/data/glue/*/*.tsv; do
          { printf '\x00'; head -c 4000 "$f"; } >"$corpus/shared-tsv-$((i++))"
        done
        for f in "$shared"/data/superglue/*/*.jsonl; do
          { printf '\x03'; head -c 4000 "$f"; } >"$corpus/shared-jsonl-$((i++))"
        done
        ;;
      adapter_config | peft_config)
        i=0
        for f in tests/fixtures/peft/*/adapter_config.json; do
          [[ -f $f ]] && cp "$f" "$corpus/fixture-$((i++))"
        done
        ;;
      safetensors)
        cp "$shared"/data/tiny-t5/reference.safetensors "$corpus/shared-reference" 2>/dev/null || true
        ;;
      weight_map)
        cp "$shared"/data/tiny-t5-bin/sharded/pytorch_model.bin.index.json "$corpus/shared-index" \
          2>/dev/null || true
        ;;
      tokenizer_config)  # no tokenizer_config.json, a spiece.model, the real config.json
        i=0
        for f in "$shared"/data/*/config.json; do
          [[ -f $f ]] && { printf '\x02\x00'; cat "$f"; } >"$corpus/shared-$((i++))"
        done
        ;;
      predict_fields)  # the first rows of SuperGLUE's validation files, each with its task's byte
        for pair in BoolQ:9 CB:10 COPA:11 MultiRC:12 WiC:14 RTE:15 WSC:16; do
          f=$shared/data/superglue/${pair%%:*}/val.jsonl
          [[ -f $f ]] || continue
          head -n 3 "$f" | cut -c 1-4000 | awk -v k="${pair##*:}" -v out="$corpus/shared-${pair%%:*}" \
            '{ printf "%c%s", k * 4 + 1, $0 > (out "-" NR) }'
        done
        ;;
    esac
  fi
  dict=fuzz/$t.dict
  log=$work/log.txt
  echo "fuzzing $t for ${seconds}s ($(ls "$corpus" | wc -l) seeds)" >&2
  set +e
  (cd "$work" && "$OLDPWD/build-fuzz/fuzz/fuzz_$t" -dict="$OLDPWD/$dict" -max_len=8192 \
    -max_total_time="$seconds" -runs="$runs" -rss_limit_mb=2048 -timeout="${FUZZ_TIMEOUT:-10}" -print_final_stats=1 \
    corpus) >"$log" 2>&1
  rc=$?
  set -e
  execs=$(grep -oE "stat::number_of_executed_units: *[0-9]+" "$log" | grep -oE "[0-9]+$" || echo 0)
  cov=$(grep -oE "cov: [0-9]+" "$log" | tail -1 | grep -oE "[0-9]+" || echo 0)
  findings=$(find "$work" -maxdepth 1 -name 'crash-*' -o -maxdepth 1 -name 'timeout-*' \
    -o -maxdepth 1 -name 'oom-*' -o -maxdepth 1 -name 'leak-*' | wc -l)
  took=$(grep -oE "Done [0-9]+ runs in [0-9]+ second" "$log" | grep -oE "[0-9]+ second" | grep -oE "[0-9]+" || echo "$seconds")
  summary+=("\"$t\": {\"seconds\": $took, \"executions\": $execs, \"corpus\": $(ls "$corpus" | wc -l), \"coverage_edges\": $cov, \"findings\": $findings, \"exit_code\": $rc}")
  echo "{${summary[-1]}}" >"$work/summary.json"  # this target's line, kept when another run rewrites the summary
done
json="{$(IFS=,; echo "${summary[*]}")}"
echo "$json" | python3 -m json.tool | tee "$out/summary.json"
