#!/usr/bin/env bash
# Data-parallel throughput (issue "Training beyond one process", README "Data-parallel
# training"): on this machine's cores, N ranks x 1 thread (`train --nproc N`, Gloo on loopback)
# against 1 process x N threads, for Compacter++ and full fine-tuning of a t5-small (random
# weights, T5's vocabulary) on RTE, global batch 16, dropout on. The two configurations alternate
# within each round, so that both see the same machine; medians over the rounds.
#
#   bash bench/data_parallel.sh [ROUNDS=2] [OUT]
#
# Per run: the median step time from metrics.jsonl (steps 2.., --log-steps 1: the first step's
# start-up excluded), and from results.json the collective payload per step and rank 0's seconds
# in collectives. Prints one JSON object (also OUT/summary.json); raw run folders go to OUT
# (default bench/results/data-parallel-DATE).
set -euo pipefail
rounds=${1:-2}
out=${2:-bench/results/data-parallel-$(date -u +%Y%m%d-%H%M%S)}
bin=${COMPACTER:-build/compacter}
shared=${COMPACTER_SHARED_DIR:-../shared}
nproc=${NPROC:-2}
steps=${STEPS:-8}
mkdir -p "$out"
model=$out/t5-small-random
if [[ ! -f $model/model.safetensors ]]; then
  "$bin" init-model --model-config t5-small --out "$model" --seed 0 --force >/dev/null
  cp "$shared/data/t5-tokenizer/spiece.model" "$model/"
fi
run() {  # method, layout (ranks|threads), round
  local dir=$out/$1-$2-$3
  local common=(train --model "$model" --task rte --data-dir "$shared/data/glue" --method "$1"
    --max-train-samples 400 --max-steps "$steps" --batch-size 16 --warmup-steps 1 --log-steps 1
    --eval-steps 100000 --save-steps 100000 --max-new-tokens 2 --eval-batch-size 64
    --out "$dir" --overwrite)
  echo "round $3/$rounds: $1, $2" >&2
  if [[ $2 == ranks ]]; then
    OMP_NUM_THREADS=1 "$bin" "${common[@]}" --nproc "$nproc" >/dev/null 2>"$dir.log"
  else
    OMP_NUM_THREADS=$nproc "$bin" "${common[@]}" >/dev/null 2>"$dir.log"
  fi
}
for ((r = 1; r <= rounds; r++)); do
  for method in compacter++ full; do
    run "$method" threads "$r"
    run "$method" ranks "$r"
  done
done
python3 - "$out" "$rounds" "$nproc" <<'PY'
import json, os, statistics, sys
out, rounds, nproc = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
med = statistics.median
def step_seconds(run):
    t = [json.loads(l) for l in open(f"{out}/{run}/metrics.jsonl") if '"type":"train"' in l]
    e = [r["elapsed_seconds"] for r in sorted(t, key=lambda r: r["step"])]
    return med(b - a for a, b in zip(e, e[1:]))
summary = {"machine": {"cores": os.cpu_count(), "load_average_at_end": os.getloadavg()},
           "nproc": nproc, "rounds": rounds, "methods": {}}
for method in ("compacter++", "full"):
    threads = [step_seconds(f"{method}-threads-{r}") for r in range(1, rounds + 1)]
    ranks = [step_seconds(f"{method}-ranks-{r}") for r in range(1, rounds + 1)]
    res = [json.load(open(f"{out}/{method}-ranks-{r}/results.json")) for r in range(1, rounds + 1)]
    d = res[0]["distributed"]
    steps = res[0]["steps"]
    summary["methods"][method] = {
        "trainable_parameters": res[0]["parameters"]["trainable"],
        "step_seconds_1_process_x_threads": med(threads),
        "step_seconds_ranks_x_1_thread": med(ranks),
        "ranks_speedup": med(threads) / med(ranks),
        "gradient_bytes_per_step": d["gradient_bytes_per_step"],
        "rank0_collective_seconds_per_step":
            med(r["distributed"]["rank0_communication_seconds"] / steps for r in res),
        "collective_share_of_step":
            med(r["distributed"]["rank0_communication_seconds"] / steps for r in res) / med(ranks),
    }
json.dump(summary, open(f"{out}/summary.json", "w"), indent=1)
print(json.dumps(summary, indent=1))
PY
