"""Benchmark the diffusion policy: denoiser forward, whole-chunk sampling latency, training-step time.

    robodiff bench policy [--json PATH] [--reference-src PATH] [--models unet,unet-small,transformer]
    (python scripts/bench_policy.py ... is the same command)

Models (lowdim PushT: 20-dim keypoint obs, 2-dim actions, horizon 16, n_obs_steps 2):
  unet        ConditionalUnet1D down_dims 256/512/1024 (the reference's lowdim config, ~65.8M params)
  unet-small  ConditionalUnet1D down_dims 64/128/256 (the reference recipe at CPU scale)
  transformer TransformerForDiffusion 8 layers, 4 heads, 256 wide (~9M)
Measures: denoiser forward at batch 1; predict_action at batch 1 with DDPM-100, DDIM-16, DDIM-10 and
DPM-Solver-5 (the model is trained with DDPM-100; only the sampler changes); compute_loss + backward + AdamW
step at batch 64 and 256.

--reference-src points at a checkout of real-stanford/diffusion_policy (the directory holding the
``diffusion_policy`` package; needs ``einops`` importable, e.g. via PYTHONPATH). The reference's own policy
classes are then timed in the same run on the same inputs, measurements interleaved (ours, theirs, ours, ...)
so that load from other processes hits both alike; the table reports medians and ours/theirs ratios.
Nothing of the reference enters this repository.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Callable

# On a CPU shared with other jobs, OpenMP's default busy-waiting makes 2-thread runs up to ~6x slower
# whenever a thread is descheduled; passive waiting keeps timings meaningful (set before torch loads OpenMP).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch  # noqa: E402


from policies import make_policy  # noqa: E402
from robodiff.data import LinearNormalizer  # noqa: E402

H, TO, NA, DO, DA = 16, 2, 8, 20, 2
SHAPE_META = {"obs": {"keypoint": {"shape": [DO], "type": "lowdim"}}, "action": {"shape": [DA]}}
MODELS = {
    "unet": dict(denoiser="unet", unet=dict(down_dims=[256, 512, 1024])),
    "unet-small": dict(denoiser="unet", unet=dict(down_dims=[64, 128, 256])),
    "transformer": dict(denoiser="transformer"),
}
SAMPLERS = [("ddpm", 100), ("ddim", 16), ("ddim", 10), ("dpmsolver", 5)]
TRAIN_BATCHES = [64, 256]


def timed(fn: Callable[[], object]) -> float:
    t0 = time.perf_counter()
    fn()
    return (time.perf_counter() - t0) * 1e3


def data(B: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    obs = torch.rand(B, H, DO, generator=g) * 512
    return obs, torch.rand(B, H, DA, generator=g) * 512


class Ours:
    """robodiff's DiffusionPolicy behind the benchmark's calls."""

    impl = "robodiff"

    def __init__(self, name: str):
        self.policy = make_policy(MODELS[name], SHAPE_META)
        obs, act = data(512)
        norm = LinearNormalizer()
        norm.fit({"keypoint": obs.reshape(-1, DO), "action": act.reshape(-1, DA)})
        self.policy.set_normalizer(norm)
        self.model = self.policy.denoiser
        self.opt = torch.optim.AdamW(self.policy.parameters(), lr=1e-4)

    def forward(self):
        x, cond = torch.randn(1, H, DA), torch.randn(1, TO, DO)

        def run():
            with torch.no_grad():
                return self.model(x, torch.tensor([50]), cond)
        return run

    def sampler(self, name: str, steps: int):
        self.policy.set_sampler(name, steps)
        obs = {"keypoint": data(1)[0][:, :TO]}
        return lambda: self.policy.predict_action(obs)

    def train_step(self, B: int):
        obs, act = data(B)
        batch = {"obs": {"keypoint": obs[:, :TO]}, "action": act}

        def step():
            loss = self.policy.compute_loss(batch)
            self.opt.zero_grad()
            loss.backward()
            self.opt.step()
        return step


class Reference:
    """The reference implementation's own lowdim policy classes, same configuration."""

    impl = "reference"

    def __init__(self, name: str):
        from diffusers import DDPMScheduler
        from diffusion_policy.model.common.normalizer import LinearNormalizer as RefNormalizer

        noise = dict(num_train_timesteps=100, beta_schedule="squaredcos_cap_v2", clip_sample=True,
                     prediction_type="epsilon")
        self.noise = noise
        cfg = MODELS[name]
        if cfg["denoiser"] == "unet":
            from diffusion_policy.model.diffusion.conditional_unet1d import ConditionalUnet1D
            from diffusion_policy.policy.diffusion_unet_lowdim_policy import DiffusionUnetLowdimPolicy

            self.model = ConditionalUnet1D(input_dim=DA, global_cond_dim=DO * TO, diffusion_step_embed_dim=256,
                                           down_dims=cfg["unet"]["down_dims"], kernel_size=5, n_groups=8,
                                           cond_predict_scale=True)
            self.policy = DiffusionUnetLowdimPolicy(
                self.model, DDPMScheduler(variance_type="fixed_small", **noise), horizon=H, obs_dim=DO,
                action_dim=DA, n_action_steps=NA, n_obs_steps=TO, num_inference_steps=100,
                obs_as_global_cond=True, oa_step_convention=True)
            self._forward = lambda x, t, c: self.model(x, t, global_cond=c.reshape(1, -1))
        else:
            from diffusion_policy.model.diffusion.transformer_for_diffusion import TransformerForDiffusion
            from diffusion_policy.policy.diffusion_transformer_lowdim_policy import DiffusionTransformerLowdimPolicy

            self.model = TransformerForDiffusion(input_dim=DA, output_dim=DA, horizon=H, n_obs_steps=TO, cond_dim=DO,
                                                 n_layer=8, n_head=4, n_emb=256, p_drop_emb=0.0, p_drop_attn=0.01,
                                                 causal_attn=True, time_as_cond=True, obs_as_cond=True,
                                                 n_cond_layers=0)
            self.policy = DiffusionTransformerLowdimPolicy(
                self.model, DDPMScheduler(variance_type="fixed_small", **noise), horizon=H, obs_dim=DO,
                action_dim=DA, n_action_steps=NA, n_obs_steps=TO, num_inference_steps=100, obs_as_cond=True)
            self._forward = lambda x, t, c: self.model(x, t, cond=c)
        obs, act = data(512)
        norm = RefNormalizer()
        norm.fit({"obs": obs.reshape(-1, DO), "action": act.reshape(-1, DA)}, mode="limits")
        self.policy.set_normalizer(norm)
        self.opt = torch.optim.AdamW(self.policy.parameters(), lr=1e-4)

    def forward(self):
        x, cond = torch.randn(1, H, DA), torch.randn(1, TO, DO)

        def run():
            with torch.no_grad():
                return self._forward(x, torch.tensor([50]), cond)
        return run

    def sampler(self, name: str, steps: int):
        from diffusers import DDIMScheduler, DDPMScheduler, DPMSolverMultistepScheduler

        # the reference's configs: DDPM (fixed_small) or DDIM (set_alpha_to_one, steps_offset 0), default spacing
        sched = {"ddpm": lambda: DDPMScheduler(variance_type="fixed_small", **self.noise),
                 "ddim": lambda: DDIMScheduler(set_alpha_to_one=True, steps_offset=0, **self.noise),
                 "dpmsolver": lambda: DPMSolverMultistepScheduler(
                     num_train_timesteps=100, beta_schedule="squaredcos_cap_v2", prediction_type="epsilon")}[name]()
        self.policy.noise_scheduler, self.policy.num_inference_steps = sched, steps
        obs = {"obs": data(1)[0][:, :TO]}

        def run():
            with torch.no_grad():  # the reference's env runner wraps predict_action in no_grad
                return self.policy.predict_action(obs)
        return run

    def train_step(self, B: int):
        obs, act = data(B)
        batch = {"obs": obs, "action": act}
        from diffusers import DDPMScheduler

        self.policy.noise_scheduler = DDPMScheduler(variance_type="fixed_small", **self.noise)  # training process

        def step():
            loss = self.policy.compute_loss(batch)
            self.opt.zero_grad()
            loss.backward()
            self.opt.step()
        return step


