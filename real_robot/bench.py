"""Timing of the real-robot runtime against the twin: controller period, observation-to-action latency, stale
actions, at 125 Hz (CB3) and 500 Hz (e-series), with and without camera rendering, pinned to 2 CPU cores.

    robodiff bench real-robot [--duration 8] [--cores 0 1] [--markdown out.md]   (= python scripts/bench_real_robot.py)

Per configuration a fresh twin, arm controller and station run a policy closed loop for ``--duration`` s:
  * controller period: time between consecutive servoL periods of the arm controller process (p50/p99/max),
    and the share of periods later than 1.5x nominal;
  * obs->action latency: capture time of the newest observation to the action chunk being handed to the arm
    (camera age + alignment + inference), p50/p99;
  * stale share: actions of each chunk already due when the chunk arrived (dropped, never executed).
Two policies: the tiny diffusion policy of the end-to-end test (DDIM-4, ~ms on CPU) and a stand-in that sleeps
150 ms (the order of the reference's GPU inference), which forces stale actions to be dropped.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import time
from pathlib import Path

import numpy as np



def tiny_policy():
    import torch

    import policies
    from real_robot.policy_adapter import PolicyAdapter
    from robodiff.data import LinearNormalizer

    cfg = {"denoiser": "unet", "horizon": 16, "n_obs_steps": 2, "n_action_steps": 8,
           "unet": {"down_dims": [16, 32], "kernel_size": 3, "n_groups": 4, "step_embed_dim": 16},
           "noise": {"num_train_timesteps": 20}, "sampler": {"name": "ddim", "steps": 4}}
    torch.manual_seed(0)
    p = policies.make_policy(cfg, {"obs": {"agent_pos": {"shape": [2], "type": "lowdim"}}, "action": {"shape": [2]}})
    lim = np.array([[-0.05, -0.45], [0.05, -0.35]], dtype=np.float32)
    p.set_normalizer(LinearNormalizer().fit({"agent_pos": lim, "action": lim}))
    return PolicyAdapter(p.eval(), obs_keys=["agent_pos"])


class SleepPolicy:
    """Holds the current position after ``latency`` seconds of 'inference'."""

    def __init__(self, latency: float):
        self.latency = latency

    def __call__(self, obs):
        time.sleep(self.latency)
        return {"action": np.repeat(obs["agent_pos"][-1][None, None], 8, axis=1)}


def run_config(frequency: float, render: bool, policy_name: str, duration: float) -> dict:
    from real_robot.runner import run_policy
    from real_robot.safety import EStop
    from real_robot.session import open_station

    policy = tiny_policy() if policy_name == "tiny" else SleepPolicy(0.15)
    periods, seen = [], set()
    with open_station(sim=True, frequency=frequency, render=render) as (station, _):
        def sample(*_):
            s = station.arm.get_state(1000)
            for t, p in zip(s["timestamp"], s["period"]):
                if t not in seen:
                    seen.add(t)
                    periods.append(p)

        report = run_policy(station, policy, EStop(), n_action_steps=8, duration=duration, on_chunk=sample)
        sample()
        stats = station.arm.stats()
    per = np.asarray(periods[5:]) * 1e3
    s = report.summary()
    return {"frequency": frequency, "render": render, "policy": policy_name,
            "period_p50": np.median(per), "period_p99": np.percentile(per, 99), "period_max": per.max(),
            "late_share": float(np.mean(per > 1.5e3 / frequency)),
            "lat_p50": s["latency_ms"]["p50"], "lat_p99": s["latency_ms"]["p99"],
            "stale_share": s["stale_share"], "sent": s["actions_sent"], "stale": s["actions_stale"],
            "controller_stale": stats["stale_dropped"], "min_slack_ms": stats["min_slack_us"] / 1e3}


def table(rows) -> str:
    head = ("| controller | cameras | policy | period p50 / p99 / max (ms) | late periods | obs->action p50 / p99 "
            "(ms) | stale dropped | min slack at controller (ms) |")
    out = [head, "|" + "---|" * 8]
    for r in rows:
        out.append(f"| {r['frequency']:.0f} Hz | {'rendered 30 fps' if r['render'] else 'off'} | {r['policy']} | "
                   f"{r['period_p50']:.2f} / {r['period_p99']:.2f} / {r['period_max']:.1f} | "
                   f"{100 * r['late_share']:.1f}% | {r['lat_p50']:.0f} / {r['lat_p99']:.0f} | "
                   f"{100 * r['stale_share']:.0f}% ({r['stale']}/{r['stale'] + r['sent']}) | {r['min_slack_ms']:.0f} |")
    return "\n".join(out)


def add_arguments(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("--duration", type=float, default=8.0)
    ap.add_argument("--cores", type=int, nargs="+", default=[0, 1], help="CPU cores to pin everything to")
    ap.add_argument("--markdown", default=None, help="also write the table here")


def run(args) -> int:
    cores = [c for c in args.cores if c < os.cpu_count()]
    os.sched_setaffinity(0, cores)  # inherited by the twin and the controller process
    import torch

    torch.set_num_threads(len(cores))
    rows = []
    for frequency in (125.0, 500.0):
        for render in (False, True):
            for policy in ("tiny", "sleep150ms"):
                r = run_config(frequency, render, policy, args.duration)
                print(f"{frequency:.0f} Hz render={render} {policy}: period p50 {r['period_p50']:.2f} ms p99 "
                      f"{r['period_p99']:.2f} ms, latency p50 {r['lat_p50']:.0f} ms, "
                      f"stale {100 * r['stale_share']:.0f}%", flush=True)
                rows.append(r)
    cpu = subprocess.run(["sh", "-c", "lscpu | grep 'Model name' | cut -d: -f2"], capture_output=True,
                         text=True).stdout.strip()
    md = (f"Command: `robodiff bench real-robot --duration {args.duration:g}`; machine: 2-core CPU dev box "
          f"({cpu}), pinned to cores {cores}; {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; twin, arm "
          "controller, station and policy all on these cores.\n\n" + table(rows) + "\n")
    print(md)
    if args.markdown:
        Path(args.markdown).write_text(md)
    return 0
