"""Record PushT demonstrations by hand: a pygame window where the mouse drives the agent.

Controls (shown in the window title):
    S, or hovering the mouse over the agent   start recording the episode; the agent follows the mouse
    Enter                                     stop and save the episode (also saved automatically on success)
    D or Backspace                            discard the episode and restart it from the same seed
    Space                                     pause / resume
    Q, Esc or closing the window              quit (an unfinished episode is discarded)

Each recorded step stores what the reference's recorder stored, so the episodes match the dataset's layout:
``img`` (96x96x3 uint8 frame before the action, no target marker), ``state`` (agent x, y, block x, y, angle
in [0, 2pi)),
``keypoint`` (9, 2), ``action`` (the mouse target), ``n_contacts`` (of the step that led to this frame).
Episode k starts from seed ``start_seed + k`` where k counts the episodes already in the buffer (the reference
used the episode count as the seed), so appending to a buffer continues its seed sequence.

Headless runs (tests, scripted collection): set ``SDL_VIDEODRIVER=dummy`` and pass ``input_events``, an
iterable with one entry per control tick, each a list of pygame events (see mouse_event, key_event); they are
posted to pygame's queue and go through the same loop as real input. When the stream ends the recorder quits.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import pygame

from envs.pusht.env import PushTEnv
from envs.pusht.arena import WINDOW_SIZE
from robodiff.data import ReplayBuffer

ENGAGE_RADIUS = 30.0  # px: hovering this close to the agent starts recording, as in the reference recorder
KEYS_START = (pygame.K_s,)
KEYS_SAVE = (pygame.K_RETURN, pygame.K_KP_ENTER)
KEYS_DISCARD = (pygame.K_d, pygame.K_BACKSPACE)
KEYS_QUIT = (pygame.K_q, pygame.K_ESCAPE)


def mouse_event(x: float, y: float) -> pygame.event.Event:
    """A mouse move to window pixel (x, y) (the window shows the 512x512 world 1:1)."""
    return pygame.event.Event(pygame.MOUSEMOTION, pos=(int(round(x)), int(round(y))), rel=(0, 0), buttons=(0, 0, 0))


def key_event(key: str) -> pygame.event.Event:
    """A key press, by pygame key name: "s", "return", "d", "backspace", "space", "q", "escape"."""
    const = f"K_{key}" if len(key) == 1 else f"K_{key.upper()}"  # pygame's names: K_s, K_RETURN, K_SPACE
    if not hasattr(pygame, const):
        raise ValueError(f"key_event: unknown key {key!r}; use a pygame key name such as 's', 'return', 'd', 'q'")
    return pygame.event.Event(pygame.KEYDOWN, key=getattr(pygame, const), mod=0, unicode="")


def _open_buffer(out_path) -> ReplayBuffer:
    if out_path is None:
        return ReplayBuffer.create(None)
    if isinstance(out_path, ReplayBuffer):
        return out_path
    path = Path(out_path)
    return ReplayBuffer.open(path, mode="a") if path.exists() else ReplayBuffer.create(path)


def run_teleop(out_path, input_events=None, *, start_seed: int = 0, max_episodes: int | None = None,
               control_hz: int = 10, image_size: int = 96) -> dict:
    """Run the recorder until quit, the input stream ends, or ``max_episodes`` episodes are saved.

    Args:
        out_path: zarr path (created, or appended to if it exists), an open ReplayBuffer, or None (in memory).
        input_events: None for live mouse/keyboard input at ``control_hz``; else the scripted per-tick events,
            replayed as fast as possible.
    Returns: {"replay_buffer": ReplayBuffer, "saved": [episode indices], "discarded": int}.
    """
    rb = _open_buffer(out_path)
    scripted = input_events is not None
    ticks = iter(input_events) if scripted else None
    pygame.display.init()
    try:
        window = pygame.display.set_mode((WINDOW_SIZE, WINDOW_SIZE))
        clock = pygame.time.Clock()
        env = PushTEnv(obs_type="state", image_size=image_size, max_episode_steps=None, terminate_on_success=True)
        saved, discarded = [], 0
        quit_requested = False
        while not quit_requested and (max_episodes is None or len(saved) < max_episodes):
            seed = start_seed + rb.n_episodes
            _, info = env.reset(seed=seed)
            steps, recording, paused, outcome = [], False, False, None
            mouse = None
            while outcome is None:
                if scripted:
                    tick = next(ticks, None)
                    if tick is None:
                        outcome = "quit"
                        break
                    for ev in ([tick] if isinstance(tick, pygame.event.Event) else tick):
                        pygame.event.post(ev)
                for ev in pygame.event.get():
                    if ev.type == pygame.QUIT or (ev.type == pygame.KEYDOWN and ev.key in KEYS_QUIT):
                        outcome = "quit"
                    elif ev.type == pygame.KEYDOWN and ev.key in KEYS_DISCARD:
                        outcome = "discard"
                    elif ev.type == pygame.KEYDOWN and ev.key in KEYS_SAVE:
                        outcome = "save"
                    elif ev.type == pygame.KEYDOWN and ev.key in KEYS_START:
                        recording = True
                    elif ev.type == pygame.KEYDOWN and ev.key == pygame.K_SPACE:
                        paused = not paused
                    elif ev.type == pygame.MOUSEMOTION:
                        mouse = np.array(ev.pos, dtype=np.float64)
                if outcome is not None:
                    break
                if mouse is not None and not recording:
                    recording = math.dist(mouse, env.agent_pos) < ENGAGE_RADIUS
                if recording and not paused and mouse is not None:
                    steps.append(env.dataset_row(mouse))
                    _, _, terminated, _, info = env.step(mouse)
                    if terminated:
                        outcome = "save"
                state_text = "PAUSED" if paused else ("recording" if recording else "S or hover the agent to start")
                pygame.display.set_caption(f"PushT teleop | seed {seed} | {state_text} | {len(steps)} steps | "
                                           f"coverage {info['coverage']:.2f} | Enter save, D discard, Q quit")
                frame = env.render_frame(WINDOW_SIZE, draw_action=recording)
                window.blit(pygame.image.frombuffer(frame.tobytes(), frame.shape[1::-1], "RGB"), (0, 0))
                pygame.display.flip()
                if not scripted:
                    clock.tick(control_hz)
            if outcome == "save" and steps:
                episode = {k: np.stack([s[k] for s in steps]) for k in steps[0]}
                saved.append(rb.add_episode(episode))
            elif outcome == "discard" or (outcome == "quit" and steps):
                discarded += 1
            quit_requested = outcome == "quit"
        return {"replay_buffer": rb, "saved": saved, "discarded": discarded}
    finally:
        pygame.display.quit()


def main(argv=None):
    """``python -m envs.pusht.teleop OUT.zarr``: record demonstrations into OUT.zarr with the mouse."""
    import argparse

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out", type=Path, help="zarr replay buffer to create or append to")
    ap.add_argument("--start-seed", type=int, default=0)
    ap.add_argument("--max-episodes", type=int, default=None)
    args = ap.parse_args(argv)
    if os.environ.get("SDL_VIDEODRIVER") == "dummy":
        raise SystemExit("teleop: SDL_VIDEODRIVER=dummy gives no window to steer with; unset it")
    result = run_teleop(args.out, start_seed=args.start_seed, max_episodes=args.max_episodes)
    print(f"saved episodes {result['saved']} to {args.out} ({result['discarded']} discarded)")


if __name__ == "__main__":
    main()
