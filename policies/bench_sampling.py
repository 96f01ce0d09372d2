"""Speed at equal quality: sampler x steps x latency per action chunk x closed-loop score, for one policy.

    robodiff bench sampling policies/published/pusht_lowdim_unet_small.ckpt --output outputs/bench_sampling
    robodiff bench sampling TEACHER.ckpt --student STUDENT.ckpt ...   # + consistency student rows
    robodiff bench sampling CKPT --no-scores                          # latencies only

Rows: the policy with DDPM-100, DDIM-16/10/5, DPM-Solver-5/3 (the same trained weights, only the sampler
changes), a consistency-distilled student (policies/consistency.py) with 1 and 3 steps, and the reference's
lowdim UNet size ([256, 512, 1024], ~65.8M parameters, untrained weights: timing only) with DDIM-10, timed in
the same run for the ratio. Latency = one `predict_action` at batch 1 (normalize, sample the 16-step chunk,
unnormalize), median over --repeats after a warm-up, for each --threads value; rows are interleaved per
repeat so load from other processes hits them alike. Score = 50-seed closed loop (scripts/eval.py's
evaluate, seeds 100000-100049) with that sampler. Writes OUTPUT/bench_sampling.json and .md.
"""

from __future__ import annotations

import json
import os
import statistics
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # see bench_policy.py: busy-waiting distorts shared boxes

import torch  # noqa: E402


TEACHER_SAMPLERS = [("ddpm", 100), ("ddim", 16), ("ddim", 10), ("ddim", 5), ("dpmsolver", 5), ("dpmsolver", 3)]
STUDENT_SAMPLERS = [("lcm", 1), ("lcm", 3)]


def reference_size_policy(like):
    """The reference's lowdim UNet size with ``like``'s config and normalizer (untrained: for timing)."""
    from policies import make_policy

    cfg = dict(like.config, unet=dict(like.config["unet"], down_dims=[256, 512, 1024], step_embed_dim=256))
    big = make_policy(cfg, like.shape_meta)
    big.normalizer.load_state_dict(like.normalizer.state_dict())
    return big.eval()


def typical_obs(policy) -> dict:
    """A batch-1 observation history in the middle of the data's range (latency does not depend on values;
    policies imports no env to draw a real one)."""
    obs = {}
    for key, (shape, typ) in policy.obs_shapes.items():
        if typ == "rgb":
            obs[key] = torch.full((1, policy.n_obs_steps, *shape), 0.5)
        else:
            obs[key] = policy.normalizer[key].unnormalize(torch.zeros(1, policy.n_obs_steps, *shape))
    return obs


def latency_ms(rows, obs, threads: int, repeats: int) -> list[float]:
    """Median ms per chunk of each (policy, sampler, steps) row at ``threads`` torch threads, interleaved."""
    torch.set_num_threads(threads)
    times = [[] for _ in rows]
    for rep in range(repeats + 1):  # the first round warms up
        for i, (policy, name, steps) in enumerate(rows):
            policy.set_sampler(name, steps)
            t0 = time.perf_counter()
            policy.predict_action(obs, generator=torch.Generator().manual_seed(rep))
            if rep:
                times[i].append((time.perf_counter() - t0) * 1e3)
    return [statistics.median(t) for t in times]


def add_arguments(ap) -> None:
    ap.add_argument("checkpoint", help="the trained policy (teacher)")
    ap.add_argument("--student", default=None, help="a consistency-distilled student of it")
    ap.add_argument("--output", required=True)
    ap.add_argument("--threads", default="1,2", help="torch thread counts to time (default 1,2)")
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--n-seeds", type=int, default=50)
    ap.add_argument("--no-scores", action="store_true", help="latencies only (no closed-loop evaluation)")
    ap.add_argument("--score-max-steps", type=int, default=None,
                    help="score only rows with at most this many network evaluations per chunk (DDPM-100's "
                         "50-seed closed loop is 10x DDIM-10's)")


def run(args) -> int:
    from policies.evaluate import evaluate
    from policies.loading import load_policy

    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    teacher, _ = load_policy(args.checkpoint, device="cpu")
    rows = [("policy", args.checkpoint, teacher, n, s) for n, s in TEACHER_SAMPLERS]
    if args.student:
        student, _ = load_policy(args.student, device="cpu")
        rows += [("student", args.student, student, n, s) for n, s in STUDENT_SAMPLERS]
    rows.append(("reference-size UNet (65.8M, untrained)", None, reference_size_policy(teacher), "ddim", 10))
    obs = typical_obs(teacher)
    threads = [int(t) for t in args.threads.split(",")]
    lat = {t: latency_ms([(p, n, s) for _, _, p, n, s in rows], obs, t, args.repeats) for t in threads}

    results = []
    for i, (what, ckpt, policy, name, steps) in enumerate(rows):
        r = {"model": what, "params_M": round(sum(p.numel() for p in policy.parameters()) / 1e6, 2),
             "sampler": name, "steps": steps, **{f"latency_ms_{t}t": round(lat[t][i], 2) for t in threads}}
        if ckpt is not None and not args.no_scores and steps <= (args.score_max_steps or steps):
            m = evaluate(ckpt, out / f"{what}-{name}-{steps}", n_seeds=args.n_seeds, sampler=name, steps=steps,
                         n_videos=0, device="cpu", overwrite=True)
            r.update(mean_score=round(m["mean_score"], 3), success_rate=round(m["success_rate"], 2))
        results.append(r)
        print(r, flush=True)
    ref = results[-1]
    lines = ["| model | params | sampler | steps | " + " | ".join(f"ms/chunk ({t} thr)" for t in threads)
             + " | x faster than reference-size DDIM-10 (1 thr) | score (50 seeds) | success |",
             "|---|---|---|---|" + "---|" * len(threads) + "---|---|---|"]
    for r in results:
        speed = ref[f"latency_ms_{threads[0]}t"] / r[f"latency_ms_{threads[0]}t"]
        lines.append(f"| {r['model']} | {r['params_M']}M | {r['sampler']} | {r['steps']} | "
                     + " | ".join(f"{r[f'latency_ms_{t}t']:.1f}" for t in threads)
                     + f" | {speed:.1f}x | {r.get('mean_score', '')} | {r.get('success_rate', '')} |")
    table = "\n".join(lines)
    (out / "bench_sampling.json").write_text(json.dumps(results, indent=2))
    (out / "bench_sampling.md").write_text(table + "\n")
    print(table)
    return 0

