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
