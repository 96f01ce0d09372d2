"""Summarise a training run's closed-loop evaluations the way the paper and the issue report them.

    robodiff summary outputs/RUN [--last 5] [--thresholds 0.8,0.9] [--json PATH]

From RUN/logs.jsonl: every test/mean_score row (step, training wall time), the best, the mean of the last
--last evaluations, and the first evaluation reaching each threshold (step and minutes of training wall time,
rollout time included as the trainer counts it).
"""

from __future__ import annotations

import json
from pathlib import Path


def summarise(run_dir, last: int = 5, thresholds=(0.8, 0.9), key: str = "test/mean_score") -> dict:
    from robodiff.training.loggers import read_jsonl

    rows = read_jsonl(Path(run_dir) / "logs.jsonl")
    elapsed, evals = {}, []
    for r in rows:
        if "elapsed_s" in r:
            elapsed[r["step"]] = r["elapsed_s"]
        if key in r:
            evals.append({"step": r["step"], "minutes": round(elapsed.get(r["step"], float("nan")) / 60, 1),
                          "score": r[key], "success": r.get("test/success_rate")})
    if not evals:
        raise SystemExit(f"error: {run_dir}/logs.jsonl has no {key} rows (no closed-loop evaluation yet)")
    tail = evals[-last:]
    out = {"n_evals": len(evals), "best": max(e["score"] for e in evals),
           f"mean_last_{len(tail)}": sum(e["score"] for e in tail) / len(tail),
           "last": evals[-1], "evals": evals, "first_reaching": {}}
    for th in thresholds:
        hit = next((e for e in evals if e["score"] >= th), None)
        out["first_reaching"][str(th)] = hit and {"step": hit["step"], "minutes": hit["minutes"]}
    return out


def add_arguments(ap) -> None:
    ap.add_argument("run_dir")
    ap.add_argument("--last", type=int, default=5)
    ap.add_argument("--thresholds", default="0.8,0.9")
    ap.add_argument("--json", default=None, help="also write the summary here")


def run(args) -> int:
    s = summarise(args.run_dir, args.last, [float(t) for t in args.thresholds.split(",")])
    print("| step | train minutes | score | success |\n|---|---|---|---|")
    for e in s["evals"]:
        print(f"| {e['step']} | {e['minutes']} | {e['score']:.3f} | {e['success']} |")
    mean_key = next(k for k in s if k.startswith("mean_last_"))
    print(f"\nbest {s['best']:.3f}; {mean_key.replace('_', ' ')} {s[mean_key]:.3f}; {s['n_evals']} evaluations")
    for th, hit in s["first_reaching"].items():
        print(f"first >= {th}: " + (f"step {hit['step']}, {hit['minutes']} min" if hit else "not reached"))
    if args.json:
        Path(args.json).write_text(json.dumps(s, indent=2))
    return 0

