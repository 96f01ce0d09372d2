"""Run a trained policy on a UR Push-T station (the twin with --sim).

    robodiff deploy CHECKPOINT --sim --episodes 5 --duration 30 --output out/ur_eval
    robodiff deploy CHECKPOINT --host 192.168.1.10 --realsense 1234 --sampler ddim --steps 16
    (python scripts/eval_real_robot.py ... is the same command)

The policy is rebuilt from the checkpoint alone. Its observations must be ones the station provides
(``image`` from the first camera, ``image_<cam>`` from each other one, ``agent_pos`` = pusher xy in metres); its
actions are pusher xy targets in metres. On the twin, deploy renders the cameras the policy observes (``front``
first, then e.g. ``side`` for ``image_side``) unless ``--cameras`` names them. A Push-T checkpoint (task
pusht_*: pixel units, ``keypoint``/``state`` observations) runs on the twin through the Push-T bridge, with the
block pose from the twin's ground truth. Each chunk runs receding-horizon:
n_action_steps actions scheduled at t_obs + k/10 s, stale ones dropped. On the twin each episode is scored by
the T's coverage of the goal (ground truth from the simulator) and ends once it exceeds 0.95 (success).
Press q / Esc (in a terminal) for e-stop; Ctrl-C or SIGTERM stops the arm and keeps the recordings.
Writes OUTPUT/metrics.json, OUTPUT/episodes.zarr and OUTPUT/videos/; results already there are kept (the command
refuses to start) unless --overwrite.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import threading
import time
from pathlib import Path

from envs.pusht.protocol import SUCCESS_THRESHOLD
from real_robot.session import add_station_args, camera_names
from real_robot.station import image_keys
from real_robot.twin.addresses import DEFAULT_CAMERAS, twin_camera_names
from robodiff import flags


def action_units(task: dict) -> str:
    """The unit of the policy's actions, from the checkpoint's task.shape_meta: "m" (station recordings) or
    "px" (Push-T layout). Checkpoints from before shape_meta carried units: Push-T tasks were px."""
    units = task["shape_meta"]["action"].get("units")
    if units is None:
        units = "px" if str(task["name"]).startswith("pusht") else "m"
    if units not in ("m", "px"):
        raise ValueError(f"task.shape_meta.action.units is {units!r}; this station runs policies whose actions "
                         f"are pusher xy in 'm' (robot base frame) or Push-T 'px'")
    return units


def twin_cameras_for(obs_meta: dict, cameras=None) -> tuple[str, ...]:
    """The twin cameras to render for a policy: ``cameras`` (--cameras) if given, else the default first camera
    (the policy's ``image``) followed by the twin camera of each ``image_<cam>`` observation."""
    if cameras:
        return tuple(cameras)
    first = DEFAULT_CAMERAS[0]
    named = [k.removeprefix("image_") for k in obs_meta if k.startswith("image_")]
    return (first, *[c for c in named if c in twin_camera_names() and c != first])


def missing_camera_hint(unknown, twin_cameras, sim: bool) -> str:
    """How to give the policy the images it lacks: the flag to pass, with the camera it names."""
    missing = [k.removeprefix("image_") for k in unknown if k.startswith("image_")]
    if not missing and "image" not in unknown:
        return ""
    if sim:
        cameras = ",".join(dict.fromkeys([*twin_cameras, *missing]))
        return (f"; image_<cam> is camera <cam> after the first one: pass --cameras {cameras} "
                f"(twin cameras: {', '.join(twin_camera_names())})")
    return "; pass --realsense SERIAL ...: the first camera gives `image`, each other image_rs_<serial>"


def _rounded(x):
    """A result dict with floats to 3 decimals, for one readable line per episode."""
    if isinstance(x, dict):
        return {k: _rounded(v) for k, v in x.items()}
    return round(x, 3) if isinstance(x, float) else x


def watch_estop_key(estop) -> None:
    """q / Esc in an interactive terminal trips the e-stop (daemon thread)."""
    if not sys.stdin.isatty():
        return
    from real_robot.teleop import KeyboardTeleop

    keys = KeyboardTeleop()

    def loop():
        try:
            while not estop.tripped:
                if keys.read().estop:
                    estop.trip("e-stop key")
                time.sleep(0.02)
        finally:
            keys.close()

    threading.Thread(target=loop, daemon=True).start()


def add_arguments(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("checkpoint", help="a .ckpt written by robodiff train")
    flags.add_output(ap, "metrics.json, episodes.zarr (recordings) and videos/ go here (default out/ur_eval)",
                     default=Path("out/ur_eval"))
    flags.add_overwrite(ap, "results already in --output")
    flags.add_episodes(ap, 3, "episodes to run (default 3)")
    flags.add_duration(ap, 30.0, "seconds per episode at most (default 30)")
    from robodiff.diffusion.names import SCHEDULER_NAMES

    ap.add_argument("--sampler", choices=SCHEDULER_NAMES, default=None,
                    help="default: the checkpoint's configured sampler (lcm for a distilled student)")
    ap.add_argument("--steps", type=int, default=None,
                    help="denoising steps (default: the configured ones; 16 for a different --sampler, as the "
                         "reference uses DDIM 16 on robots)")
    ap.add_argument("--no-phase-lock", action="store_true",
                    help="observe at the horizon tick instead of right after the next camera frame arrives")
    ap.add_argument("--n-action-steps", type=int, default=None, help="actions executed per chunk (default: the "
                                                                       "policy's)")
    flags.add_device(ap)
    ap.add_argument("--threads", type=int, default=None,
                    help="torch threads for CPU inference (default: all cores but two, at least 1, leaving the "
                         "arm controller and cameras/twin theirs; on 2 cores 1 thread halves the latency of 2)")
    add_station_args(ap)


def run(args) -> int:
    logging.basicConfig(level=logging.INFO, format="[%(name)s %(levelname)s] %(message)s")

    from policies.loading import load_policy, sampler_choice
    from real_robot.arm import ArmError
    from real_robot.policy_adapter import PolicyAdapter
    from real_robot.runner import run_policy
    from real_robot.safety import EStop, stop_signals_interrupt
    from real_robot.session import open_station
    from real_robot.station import PushTTaskConfig
    from real_robot.twin.pusht_bridge import PushTPixelPolicy
    from robodiff.data import ReplayBuffer
    from robodiff.training.checkpoint import CheckpointError

    out = Path(args.output)
    try:
        flags.refuse_existing(out / "metrics.json", out / "episodes.zarr", out / "videos", overwrite=args.overwrite)
    except FileExistsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    device = flags.resolve_device(args.device)
    if device == "cpu":
        import torch

        torch.set_num_threads(args.threads or max(1, (os.cpu_count() or 1) - 2))
    try:
        policy, ckpt = load_policy(args.checkpoint, device)
    except (CheckpointError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    obs_meta = ckpt["config"]["task"]["shape_meta"]["obs"]
    # A Push-T-layout policy (trained on the 2D sim or on twin demos recorded with --pusht-format) thinks in
    # pixels and may need the block pose: it runs on the twin through the Push-T bridge.
    try:
        pusht_units = action_units(ckpt["config"]["task"]) == "px"
    except ValueError as exc:
        print(f"error: {args.checkpoint}: {exc}", file=sys.stderr)
        return 2
    if args.cameras and not args.sim:
        print("error: --cameras names twin cameras (needs --sim); a real station's cameras are --realsense SERIAL",
              file=sys.stderr)
        return 2
    twin_cameras = twin_cameras_for(obs_meta, args.cameras) if args.sim else ()
    images = [obs_key for obs_key, _ in image_keys(camera_names(twin_cameras, args.realsense)).values()]
    provided = [*images, "agent_pos", *(("keypoint", "state") if args.sim else ())]
    unknown = [k for k in obs_meta if k not in provided]
    if unknown:
        print(f"error: {args.checkpoint} needs observations {unknown}; this station provides {provided} "
              f"(keypoint/state only on the twin, whose block pose is known)"
              f"{missing_camera_hint(unknown, twin_cameras, args.sim)}", file=sys.stderr)
        return 2
    if pusht_units and not args.sim:
        print(f"error: {args.checkpoint} is a Push-T (pixel-unit) policy; run it on the twin with --sim, or "
              "train on station recordings (task=ur_pusht_image) for real hardware", file=sys.stderr)
        return 2
    for key in images:
        if key in obs_meta and list(obs_meta[key]["shape"][1:]) != list(args.image_size):
            print(f"error: the policy expects {obs_meta[key]['shape'][1:]} images ({key!r}); pass --image-size "
                  f"{' '.join(map(str, obs_meta[key]['shape'][1:]))}", file=sys.stderr)
            return 2
    args.sampler, args.steps = sampler_choice(ckpt["config"], args.sampler, args.steps, other_steps=16)
    policy.set_sampler(args.sampler, args.steps)
    n_action_steps = args.n_action_steps or policy.n_action_steps
    out.mkdir(parents=True, exist_ok=True)
    rb = ReplayBuffer.create(out / "episodes.zarr", overwrite=args.overwrite)
    estop = EStop()
    stop_signals_interrupt()
    watch_estop_key(estop)
    results = []
    task = PushTTaskConfig(n_obs_steps=policy.n_obs_steps)
    with open_station(sim=args.sim, host=args.host, frequency=args.frequency, image_hw=args.image_size,
                      camera_fps=args.camera_fps, realsense_serials=args.realsense, task=task,
                      seed=args.start_seed, twin_cameras=twin_cameras) as (station, twin):
        for ep in range(args.episodes):
            if twin is not None:
                twin.reset_scene(args.start_seed + ep)
                station.wait_for_frame(timeout=1.0)  # the first observation shows the new scene
            adapter = PolicyAdapter(policy, obs_keys=list(obs_meta))
            if pusht_units:
                adapter = PushTPixelPolicy(adapter)
            scene = {"max_coverage": 0.0, "block_lifted": False}

            def solved() -> bool:
                """Twin ground truth, once per control period: Push-T's success ends the episode (as Push-T's
                env terminates at coverage > 0.95), so the policy cannot undo it while time remains."""
                truth = twin.truth()
                scene["max_coverage"] = max(scene["max_coverage"], float(truth["coverage"]))
                scene["block_lifted"] |= bool(truth["block_lifted"])
                return scene["max_coverage"] > SUCCESS_THRESHOLD

            station.start_episode()
            try:
                report = run_policy(station, adapter, estop, n_action_steps=n_action_steps,
                                    duration=args.duration, done=solved if twin is not None else None,
                                    phase_lock=not args.no_phase_lock)
            except KeyboardInterrupt:  # Ctrl-C / SIGTERM: the runner has held the arm; keep what ran
                print("interrupted: arm held, recording saved; metrics cover the finished episodes",
                      file=sys.stderr)
                break
            except ArmError as e:
                print(f"error: {e}", file=sys.stderr)
                return 1
            finally:
                station.end_episode(rb, video_dir=out / "videos")
            res = {"episode": ep, **report.summary()}
            if twin is not None:
                res.update(scene, success=scene["max_coverage"] > SUCCESS_THRESHOLD)
            results.append(res)
            print(json.dumps(_rounded(res)))
            if estop.tripped:
                break
    summary = {"checkpoint": str(args.checkpoint), "sampler": args.sampler, "steps": args.steps,
               "phase_lock": not args.no_phase_lock,
               "episodes": results}
    if results and "success" in results[0]:
        summary["success_rate"] = sum(r["success"] for r in results) / len(results)
        summary["mean_max_coverage"] = sum(r["max_coverage"] for r in results) / len(results)
        summary["block_lifted"] = sum(r["block_lifted"] for r in results)
    tmp = out / ".metrics.json.tmp"
    tmp.write_text(json.dumps(summary, indent=2))
    os.replace(tmp, out / "metrics.json")
    print(f"wrote {out / 'metrics.json'}")
    return 0
