#!/usr/bin/env python3
"""Compares `compacter score` with scikit-learn and SciPy on random cases (spec §5.2).

Each case is a task, random gold labels and random predictions: correct, wrong, constant, and
invalid strings ("", "yes", "2", "nan", ...). The script writes them as the references
`compacter data` prints and the predictions `compacter score` reads, runs the program, and
recomputes every metric here with sklearn / scipy under the spec's rules:

  accuracy      mean of pred == gold
  f1            binary F1 of "1" after each invalid prediction is replaced by the opposite of
                its gold label (MRPC, QQP, MultiRC F1a)
  mcc           sklearn matthews_corrcoef on the raw strings (invalid = one more class)
  pearson/      unparsable prediction -> -1.0, then scipy pearsonr / spearmanr; NaN -> 0
  spearman
  macro_f1      sklearn f1_score(labels=["0","1","2"], average="macro"), undefined F1 = 0 (CB)
  em (MultiRC)  per question group: the predicted list equals the gold list; mean over groups
  f1/em         SQuAD-normalised, max over gold answers (ReCoRD), written here from the spec

Needs: apt-get install -y python3-sklearn python3-scipy (run with /usr/bin/python3). Not part of CTest (the tests must not
depend on Python packages); run it after changing src/compacter/tasks/metrics.cpp or score.cpp:

  python3 scripts/check-metrics.py [--compacter build/compacter] [--cases 300] [--seed 1]
"""
import argparse
import collections
import json
import math
import os
import random
import re
import string
import subprocess
import sys
import tempfile
import warnings

try:
    import numpy as np
    from scipy import stats
    from sklearn import metrics as skm
except ImportError as e:  # pragma: no cover
    sys.exit(f"check-metrics: {e}; install them with: apt-get install -y python3-sklearn python3-scipy")

INVALID = ["", "yes", "no", "2", "-1", "nan", "inf", "0.5", "1e0", "true", " 1", "1 ", "positive"]

TASKS = {
    # task: (labels, metric keys)
    "cola": (["0", "1"], ["mcc"]),
    "sst2": (["0", "1"], ["accuracy"]),
    "mrpc": (["0", "1"], ["accuracy", "f1"]),
    "qqp": (["0", "1"], ["accuracy", "f1"]),
    "rte": (["0", "1"], ["accuracy"]),
    "boolq": (["0", "1"], ["accuracy"]),
    "cb": (["0", "1", "2"], ["macro_f1", "accuracy"]),
    "mnli": (["0", "1", "2"], ["accuracy"]),
    "stsb": (None, ["pearson", "spearman"]),
    "multirc": (["0", "1"], ["f1", "em"]),
    "record": (None, ["f1", "em"]),
}


def stsb_gold(rng):
    return f"{round(rng.uniform(0, 5) * 5) / 5:.1f}"


def predictions(rng, gold, labels):
    mode = rng.choice(["random", "correct", "constant", "noisy", "invalid-heavy"])
    if labels is None:  # STS-B strings
        pool = [f"{k / 5:.1f}" for k in range(26)]
        if mode == "correct":
            return list(gold)
        if mode == "constant":
            return [rng.choice(pool + INVALID)] * len(gold)
        out = []
        for g in gold:
            r = rng.random()
            if mode == "noisy" and r < 0.6:
                out.append(f"{min(5.0, max(0.0, float(g) + rng.choice([-0.4, -0.2, 0.2, 0.4]))):.1f}")
            elif r < (0.5 if mode == "invalid-heavy" else 0.1):
                out.append(rng.choice(INVALID))
            else:
                out.append(rng.choice(pool))
        return out
    if mode == "correct":
        return list(gold)
    if mode == "constant":
        return [rng.choice(labels + INVALID[:3])] * len(gold)
    out = []
    for g in gold:
        r = rng.random()
        if mode == "noisy" and r < 0.7:
            out.append(g)
        elif r < (0.5 if mode == "invalid-heavy" else 0.1):
            out.append(rng.choice(INVALID))
        else:
            out.append(rng.choice(labels))
    return out


def binary_f1(gold, pred):
    fixed = [p if p in ("0", "1") else ("0" if g == "1" else "1") for g, p in zip(gold, pred)]
    return 100 * skm.f1_score(gold, fixed, pos_label="1", average="binary", labels=["0", "1"],
                              zero_division=0)


def corr(fn, gold, pred):
    def parse(s):
        try:
            return float(s)
        except ValueError:
            return -1.0
    g = np.array([float(x) for x in gold])
    p = np.array([parse(x) for x in pred])
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            v = fn(g, p)[0]
        except ValueError:  # SciPy >= 1.9's pearsonr refuses NaN / inf; older ones gave NaN
            v = math.nan
    return 0.0 if math.isnan(v) else 100 * v


def squad_normalize(s):
    s = s.lower()
    s = "".join(ch for ch in s if ch not in set(string.punctuation))
    s = re.sub(r"\b(a|an|the)\b", " ", s)
    return " ".join(s.split())


def squad_f1(pred, gold):
    p, g = squad_normalize(pred).split(), squad_normalize(gold).split()
    common = collections.Counter(p) & collections.Counter(g)
    same = sum(common.values())
    if same == 0:
        return 0.0
    precision, recall = same / len(p), same / len(g)
    return 2 * precision * recall / (precision + recall)


