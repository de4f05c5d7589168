#!/usr/bin/env python3
"""Where a training step's time goes: a Chrome trace written by `compacter bench --profile`
(libtorch's autograd profiler) by operator *self* time (an operator's time minus the operators it
called), and by coarse group (matrix products, softmax, dropout, norms, element-wise, copies and
layout, ...). Prints JSON (machine-readable), or a table with --table.

The program marks each timed step (`compacter::bench_step`; `bench --inference`: each request,
`compacter::bench_request`). With the marks, every figure is the median over the steps of that
step's time, so one stalled operator in one step does not inflate its group (means come along),
and the steps' time outside any operator is its own group. A trace without them (an older
program) is summed and divided by --steps, as before.

Usage: python3 bench/profile_summary.py out/profile-compacter++.json [--table] [--top N]
       python3 bench/profile_summary.py OLD_TRACE --steps N [--table]
"""
import argparse
import bisect
import json
import math
import re
import signal
import statistics
import sys
from collections import defaultdict

STEP_EVENTS = ("compacter::bench_step", "compacter::bench_request")
OUTSIDE = "outside operators"  # a step's own self time: its time in no operator

GROUPS = [  # first match wins
    ("matrix products", r"^aten::(mm|addmm|bmm|baddbmm|matmul|linear|_?mkldnn.*|addmv|mv|dot)$|"
                        r"^compacter::(batched_matmul|onednn_linear|bf16_linear|int8_linear)$|"
                        # their backward nodes
                        r"(BatchedMatmulFunction|OnednnLinearFunction|Bf16LinearFunction)"),
    ("softmax", r"softmax"),
    ("dropout", r"(?i)dropout|bernoulli"),  # aten's, compacter::(relu_)dropout, HashDropout
    ("norms", r"^aten::(pow|mean|rsqrt|norm|linalg_vector_norm)|^compacter::rms_norm|"
              r"FusedRmsNorm"),  # the fused kernel (nn/rms_norm.h) and its backward node
    ("loss and embedding", r"nll_loss|cross_entropy|embedding|log_softmax"),
    ("copies and layout", r"^aten::(copy_|contiguous|clone|_to_copy|to|cat|stack|transpose|t|"
                          r"permute|view|reshape|_reshape_alias|expand|as_strided|empty.*|"
                          r"zeros.*|ones.*|fill_|zero_|select|slice|narrow|unsqueeze|squeeze|"
                          r"index.*|resize_|detach|alias|unbind|split.*|chunk)$"),
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
    """The trace's complete events as (pid, tid, ts, dur, name); exits naming the file."""
    try:
        with open(path) as f:
            doc = json.load(f)
    except OSError as e:
        sys.exit(f"{path}: cannot read: {e.strerror}")
    except (ValueError, UnicodeDecodeError) as e:
        sys.exit(f"{path}: not JSON: {e}")
    events = doc.get("traceEvents") if isinstance(doc, dict) else doc
    if not isinstance(events, list):
        sys.exit(f"{path}: expected a Chrome trace (a list of events, or traceEvents)")
    out = []
    for e in events:
        if not isinstance(e, dict) or e.get("ph") != "X":
            continue
        try:
            ts, dur = float(e["ts"]), float(e["dur"])
            name = str(e["name"])
        except (KeyError, TypeError, ValueError):
            sys.exit(f"{path}: a complete ('ph': 'X') event without a numeric ts, dur and a name: "
                     f"{json.dumps(e)[:200]}")
        out.append((str(e.get("pid", "")), str(e.get("tid", "")), ts, dur, name))
    if not out:
        sys.exit(f"{path}: no complete ('ph': 'X') events: not a profiler trace?")
    return out


def self_times(events):
    """Each event with its self time (us): (ts, name, self), its duration minus those of the
    events directly nested in it on its thread."""
    by_thread = defaultdict(list)
    for pid, tid, ts, dur, name in events:
        by_thread[(pid, tid)].append((ts, -dur, name))
    out = []
    for items in by_thread.values():
        items.sort()
        stack = []  # [end, index into out]
        for ts, neg_dur, name in items:
            dur = -neg_dur
            while stack and stack[-1][0] <= ts:
                stack.pop()
            if stack:
                parent = out[stack[-1][1]]
                parent[2] -= dur
            out.append([ts, name, dur])
            stack.append([ts + dur, len(out) - 1])
    return out


def per_step(timed, steps):
    """{name: [self us in step 0, 1, ...]}, with the step events' own self time as OUTSIDE, and
    {name: calls}; events outside every step are left out."""
    starts = [ts for ts, _ in steps]
    table = defaultdict(lambda: [0.0] * len(steps))
    calls = defaultdict(int)
    for ts, name, us in timed:
        i = bisect.bisect_right(starts, ts) - 1
        if i < 0 or ts >= steps[i][0] + steps[i][1]:
            continue
        table[OUTSIDE if name in STEP_EVENTS else name][i] += us
        calls[name] += 1
    return table, calls


def summarise(path, steps_arg, top):
    events = load_events(path)
    marks = sorted((ts, dur) for _, _, ts, dur, name in events if name in STEP_EVENTS)
    timed = self_times(events)
    if marks:
        if steps_arg is not None and steps_arg != len(marks):
            print(f"{path}: --steps {steps_arg}, but the trace marks {len(marks)} steps "
                  f"({' or '.join(STEP_EVENTS)}); leave --steps out", file=sys.stderr)
            sys.exit(2)
        table, calls = per_step(timed, marks)
        n = len(marks)
        stat = statistics.median
        statistic = "median"
    else:
        if steps_arg is None:
            print(f"{path}: the trace marks no steps ({' or '.join(STEP_EVENTS)}: written by an "
                  "older program); say how many it holds with --steps N", file=sys.stderr)
            sys.exit(2)
        # One span over the whole trace: every event, summed into one column.
        table, calls = per_step(timed, [(min(ts for ts, _, _ in timed), math.inf)])
        n = steps_arg
        stat = lambda v: sum(v) / n  # noqa: E731 (one summed column: its mean per step)
        statistic = "mean"
    width = len(next(iter(table.values())))  # the steps, or one summed column
    groups = defaultdict(lambda: [0.0] * width)
    for name, column in table.items():
        g = OUTSIDE if name == OUTSIDE else group_of(name)
        for i, us in enumerate(column):
            groups[g][i] += us
    totals = [sum(col[i] for col in table.values()) for i in range(width)]
    total = stat(totals)

    def figures(column):
        ms = stat(column) / 1000
        return {"ms_per_step": ms, "mean_ms_per_step": sum(column) / n / 1000,
                "share": ms * 1000 / total if total else 0.0}

    ops = sorted(((k, v) for k, v in table.items() if k != OUTSIDE), key=lambda kv: -stat(kv[1]))
    return {
        "trace": path,
        "steps": n,
        "statistic": statistic,
        "total_ms_per_step": total / 1000,
        "groups": {g: figures(v) for g, v in sorted(groups.items(), key=lambda kv: -stat(kv[1]))},
        "operators": [dict(name=k, group=group_of(k), **figures(v),
                           calls_per_step=calls[k] / n) for k, v in ops[:top]],
    }


def main():
    # A reader that stops early (`| head`) ends this program as it ends `cat`: quietly, by SIGPIPE,
    # not with Python's BrokenPipeError.
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("trace")
    ap.add_argument("--steps", type=int, default=None,
                    help="timed steps in a trace without step marks (an older program's)")
    ap.add_argument("--table", action="store_true", help="print a table instead of JSON")
    ap.add_argument("--top", type=int, default=15, help="operators listed (default 15)")
    a = ap.parse_args()
    if a.steps is not None and a.steps < 1:
        ap.error("--steps must be at least 1")
    if a.top < 0:
        ap.error("--top must not be negative")
    result = summarise(a.trace, a.steps, a.top)
    if not a.table:
        print(json.dumps(result, indent=2))
        return
    print(f"{a.trace}: {result['total_ms_per_step']:.0f} ms per step "
          f"({result['statistic']} of {result['steps']} steps)")
    medians = result["statistic"] == "median"
    for g, v in result["groups"].items():
        mean = f"  (mean {v['mean_ms_per_step']:.1f})" if medians else ""
        print(f"  {g:20s} {v['ms_per_step']:9.1f} ms  {100 * v['share']:5.1f}%{mean}")
    print("top operators (self time):")
    for o in result["operators"]:
        print(f"  {o['name']:36s} {o['ms_per_step']:9.1f} ms  {100 * o['share']:5.1f}%"
              f"  {o['calls_per_step']:6.0f} calls  [{o['group']}]")


if __name__ == "__main__":
    main()
