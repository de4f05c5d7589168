#!/usr/bin/env bash
# Data-parallel throughput (issue "Training beyond one process", README "Data-parallel
# training"): on this machine's cores, N ranks x 1 thread (`train --nproc N`, Gloo on loopback),
# with the gradients' all-reduce overlapped with the backward (--dist-overlap on) and after it
# (off), against 1 process x N threads, for Compacter++ and full fine-tuning of a t5-small
# (random weights, T5's vocabulary) on RTE, global batch 16, dropout on, default 25 MiB buckets.
# The three configurations alternate within each round, so that all see the same machine;
# medians over the rounds.
#
#   bash bench/data_parallel.sh [ROUNDS=2] [OUT]
#
# Per run: the median step time from metrics.jsonl (steps 2.., --log-steps 1: the first step's
# start-up excluded), and from results.json the collective payload per step, rank 0's seconds
# blocked in collectives and, of them, waiting for the gradients after the backward (the exposed
# communication), and the gradient bytes started during the backward. Prints one JSON object
# (also OUT/summary.json, with the machine: cores, CPU model, load); raw run folders go to OUT
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
run() {  # method, layout (threads|ranks-overlap|ranks-no-overlap), round
  local dir=$out/$1-$2-$3
  local common=(train --model "$model" --task rte --data-dir "$shared/data/glue" --method "$1"
    --max-train-samples 400 --max-steps "$steps" --batch-size 16 --warmup-steps 1 --log-steps 1
    --eval-steps 100000 --save-steps 100000 --max-new-tokens 2 --eval-batch-size 64
    --out "$dir" --overwrite)
  echo "round $3/$rounds: $1, $2" >&2
  if [[ $2 == ranks-* ]]; then
    local overlap=on
    [[ $2 == ranks-no-overlap ]] && overlap=off
    OMP_NUM_THREADS=1 "$bin" "${common[@]}" --nproc "$nproc" --dist-overlap "$overlap" \
      >/dev/null 2>"$dir.log"
  else
    OMP_NUM_THREADS=$nproc "$bin" "${common[@]}" >/dev/null 2>"$dir.log"
  fi
}
for ((r = 1; r <= rounds; r++)); do
  for method in compacter++ full; do
    run "$method" threads "$r"
    run "$method" ranks-overlap "$r"
    run "$method" ranks-no-overlap "$r"
  done
done
python3 - "$out" "$rounds" "$nproc" <<'PY'
import json, os, platform, statistics, sys
out, rounds, nproc = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
med = statistics.median
def step_seconds(run):
    t = [json.loads(l) for l in open(f"{out}/{run}/metrics.jsonl") if '"type":"train"' in l]
    e = [r["elapsed_seconds"] for r in sorted(t, key=lambda r: r["step"])]
    return med(b - a for a, b in zip(e, e[1:]))
def cpu_model():
    for line in open("/proc/cpuinfo"):
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor()
summary = {"machine": {"name": platform.node(), "cpu": cpu_model(), "cores": os.cpu_count(),
                       "load_average_at_end": os.getloadavg()},
           "nproc": nproc, "rounds": rounds, "methods": {},
           "note": "step times are medians over the rounds of each run's median step (steps 2..); "
                   "wait = rank 0's seconds per step waiting for the gradients' all-reduce after "
                   "the backward (the communication the step did not hide); collective = rank 0's "
                   "seconds per step blocked in any collective (the wait included)"}
for method in ("compacter++", "full"):
    m = {}
    threads = [step_seconds(f"{method}-threads-{r}") for r in range(1, rounds + 1)]
    m["step_seconds_1_process_x_threads"] = med(threads)
    for layout in ("ranks-overlap", "ranks-no-overlap"):
        key = layout.replace("-", "_")
        steps = [step_seconds(f"{method}-{layout}-{r}") for r in range(1, rounds + 1)]
        res = [json.load(open(f"{out}/{method}-{layout}-{r}/results.json"))
               for r in range(1, rounds + 1)]
        d = res[0]["distributed"]
        n = res[0]["steps"]
        m["trainable_parameters"] = res[0]["parameters"]["trainable"]
        m["gradient_bytes_per_step"] = d["gradient_bytes_per_step"]
        m["gradient_buckets"] = d["gradient_buckets"]
        m[f"step_seconds_{key}"] = med(steps)
        m[f"speedup_{key}_vs_threads"] = med(threads) / med(steps)
        m[f"rank0_gradient_wait_seconds_per_step_{key}"] = med(
            r["distributed"]["rank0_gradient_wait_seconds"] / n for r in res)
        m[f"rank0_collective_seconds_per_step_{key}"] = med(
            r["distributed"]["rank0_communication_seconds"] / n for r in res)
        m[f"gradient_bytes_overlapped_share_{key}"] = med(
            r["distributed"]["rank0_gradient_bytes_overlapped"] /
            (n * r["distributed"]["gradient_bytes_per_step"]) for r in res)
        m[f"step_seconds_{key}_rounds"] = steps
    m["step_seconds_1_process_x_threads_rounds"] = threads
    m["overlap_speedup"] = m["step_seconds_ranks_no_overlap"] / m["step_seconds_ranks_overlap"]
    summary["methods"][method] = m
json.dump(summary, open(f"{out}/summary.json", "w"), indent=1)
print(json.dumps(summary, indent=1))
PY
