"""``robodiff record``, ``robodiff deploy`` and ``robodiff bench real-robot`` (registered through the
``robodiff.commands`` entry point ``real_robot``; the command modules load only when their command runs)."""

from robodiff.cli import add_command, command_group


def register(subparsers) -> None:
    add_command(subparsers, "record", "real_robot.record",
                "teleoperate a UR Push-T station (--sim: the twin, --host IP: a robot) and record demonstrations")
    add_command(subparsers, "deploy", "real_robot.deploy",
                "run a trained policy on a UR Push-T station (--sim: the twin, --host IP: a robot)")
    add_command(command_group(subparsers, "bench"), "real-robot", "real_robot.bench",
                "real-robot runtime timing on the twin: controller period, obs->action latency, stale actions")
