"""A batch of PushT episodes simulated in worker processes (the runner's parallel back end).

Why not gymnasium's AsyncVectorEnv: it puts one env in each process, so a policy batch of 50 seeds (one forward
pass per chunk) would cost 50 processes on a 2-core box and a pipe round-trip per env and per step. Here
``n_envs`` episodes are spread over ``n_workers`` processes and a worker executes a whole action chunk per
message. This module imports no torch, so workers start fast.
"""

from __future__ import annotations

import multiprocessing as mp
from pathlib import Path

import numpy as np

from envs.pusht.env import PushTEnv, image_observation
from envs.pusht.render import Renderer


class EnvGroup:
    """Some PushT episodes simulated in one process; the methods are the requests a worker answers.

    Image runs simulate state-observation envs and render only the observations the policy will see (the
    last ``n_keep`` of each chunk): rendering is a pure function of the state, so the pixels are the same as an
    image env's, at a fraction of the cost.
    """

    def __init__(self, obs_type: str, video_size: int, fps: int):
        self.obs_type, self.video_size, self.fps = obs_type, video_size, fps
        self.renderer = Renderer() if obs_type == "image" else None
        self.envs: list[PushTEnv] = []
        self.video_paths: list[str | None] = []
        self.frames: list[list[np.ndarray]] = []

    def _obs(self, env: PushTEnv, obs):
        if self.renderer is None:
            return obs
        return image_observation(self.renderer, env.agent.position, env.block_pose, env.image_size)

    def reset(self, seeds, video_paths, max_steps):
        """Reset one env per seed; per env: (obs, coverage). Envs with a video path start recording."""
        sim_obs_type = "state" if self.obs_type == "image" else self.obs_type
        while len(self.envs) < len(seeds):
            self.envs.append(PushTEnv(obs_type=sim_obs_type, terminate_on_success=False))
        self.envs = self.envs[: len(seeds)]
        self.video_paths = list(video_paths)
        self.frames = [[] for _ in seeds]
        out = []
        for env, seed, path, frames in zip(self.envs, seeds, self.video_paths, self.frames):
            env.max_episode_steps = max_steps
            obs, info = env.reset(seed=int(seed))
            if path:
                frames.append(env.render_frame(self.video_size))
            out.append((self._obs(env, obs), info["coverage"]))
        return out

    def step_chunk(self, actions, active, n_keep):
        """Execute actions (k, n, 2) in the active envs, stopping an env at success or truncation.

        Per env: (the observations after its last ``n_keep`` executed steps, coverages after every step).
        """
        out = []
        for env, acts, act_on, path, frames in zip(self.envs, actions, active, self.video_paths, self.frames):
            obs_list, covs = [], []
            if act_on:
                for i, a in enumerate(acts):
                    obs, _, _, truncated, info = env.step(a)
                    covs.append(info["coverage"])
                    if path:
                        frames.append(env.render_frame(self.video_size))
                    done = truncated or info["is_success"]
                    if done or i >= len(acts) - n_keep:
                        obs_list.append(self._obs(env, obs))
                    if done:
                        break
            out.append((obs_list[-n_keep:], covs))
        return out

    def finish(self):
        """Write this round's videos (H.264 mp4 through PyAV); return their paths."""
        import imageio.v3 as iio  # only where videos are written

        written = []
        for path, frames in zip(self.video_paths, self.frames):
            if path and frames:
                Path(path).parent.mkdir(parents=True, exist_ok=True)
                iio.imwrite(path, np.stack(frames), plugin="pyav", codec="libx264", fps=self.fps)
                written.append(path)
        self.frames = [[] for _ in self.frames]
        return written


def _worker(conn, group_args):
    import cv2

    cv2.setNumThreads(1)  # the workers already run in parallel; nested cv2 threads would only contend
    group = EnvGroup(*group_args)
    try:
        while True:
            cmd, args = conn.recv()
            if cmd == "close":
                break
            try:
                conn.send(("ok", getattr(group, cmd)(*args)))
            except Exception as e:  # re-raised in the parent with the worker's message
                conn.send(("error", f"{type(e).__name__}: {e}"))
    except (EOFError, KeyboardInterrupt):
        pass
    finally:
        conn.close()


class EnvPool:
    """EnvGroups in ``n_workers`` processes (0: one group in this process), started on first use.

    ``call(cmd, per_group_args)`` runs ``EnvGroup.<cmd>(*args)`` in group i for each args tuple i, all groups
    at once, and returns their answers in order.
    """

    def __init__(self, n_workers: int, obs_type: str, video_size: int = 512, fps: int = 10):
        self.n_workers = n_workers
        self._group_args = (obs_type, video_size, fps)
        self._procs: list[tuple[mp.Process, object]] = []
        self._local: EnvGroup | None = None

    @property
    def n_groups(self) -> int:
        return max(self.n_workers, 1)

    def _start(self):
        if self.n_workers == 0:
            self._local = self._local or EnvGroup(*self._group_args)
            return
        if self._procs:
            return
        # fork, as torch's DataLoader workers: a child starts in milliseconds with the env already imported.
        # (spawn/forkserver children re-import the caller's __main__ — a training script with torch — which
        # costs seconds per worker.) The children never touch torch, so its threads in the parent are harmless.
        ctx = mp.get_context("fork")
        for _ in range(self.n_workers):
            parent, child = ctx.Pipe()
            proc = ctx.Process(target=_worker, args=(child, self._group_args), daemon=True)
            proc.start()
            child.close()
            self._procs.append((proc, parent))

    def call(self, cmd: str, per_group_args: list[tuple]) -> list:
        if len(per_group_args) > self.n_groups:
            raise ValueError(f"EnvPool.call: {len(per_group_args)} argument tuples for {self.n_groups} groups")
        self._start()
        if self.n_workers == 0:
            return [getattr(self._local, cmd)(*per_group_args[0])]
        used = self._procs[: len(per_group_args)]
        for (_, conn), args in zip(used, per_group_args):
            conn.send((cmd, args))
        answers = []
        for proc, conn in used:
            status, value = conn.recv()
            if status == "error":
                raise RuntimeError(f"PushT worker process {proc.pid} failed in {cmd}: {value}")
            answers.append(value)
        return answers

    def close(self):
        for proc, conn in self._procs:
            try:
                conn.send(("close", ()))
            except (BrokenPipeError, OSError):
                pass
            conn.close()
            proc.join(timeout=5)
            if proc.is_alive():
                proc.terminate()
        self._procs = []
        self._local = None

    def __del__(self):
        try:
            self.close()
        except Exception:  # interpreter shutdown: pipes may already be gone
            pass
