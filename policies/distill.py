"""Distill a trained diffusion policy into a 1-3 step consistency policy (policies/consistency.py).

    robodiff distill TEACHER.ckpt output_dir=outputs/distill [key=value ...] [--steps 1]
    robodiff eval outputs/distill/checkpoints/latest.ckpt --output outputs/eval_student   # 1 step
    robodiff eval outputs/distill/checkpoints/latest.ckpt --output DIR --sampler lcm --steps 3

The run config is the teacher's own (task, data, split, window sizes) with its policy section replaced by
the student's (same network, x0 prediction, sampler lcm) and the training block below; key=value overrides
(OmegaConf dot-list) come last. Training is the one training loop (robodiff.training), with EMA, resumable
checkpoints and closed-loop rollouts of the student on the task's test seeds.
"""

from __future__ import annotations

import sys


# The student starts from the teacher's weights but its output now means x0, so the last layers re-learn:
# the teacher recipe's constant 1e-3 after a short warmup, batch 64; rollouts every 5 minutes.
DISTILL_TRAINING = {
    "batch_size": 64, "lr": 1e-3, "lr_scheduler": "constant_with_warmup", "lr_warmup_steps": 100,
    "num_epochs": 1000000, "max_steps": 2000, "max_minutes": None, "rollout_every": None,
    "rollout_every_minutes": 5, "rollout_at_end": True, "resume": False, "overwrite": False,
    "checkpoint": {"every": 1, "every_steps": 200, "top_k": 3, "monitor": "test/mean_score"},
}


def distill_config(teacher_ckpt: str, steps: int, overrides, points: int | None = None) -> tuple[dict, object]:
    """(run config, student policy) for distilling ``teacher_ckpt``."""
    from omegaconf import OmegaConf

    from policies.consistency import ConsistencyPolicy
    from policies.loading import load_policy
    from robodiff.training.checkpoint import load_checkpoint

    cfg = load_checkpoint(teacher_ckpt)["config"]
    student = ConsistencyPolicy(load_policy(teacher_ckpt, device="cpu")[0], steps=steps, points=points)
    training = OmegaConf.merge(cfg["training"], DISTILL_TRAINING)
    cfg = dict(cfg, policy=student.config, policy_name=f"{cfg.get('policy_name', 'policy')}_consistency",
               training=OmegaConf.to_container(training), distill={"teacher": str(teacher_ckpt), "steps": steps, "points": points},
               name=f"{cfg['task']['name']}-consistency", output_dir=f"outputs/{cfg['task']['name']}-consistency")
    cfg = OmegaConf.to_container(OmegaConf.merge(cfg, OmegaConf.from_dotlist(list(overrides))), resolve=True)
    return cfg, student


def add_arguments(ap) -> None:
    ap.add_argument("teacher", help="checkpoint of the trained policy")
    ap.add_argument("--steps", type=int, default=1, help="consistency steps the student samples with (default 1)")
    ap.add_argument("--points", type=int, default=None,
                    help="points of the consistency grid (default T // 5 = 20 for T = 100; 5 = the teacher's "
                         "DDIM-5 grid, fewer links from data to noise, faster to learn)")
    ap.add_argument("overrides", nargs="*", help="key=value, e.g. output_dir=outputs/distill training.max_steps=500")


def run(args) -> int:
    import torch

    from robodiff.training.checkpoint import CheckpointError
    from robodiff.training.trainer import train
    from policies.train import RolloutCallback, build_dataset

    try:
        cfg, student = distill_config(args.teacher, args.steps, args.overrides, args.points)
    except (CheckpointError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if cfg["training"].get("num_threads"):
        torch.set_num_threads(int(cfg["training"]["num_threads"]))
    tc = cfg["training"]
    rollout = RolloutCallback(cfg) if tc.get("rollout_every") or tc.get("rollout_every_minutes") else None
    try:
        result = train(cfg, lambda run_cfg, dataset: student, build_dataset(cfg), rollout)
    finally:
        if rollout is not None:
            rollout.close()
    print(f"done: {result.step} steps -> {result.latest_checkpoint}")
    return 0

