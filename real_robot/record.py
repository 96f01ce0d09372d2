"""Teleoperate a UR Push-T station and record demonstrations (ReplayBuffer + one mp4 per episode).

    robodiff record --output data/ur_pusht.zarr --sim                              # the MuJoCo twin
    robodiff record --output data/ur_pusht_2cam.zarr --sim --cameras front,side    # two twin cameras
    robodiff record --output data/ur_pusht.zarr --host 192.168.1.10 \\
        --frequency 500 --realsense 123456789012 --teleop spacemouse                 # real station
    (python scripts/demo_real_robot.py ... is the same command)

Teleop: spacemouse (spacenavd), keyboard (w/a/s/d, space = end episode, q/Esc = e-stop) or scripted (a
programmed stick path, no person needed). Button 0 / space ends an episode; the next starts after a scene
reset (a person resets the T; the twin resets it itself). Ctrl-C (or SIGTERM) stops the arm and keeps every
episode recorded so far, including the interrupted one. Every camera is recorded: the first as ``img``, each
other as ``img_<cam>`` (``img_side``; ``real_robot.station.image_keys``); the video shows them side by side.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from real_robot.session import add_station_args
from robodiff import flags
from robodiff.cli import UserError


def make_teleop(kind: str, twin, max_speed: float, max_duration: float):
    from real_robot.teleop import KeyboardTeleop, ScriptedTeleop, SpaceMouse

    if kind == "spacemouse":
        return SpaceMouse()
    if kind == "keyboard":
        return KeyboardTeleop()
    if kind == "expert":
        if twin is None:
            raise UserError("--teleop expert needs --sim (the scripted operator sees the twin's scene)")
        from real_robot.twin.operator import ScriptedOperator

        return ScriptedOperator(twin, max_speed=max_speed, max_s=max_duration - 1)
    return ScriptedTeleop.square(side_s=1.5)


def add_arguments(ap: argparse.ArgumentParser) -> None:
    flags.add_output(ap, "ReplayBuffer path (.zarr dir or .zip); new episodes are appended if it exists",
                     required=True)
    ap.add_argument("--teleop", choices=("spacemouse", "keyboard", "scripted", "expert"), default="scripted",
                    help="scripted: a fixed stick path; expert (twin only): a scripted operator pushing the T")
    flags.add_episodes(ap, 1, "episodes to record (default 1)")
    flags.add_duration(ap, 60.0, "seconds per episode at most (default 60)")
    ap.add_argument("--max-speed", type=float, default=0.12, help="pusher speed at full deflection, m/s")
    ap.add_argument("--pusht-format", action="store_true",
                    help="twin only: store episodes in the Push-T dataset layout (px units, state/keypoint) so "
                         "robodiff train task=pusht_lowdim|pusht_image trains on them unchanged")
    ap.add_argument("--min-coverage", type=float, default=None,
                    help="twin: discard episodes whose final coverage of the goal is below this (the reference's "
                         "human demos end at a median of 0.85). Default: 0.8 for --teleop expert (drops the "
                         "scripted operator's failed attempts), 0 (keep every episode) otherwise")
    add_station_args(ap)


PROGRESS_FIRST, PROGRESS_EVERY = 10, 50  # control steps: first progress line (1 s at 10 Hz), then every 5 s


def progress_printer(episode: int):
    """An on_step hook printing a line after PROGRESS_FIRST recorded steps and every PROGRESS_EVERY after, so a
    person (or a test) can see the episode is under way."""
    def on_step(step: int, obs) -> None:
        if step + 1 == PROGRESS_FIRST or (step + 1) % PROGRESS_EVERY == 0:
            print(f"  episode {episode}: {step + 1} steps recorded", flush=True)
    return on_step


def run(args) -> int:
    if args.min_coverage is None:
        args.min_coverage = 0.8 if args.teleop == "expert" else 0.0
    logging.basicConfig(level=logging.INFO, format="[%(name)s %(levelname)s] %(message)s")

    from real_robot.arm import ArmError
    from real_robot.runner import run_teleop
    from real_robot.safety import EStop, stop_signals_interrupt
    from real_robot.session import open_station
    from real_robot.twin.addresses import DEFAULT_CAMERAS
    from robodiff.data import ReplayBuffer

    out = Path(args.output)
    rb = ReplayBuffer.open(out, mode="a") if out.exists() else ReplayBuffer.create(out)
    video_dir = out.with_suffix("").parent / (out.with_suffix("").name + "_videos")
    estop = EStop()
    stop_signals_interrupt()
    convert = None
    if args.pusht_format:
        if not args.sim:
            raise UserError("--pusht-format needs --sim (the block pose comes from the twin)")
        from real_robot.twin.pusht_bridge import to_pusht_episode as convert
    if args.cameras and not args.sim:
        raise UserError("--cameras names twin cameras (needs --sim); a real station's cameras are --realsense SERIAL")
    with open_station(sim=args.sim, host=args.host, frequency=args.frequency, image_hw=args.image_size,
                      camera_fps=args.camera_fps, realsense_serials=args.realsense, seed=args.start_seed,
                      twin_cameras=args.cameras or DEFAULT_CAMERAS) as (station, twin):
        for ep in range(args.episodes):
            if twin is not None:
                twin.reset_scene(args.start_seed + ep)
            teleop = make_teleop(args.teleop, twin, args.max_speed, args.duration)
            station.start_episode()
            print(f"recording episode {rb.n_episodes} (button 0 / space ends it; Ctrl-C stops)", flush=True)
            discard = False
            try:
                report = run_teleop(station, teleop, estop, max_speed=args.max_speed,
                                    max_duration=args.duration, on_step=progress_printer(rb.n_episodes))
            except KeyboardInterrupt:
                estop.trip("Ctrl-C")
                station.hold()
                print("interrupted: arm held, saving the episode so far", file=sys.stderr)
                break
            except ArmError as e:
                estop.trip(str(e))
                print(f"error: {e}\nsaving the episode so far", file=sys.stderr)
                break
            finally:
                teleop.close()
                if twin is not None:
                    coverage = twin.truth()["coverage"]
                    discard = coverage < args.min_coverage
                    if discard:
                        print(f"episode discarded: coverage {coverage:.3f} < {args.min_coverage}", file=sys.stderr)
                idx = station.end_episode(rb, video_dir=video_dir, convert=convert, discard=discard)
                if idx is not None:
                    print(f"episode {idx}: {rb.episode_lengths[idx]} steps -> {out}")
            if estop.tripped:
                print(f"stopped: {estop.reason}", file=sys.stderr)
                break
            print(f"episode done ({report.stopped_by}); stale actions dropped: {report.actions_stale}")
    print(f"{rb.n_episodes} episodes, {rb.n_steps} steps in {out}")
    return 1 if estop.tripped else 0