def expected(task, refs, pred):
    gold = [r["target"] for r in refs]
    pred = [p.strip() for p in pred]  # the reference strips decoded predictions (spec §5.1)
    out = {}
    keys = TASKS[task][1]
    if task == "record":
        f1 = [max(squad_f1(p, a) for a in r["answers"]) for r, p in zip(refs, pred)]
        em = [max(float(squad_normalize(p) == squad_normalize(a)) for a in r["answers"])
              for r, p in zip(refs, pred)]
        return {"f1": 100 * np.mean(f1), "em": 100 * np.mean(em)}
    if "accuracy" in keys:
        out["accuracy"] = 100 * skm.accuracy_score(gold, pred)
    if task in ("mrpc", "qqp", "multirc"):
        out["f1"] = binary_f1(gold, pred)
    if task == "cola":
        out["mcc"] = 100 * skm.matthews_corrcoef(gold, pred)
    if task == "stsb":
        out["pearson"] = corr(stats.pearsonr, gold, pred)
        out["spearman"] = corr(stats.spearmanr, gold, pred)
    if task == "cb":
        out["macro_f1"] = 100 * skm.f1_score(gold, pred, labels=["0", "1", "2"], average="macro",
                                             zero_division=0)
    if task == "multirc":
        groups = collections.OrderedDict()
        for r, p in zip(refs, pred):
            groups.setdefault(r["group"], ([], []))
            groups[r["group"]][0].append(r["target"])
            groups[r["group"]][1].append(p)
        out["em"] = 100 * np.mean([float(g == p) for g, p in groups.values()])
    return out


def record_case(rng, n):
    words = ["Obama", "the White House", "Paris", "New York", "U.S.", "an apple", "Mr. Smith",
             "Tottenham Hotspur", "BBC", "the Eiffel Tower"]
    refs, pred = [], []
    for i in range(n):
        answers = sorted(set(rng.sample(words, rng.randint(1, 3))))
        for k, a in enumerate(answers):
            refs.append({"id": f"record/validation/{i}#{k}", "source": "q", "target": a,
                         "answers": answers, "group": str(i)})
            r = rng.random()
            p = (rng.choice(answers) if r < 0.4 else
                 rng.choice(answers).upper() + "!" if r < 0.5 else
                 "the " + rng.choice(words) if r < 0.7 else rng.choice(words + INVALID))
            pred.append(p)
    return refs, pred


def make_case(rng, task):
    labels = TASKS[task][0]
    n = rng.choice([1, 2, 3, 5, 8, 13, 30, 60])
    if task == "record":
        return record_case(rng, n)
    refs = []
    for i in range(n):
        g = stsb_gold(rng) if labels is None else rng.choice(labels)
        group = str(rng.randint(0, max(1, n // 3))) if task == "multirc" else ""
        refs.append({"id": f"{task}/validation/{i}", "source": "s", "target": g, "answers": [g],
                     "group": group})
    if task == "multirc":
        refs.sort(key=lambda r: int(r["group"]))
        for i, r in enumerate(refs):
            r["id"] = f"multirc/validation/{i}"
    return refs, predictions(rng, [r["target"] for r in refs], labels)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--compacter", default=os.path.join(os.path.dirname(__file__), "..", "build",
                                                         "compacter"))
    ap.add_argument("--cases", type=int, default=300)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--tol", type=float, default=1e-6)
    args = ap.parse_args()
    rng = random.Random(args.seed)
    failures, compared = 0, 0
    with tempfile.TemporaryDirectory() as tmp:
        ref_path, pred_path = os.path.join(tmp, "refs.jsonl"), os.path.join(tmp, "pred.jsonl")
        for case in range(args.cases):
            task = list(TASKS)[case % len(TASKS)]
            refs, pred = make_case(rng, task)
            with open(ref_path, "w") as f:
                for r in refs:
                    f.write(json.dumps(r) + "\n")
            with open(pred_path, "w") as f:
                for r, p in zip(refs, pred):
                    f.write(json.dumps({"id": r["id"], "prediction": p}) + "\n")
            run = subprocess.run([args.compacter, "score", "--task", task, "--predictions",
                                  pred_path, "--references", ref_path],
                                 capture_output=True, text=True)
            if run.returncode != 0:
                print(f"case {case} ({task}): compacter score failed: {run.stderr.strip()}")
                failures += 1
                continue
            got = json.loads(run.stdout)
            for key, want in expected(task, refs, pred).items():
                compared += 1
                if not math.isclose(got[key], want, rel_tol=args.tol, abs_tol=args.tol):
                    failures += 1
                    print(f"case {case} ({task}, n={len(refs)}): {key} = {got[key]!r}, "
                          f"sklearn/scipy {want!r}\n  gold {[r['target'] for r in refs]}\n"
                          f"  pred {pred}")
    print(json.dumps({"cases": args.cases, "values_compared": compared, "mismatches": failures,
                      "sklearn": __import__("sklearn").__version__,
                      "scipy": __import__("scipy").__version__}))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
