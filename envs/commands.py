"""``robodiff collect pusht`` and the simulation benchmarks ``robodiff bench env|expert|fidelity|lerobot`` (registered
through the ``robodiff.commands`` entry point ``envs``; the command modules load only when their command runs)."""

from robodiff.cli import add_command, command_group


def register(subparsers) -> None:
    collect = command_group(subparsers, "collect")
    add_command(collect, "pusht", "envs.pusht.collect",
                "Push-T demonstrations into a zarr replay buffer: --expert (scripted) or --teleop (mouse)")
    bench = command_group(subparsers, "bench")
    add_command(bench, "env", "envs.pusht.bench_env", "Push-T simulation steps per second (state, image)")
    add_command(bench, "expert", "envs.pusht.bench_expert",
                "the scripted Push-T expert: success rate, steps, collection speed")
    add_command(bench, "fidelity", "envs.pusht.bench_fidelity",
                "Push-T replay of the reference demos: position, keypoint and image errors")
    add_command(bench, "lerobot", "envs.pusht.bench_lerobot",
                "the reference Push-T data through LeRobotDataset v3.0 and back: speed and round-trip errors")