def measure(impls, make: Callable, repeats: int, warmup: int = 1) -> list[list[float]]:
    """Interleaved timings: for each repeat, every implementation once. Returns per-impl lists (ms)."""
    fns = [make(impl) for impl in impls]
    for fn in fns:
        for _ in range(warmup):
            fn()
    times = [[] for _ in impls]
    for _ in range(repeats):
        for i, fn in enumerate(fns):
            times[i].append(timed(fn))
    return times


def _unknown_model(name: str):
    raise argparse.ArgumentTypeError(f"unknown model {name!r}; choose from {list(MODELS)}")


def add_arguments(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("--json", type=Path, help="write result rows here")
    ap.add_argument("--reference-src", type=Path, help="checkout of real-stanford/diffusion_policy to compare")
    ap.add_argument("--models", default="unet,unet-small,transformer",
                    type=lambda s: [m for m in s.split(",") if m in MODELS or _unknown_model(m)],
                    help=f"comma-separated subset of {','.join(MODELS)}")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=5, help="timed repeats per measurement (medians reported)")
    ap.add_argument("--measures", default="forward,sample,train_step", help="subset of forward,sample,train_step")


def run(args) -> int:
    torch.set_num_threads(args.threads)
    if args.reference_src:
        sys.path.insert(0, str(args.reference_src.resolve()))

    rows = []
    for name in args.models:
        torch.manual_seed(0)
        impls = [Ours(name)] + ([Reference(name)] if args.reference_src else [])
        params = [sum(p.numel() for p in impl.model.parameters()) for impl in impls]
        measures = args.measures.split(",")
        plan = [("forward", 0, 1, lambda impl: impl.forward(), max(args.repeats, 20))] * ("forward" in measures)
        plan += [(s, n, 1, (lambda s, n: lambda impl: impl.sampler(s, n))(s, n), args.repeats)
                 for s, n in SAMPLERS if "sample" in measures]
        plan += [("train_step", 0, B, (lambda B: lambda impl: impl.train_step(B))(B), args.repeats)
                 for B in TRAIN_BATCHES if "train_step" in measures]
        for what, steps, batch, make, repeats in plan:
            times = measure(impls, make, repeats)
            for impl, p, t in zip(impls, params, times):
                med = statistics.median(t)
                rows.append(dict(model=name, impl=impl.impl, params=p, sampler=what, steps=steps, batch=batch,
                                 latency_ms=round(med, 3), min_ms=round(min(t), 3), max_ms=round(max(t), 3),
                                 repeats=len(t)))
            line = f"{name:12s} {what:10s} {steps:4d} B={batch:<4d} " + "  ".join(
                f"{impl.impl}={statistics.median(t):9.1f} ms" for impl, t in zip(impls, times))
            if len(impls) == 2:
                line += (f"  ratio={statistics.median(times[0]) / statistics.median(times[1]):.2f}"
                         f" (of minima {min(times[0]) / min(times[1]):.2f})")
            print(line, flush=True)

    print("\n| model | params | measure | steps | batch | robodiff ms (min-max) |"
          + (" reference ms (min-max) | ratio of medians | ratio of minima |" if args.reference_src else ""))
    print("|---|---|---|---|---|---|" + ("---|---|---|" if args.reference_src else ""))
    ours = [r for r in rows if r["impl"] == "robodiff"]
    refs = {(r["model"], r["sampler"], r["steps"], r["batch"]): r for r in rows if r["impl"] == "reference"}
    for r in ours:
        cell = f"{r['latency_ms']:.1f} ({r['min_ms']:.0f}-{r['max_ms']:.0f})"
        line = (f"| {r['model']} | {r['params'] / 1e6:.2f}M | {r['sampler']} | {r['steps'] or ''} | {r['batch']} "
                f"| {cell} |")
        ref = refs.get((r["model"], r["sampler"], r["steps"], r["batch"]))
        if ref:
            line += (f" {ref['latency_ms']:.1f} ({ref['min_ms']:.0f}-{ref['max_ms']:.0f}) |"
                     f" {r['latency_ms'] / ref['latency_ms']:.2f} | {r['min_ms'] / ref['min_ms']:.2f} |")
        print(line)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(rows, indent=1))
        print(f"\nwrote {len(rows)} rows to {args.json}")
