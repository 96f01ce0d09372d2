"""``robodiff train``, ``robodiff eval`` and ``robodiff bench policy`` (registered through the
``robodiff.commands`` entry point ``policies``; the command modules load only when their command runs)."""

from robodiff.cli import add_command, command_group


def register(subparsers) -> None:
    add_command(subparsers, "train", "policies.train",
                "train a policy: robodiff train task=NAME policy=NAME [key=value ...]")
    add_command(subparsers, "eval", "policies.evaluate",
                "evaluate a checkpoint closed-loop in its task's simulation (metrics.json, videos)")
    add_command(command_group(subparsers, "bench"), "policy", "policies.bench",
                "denoiser forward, sampling latency per sampler, training-step time")
    add_command(command_group(subparsers, "bench"), "sampling", "policies.bench_sampling",
                "sampler x steps x latency per chunk x closed-loop score of one policy (and its student)")
    add_command(subparsers, "distill", "policies.distill",
                "distill a trained policy into a 1-3 step consistency policy (robodiff distill TEACHER.ckpt ...)")
    add_command(subparsers, "publish", "policies.publish",
                "shrink a checkpoint to a publishable policy file (EMA weights, fp16)")
    add_command(subparsers, "summary", "policies.summary",
                "a run's closed-loop evaluations: best, mean of the last k, first reaching a score")
