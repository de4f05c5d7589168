"""The medians of bench_linear_rows.json (3 repetitions each) as the README's table."""
import json
import sys

d = json.load(open(sys.argv[1] if len(sys.argv) > 1 else "bench_linear_rows.json"))
rows = {}
for b in d["benchmarks"]:
    if b.get("aggregate_name") != "median":
        continue
    kv = dict(x.split(":") for x in b["run_name"].split("/")[1:] if ":" in x)
    key = (int(kv["N"]), int(kv["K"]), int(kv["rows"]))
    rows.setdefault(key, {})[b["label"]] = b["real_time"]
print("| N x K | rows | layer ms | x W^T ms | W x^T ms | x W^T / layer |")
print("|---|---:|---:|---:|---:|---:|")
for key in sorted(rows, key=lambda t: (-t[0] * t[1], -t[0], t[2])):
    r = rows[key]
    print("| %d x %d | %d | %.3f | %.3f | %.3f | %.2f |"
          % (key[0], key[1], key[2], r["layer"], r["x_Wt"], r["W_xt"], r["x_Wt"] / r["layer"]))
