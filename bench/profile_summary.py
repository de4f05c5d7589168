#!/usr/bin/env python3
"""Where a training step's time goes: sums a Chrome trace written by `compacter bench --profile`
(libtorch's autograd profiler) by operator *self* time (an operator's time minus the operators it
called), and by coarse group (matrix products, softmax, dropout, norms, element-wise, copies and
layout, ...). Prints JSON (machine-readable), or a table with --table.

Usage: python3 bench/profile_summary.py out/profile-compacter++.json [--steps N] [--table]
"""
import argparse
import json
import re
import sys
from collections import defaultdict

GROUPS = [  # first match wins
    ("matrix products", r"^aten::(mm|addmm|bmm|baddbmm|matmul|linear|_?mkldnn.*|addmv|mv|dot)$|"
                        r"^compacter::(batched_matmul|onednn_linear|bf16_linear)$|"
                        # their backward nodes
                        r"(BatchedMatmulFunction|OnednnLinearFunction|Bf16LinearFunction)"),
    ("softmax", r"softmax"),
    ("dropout", r"(?i)dropout|bernoulli"),  # aten's, compacter::(relu_)dropout, HashDropout
    ("norms", r"^aten::(pow|mean|rsqrt|norm|linalg_vector_norm)|^compacter::rms_norm|"
              r"FusedRmsNorm"),  # the fused kernel (nn/rms_norm.h) and its backward node
    ("loss and embedding", r"nll_loss|cross_entropy|embedding|log_softmax"),
    ("copies and layout", r"^aten::(copy_|contiguous|clone|_to_copy|to|cat|stack|transpose|t|permute|"
                          r"view|reshape|_reshape_alias|expand|as_strided|empty.*|zeros.*|ones.*|"
                          r"fill_|zero_|select|slice|narrow|unsqueeze|squeeze|index.*|resize_|"
                          r"detach|alias|unbind|split.*|chunk)$"),
    ("element-wise", r"^aten::(add|add_|mul|mul_|div|div_|sub|rsub|gelu|relu|tanh|threshold.*|"
                     r"where|masked_fill.*|addcmul_|addcdiv_|sqrt|lerp_|exp|log|neg|abs|"
                     r"clamp.*|sum|max|min|eq|ne|lt|gt|ge|le|sign|pow_)"),
]


def group_of(name):
    for label, pattern in GROUPS:
        if re.search(pattern, name):
            return label
    return "other"


def load_events(path):
    with open(path) as f:
        doc = json.load(f)
    events = doc["traceEvents"] if isinstance(doc, dict) else doc
    out = []
    for e in events:
        if e.get("ph") != "X" or "dur" not in e:
            continue
        out.append((str(e.get("pid", "")), str(e.get("tid", "")), float(e["ts"]),
                    float(e["dur"]), e["name"]))
    if not out:
        sys.exit(f"{path}: no complete ('ph': 'X') events: not a profiler trace?")
    return out


def self_times(events):
    """Self time (us) per operator name: durations minus those of directly nested events."""
    by_thread = defaultdict(list)
    for pid, tid, ts, dur, name in events:
        by_thread[(pid, tid)].append((ts, -dur, name))
    self_us = defaultdict(float)
    calls = defaultdict(int)
    for items in by_thread.values():
        items.sort()
        stack = []  # [end, name, child_time]
        for ts, neg_dur, name in items:
            dur = -neg_dur
            while stack and stack[-1][0] <= ts:
                end, n, child = stack.pop()
                self_us[n] -= child
            if stack:
                stack[-1][2] += dur
            self_us[name] += dur
            calls[name] += 1
            stack.append([ts + dur, name, 0.0])
        while stack:
            end, n, child = stack.pop()
            self_us[n] -= child
    return self_us, calls


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("trace")
    ap.add_argument("--steps", type=int, default=1, help="timed steps in the trace (per-step ms)")
    ap.add_argument("--table", action="store_true", help="print a table instead of JSON")
    ap.add_argument("--top", type=int, default=15)
    a = ap.parse_args()
    self_us, calls = self_times(load_events(a.trace))
    total = sum(self_us.values())
    groups = defaultdict(float)
    for name, us in self_us.items():
        groups[group_of(name)] += us
    ops = sorted(self_us.items(), key=lambda kv: -kv[1])
    result = {
        "trace": a.trace,
        "steps": a.steps,
        "total_ms_per_step": total / 1000 / a.steps,
        "groups": {g: {"ms_per_step": us / 1000 / a.steps, "share": us / total}
                   for g, us in sorted(groups.items(), key=lambda kv: -kv[1])},
        "operators": [{"name": n, "group": group_of(n), "ms_per_step": us / 1000 / a.steps,
                       "share": us / total, "calls_per_step": calls[n] / a.steps}
                      for n, us in ops[: a.top]],
    }
    if not a.table:
        print(json.dumps(result, indent=2))
        return
    print(f"{a.trace}: {result['total_ms_per_step']:.0f} ms of operator time per step")
    for g, v in result["groups"].items():
        print(f"  {g:20s} {v['ms_per_step']:9.1f} ms  {100 * v['share']:5.1f}%")
    print("top operators (self time):")
    for o in result["operators"]:
        print(f"  {o['name']:36s} {o['ms_per_step']:9.1f} ms  {100 * o['share']:5.1f}%"
              f"  {o['calls_per_step']:6.0f} calls  [{o['group']}]")


if __name__ == "__main__":
    main()
