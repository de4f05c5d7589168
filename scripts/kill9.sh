#!/usr/bin/env bash
# kill -9 at random moments (issue #13): starts a command that writes an output folder, SIGKILLs
# it after a random delay (seeded: the same SEED gives the same delays), then checks that nothing
# was lost or left corrupt:
#   train     `compacter train` (tiny model, 4 steps, a checkpoint every step): the killed run is
#             finished with --resume (or started again when the kill came before its
#             run_config.json); then every file of the run folder must verify.
#   pretrain  `compacter pretrain` (tiny shape, 12 steps, a checkpoint every 3): the same.
#   init      `compacter init-model --force` over an existing model folder: after the kill the
#             folder is byte-identical to before (the command writes the same model again, so the
#             old and the new folder are the same bytes) and verifies.
#   convert   `compacter convert` of ../shared/data/tiny-t5-bin into a new folder: after the kill
#             the folder is absent, empty, or the complete conversion; a rerun then succeeds.
# "Verifies": every .json parses, every .jsonl line parses, every .safetensors header is valid and
# its tensors lie inside the file, adapter_config.json's weights_fnv1a64 and state.json's
# state_fnv1a64 match their files. A file named *.tmp-PID (an atomic write cut short) is counted
# as a stray temporary, never as output, and must not be there once a resumed run finishes.
# Prints per scenario: runs, kills that landed (before the command ended), files lost or corrupt.
#
#   bash scripts/kill9.sh [RUNS=10] [SEED=1] [SCENARIO...]     (COMPACTER=path/to/compacter)
# Exit status 1 when any file was lost or corrupt, 2 on a setup error.
set -uo pipefail
cd "$(dirname "$0")/.."
runs=${1:-10}
seed=${2:-1}
shift 2 2>/dev/null || shift $#
scenarios=("$@")
[[ ${#scenarios[@]} -gt 0 ]] || scenarios=(train pretrain init convert)
bin=${COMPACTER:-build/compacter}
shared=${COMPACTER_SHARED_DIR:-../shared}
[[ -x $bin ]] || { echo "kill9.sh: no program at $bin (build it, or set COMPACTER)" >&2; exit 2; }
bin=$(cd "$(dirname "$bin")" && pwd)/$(basename "$bin")
for f in data/t5-tokenizer/spiece.model data/glue/RTE/train.tsv data/tiny-t5-bin data/tiny-t5/config.json; do
  [[ -e $shared/$f ]] || { echo "kill9.sh: SKIP: $shared/$f is missing" >&2; exit 77; }
done
shared=$(cd "$shared" && pwd)
work=$(mktemp -d "${TMPDIR:-/tmp}/kill9.XXXXXX")
trap 'rm -rf "$work"' EXIT
RANDOM=$seed

# Prints one line per problem in folder $1 ("" when it verifies); $2 = "final" also counts
# temporaries and *.new / *.old folders as problems.
verify() {
  python3 - "$1" "${2:-}" <<'EOF'
import json, os, re, struct, sys
root, final = sys.argv[1], sys.argv[2] == "final"
def fnv(path):
    h = 0xcbf29ce484222325
    with open(path, "rb") as f:
        for b in f.read():
            h = ((h ^ b) * 0x100000001b3) & 0xffffffffffffffff
    return "%016x" % h
def safetensors(path):
    data = open(path, "rb").read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    end = 0
    for name, t in header.items():
        if name == "__metadata__":
            continue
        b, e = t["data_offsets"]
        assert 0 <= b <= e <= len(data) - 8 - n, name
        end = max(end, e)
    assert end == len(data) - 8 - n, "trailing or missing bytes"
for d, dirs, files in os.walk(root):
    for x in dirs:
        if final and (x.endswith(".new") or x.endswith(".old")):
            print("stray folder", os.path.join(d, x))
    for x in files:
        p = os.path.join(d, x)
        if re.search(r"\.tmp-[0-9]+$", x):
            if final:
                print("stray temporary", p)
            continue
        try:
            if x.endswith(".json"):
                j = json.load(open(p))
                if x == "adapter_config.json" and "weights_fnv1a64" in j:
                    assert j["weights_fnv1a64"] == fnv(os.path.join(d, "adapter_model.safetensors")), "checksum"
                if x == "state.json" and "state_fnv1a64" in j:
                    assert j["state_fnv1a64"] == fnv(os.path.join(d, "state.safetensors")), "checksum"
            elif x.endswith(".jsonl"):
                for line in open(p):
                    if line.strip():
                        json.loads(line)
            elif x.endswith(".safetensors"):
                safetensors(p)
            elif os.path.getsize(p) == 0 and x != "README.md":
                raise ValueError("empty")
        except Exception as e:
            print("corrupt", p, repr(e)[:120])
EOF
}

# Starts "$@" with output to $work/log, kills it with SIGKILL after $delay seconds; sets `landed`
# to 1 when the kill came before the command ended.
run_and_kill() {
  "$@" >"$work/log" 2>&1 &
  local pid=$!
  sleep "$delay"
  landed=0
  if kill -0 "$pid" 2>/dev/null; then
    kill -9 "$pid" 2>/dev/null && landed=1
  fi
  wait "$pid" 2>/dev/null
}

# A random delay in [0, $1) seconds, to the millisecond.
draw_delay() {
  delay=$(awk -v r="$(( (RANDOM << 15) | RANDOM ))" -v m="$1" 'BEGIN { printf "%.3f", r / 1073741824 * m }')
}

# Shared inputs: a tiny RTE (20 training, 10 validation and test rows), a tiny model with T5's
# vocabulary, a corpus for pretraining.
mkdir -p "$work/rte"
for f in train dev test; do head -n 21 "$shared/data/glue/RTE/$f.tsv" >"$work/rte/$f.tsv"; done
"$bin" init-model --out "$work/model" --seed 3 --vocab-size 32128 \
  --model-config "$shared/data/tiny-t5/config.json" >/dev/null 2>"$work/log" ||
  { cat "$work/log" >&2; exit 2; }
for s in "the cat" "a dog" "my neighbour" "the farmer"; do
  for v in sees carries likes; do
    for o in "a red boat" "the river" "an apple tree"; do echo "$s $v $o today."; done
  done
done >"$work/corpus.txt"

train_args=(train --model "$work/model" --tokenizer "$shared/data/t5-tokenizer/spiece.model"
  --task rte --data-dir "$work/rte" --method compacter++ --max-steps 4 --batch-size 4
  --eval-batch-size 16 --eval-steps 2 --save-steps 1 --warmup-steps 1 --log-steps 1
  --reduction-factor 4 --n 2 --max-new-tokens 4)
pretrain_args=(pretrain --text "$work/corpus.txt" --d-model 32 --d-kv 8 --d-ff 64
  --num-layers 2 --num-heads 4 --dropout-rate 0 --vocab-size 150 --input-length 40
  --batch-size 8 --max-steps 12 --learning-rate 1e-2 --warmup-steps 2 --log-steps 3
  --save-steps 3 --seed 1)

fail=0
report=()
for scenario in "${scenarios[@]}"; do
  landed_total=0
  lost=0
  stray=0
  # How long one uninterrupted run takes: the delays are drawn up to 1.2 times that.
  ref=$work/$scenario-ref
  start=$(date +%s.%N)
  case $scenario in
    train) "$bin" "${train_args[@]}" --out "$ref" >"$work/log" 2>&1 ;;
    pretrain) "$bin" "${pretrain_args[@]}" --out "$ref" >"$work/log" 2>&1 ;;
    init) cp -r "$work/model" "$ref" && "$bin" init-model --force --out "$ref" --seed 3 \
      --vocab-size 32128 --model-config "$work/model/config.json" >"$work/log" 2>&1 ;;
    convert) "$bin" convert --model "$shared/data/tiny-t5-bin" --out "$ref" >"$work/log" 2>&1 ;;
    *) echo "kill9.sh: unknown scenario $scenario" >&2; exit 2 ;;
  esac || { echo "kill9.sh: the uninterrupted $scenario run failed:" >&2; cat "$work/log" >&2; exit 2; }
  span=$(awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN { printf "%.3f", (b - a) * 1.2 }')
  problems=$(verify "$ref" final)
  [[ -z $problems ]] || { echo "kill9.sh: the uninterrupted $scenario run does not verify: $problems" >&2; exit 1; }
  for ((i = 0; i < runs; i++)); do
    draw_delay "$span"
    out=$work/$scenario-$i
    case $scenario in
      train | pretrain)
        args=("${train_args[@]}")
        [[ $scenario == pretrain ]] && args=("${pretrain_args[@]}")
        run_and_kill "$bin" "${args[@]}" --out "$out"
        if [[ -e $out/results.json || -e $out/pretrain_results.json ]]; then
          :
        elif [[ -e $out/run_config.json || -e $out/pretrain_config.json ]]; then
          "$bin" "${args[@]}" --out "$out" --resume >"$work/log2" 2>&1 ||
            { echo "$scenario run $i (killed at ${delay}s): --resume failed: $(tail -3 "$work/log2")"; lost=$((lost + 1)); }
        else
          "$bin" "${args[@]}" --out "$out" >"$work/log2" 2>&1 ||
            { echo "$scenario run $i (killed at ${delay}s): a new start failed: $(tail -3 "$work/log2")"; lost=$((lost + 1)); }
        fi
        problems=$(verify "$out" final)
        for f in model.safetensors best_adapter/adapter_model.safetensors results.json pretrain_results.json; do
          if [[ -e $ref/$f && ! -e $out/$f ]]; then problems+=$'\n'"missing $out/$f"; fi
        done
        ;;
      init)
        rm -rf "$out" && cp -r "$ref" "$out"
        run_and_kill "$bin" init-model --force --out "$out" --seed 3 --vocab-size 32128 \
          --model-config "$work/model/config.json"
        problems=$(verify "$out")
        stray=$((stray + $(find "$out" -name '*.tmp-*' | wc -l)))
        for f in $(cd "$ref" && find . -type f); do
          cmp -s "$ref/$f" "$out/$f" || problems+=$'\n'"changed or missing $out/$f"
        done
        ;;
      convert)
        run_and_kill "$bin" convert --model "$shared/data/tiny-t5-bin" --out "$out"
        problems=$(verify "$out")
        stray=$((stray + $(find "$out" -name '*.tmp-*' 2>/dev/null | wc -l)))
        if [[ -e $out/model.safetensors ]]; then
          for f in $(cd "$ref" && find . -type f); do
            cmp -s "$ref/$f" "$out/$f" || problems+=$'\n'"partial conversion: $out/$f"
          done
        elif [[ -d $out && -n $(ls -A "$out") ]]; then
          problems+=$'\n'"a partial output folder: $(ls -A "$out" | tr '\n' ' ')"
        else
          "$bin" convert --model "$shared/data/tiny-t5-bin" --out "$out" >"$work/log2" 2>&1 ||
            problems+=$'\n'"the rerun failed: $(tail -2 "$work/log2")"
        fi
        ;;
    esac
    landed_total=$((landed_total + landed))
    if [[ -n ${problems//[$'\n']/} ]]; then
      echo "$scenario run $i (killed at ${delay}s):"$'\n'"$problems"
      lost=$((lost + $(grep -c . <<<"$problems")))
    fi
    rm -rf "$out"
  done
  echo "$scenario: $runs runs, $landed_total kills landed before the end (delays up to ${span}s), files lost or corrupt: $lost, stray temporaries: $stray"
  report+=("\"$scenario\": {\"runs\": $runs, \"kills_landed\": $landed_total, \"files_lost_or_corrupt\": $lost, \"stray_temporaries\": $stray}")
  [[ $lost -eq 0 ]] || fail=1
done
echo "{$(IFS=,; echo "${report[*]}")}"
exit $fail
