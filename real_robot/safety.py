"""Safety checks every commanded pose passes: finite numbers, a workspace box, a fixed tool orientation for
planar tasks, and an e-stop flag shared between processes."""

from __future__ import annotations

import logging
import multiprocessing as mp
import signal
import time
from dataclasses import dataclass, field

import numpy as np

log = logging.getLogger(__name__)


class UnsafeCommand(ValueError):
    """A command that must not reach the arm (NaN/inf, wrong shape)."""


@dataclass
class Workspace:
    """Axis-aligned TCP box in the robot base frame (metres). Targets outside are clipped onto it and logged."""

    low: tuple[float, float, float]
    high: tuple[float, float, float]
    n_clipped: int = field(default=0, init=False)
    _last_log: float = field(default=0.0, init=False, repr=False)

    def __post_init__(self):
        lo, hi = np.asarray(self.low, float), np.asarray(self.high, float)
        if lo.shape != (3,) or hi.shape != (3,) or np.any(lo >= hi):
            raise ValueError(f"workspace low {self.low} must be below high {self.high} on every axis (x, y, z)")

    def check_pose(self, pose) -> np.ndarray:
        """Validated copy of a 6-vector TCP pose, position clipped into the box."""
        pose = np.asarray(pose, dtype=np.float64)
        if pose.shape != (6,):
            raise UnsafeCommand(f"TCP pose must have shape (6,) [x, y, z, rx, ry, rz], got {pose.shape}")
        if not np.all(np.isfinite(pose)):
            raise UnsafeCommand(f"non-finite TCP pose {pose.tolist()} rejected")
        clipped = pose.copy()
        clipped[:3] = np.clip(pose[:3], self.low, self.high)
        if not np.array_equal(clipped, pose):
            self.n_clipped += 1
            now = time.monotonic()
            if now - self._last_log > 1.0:  # at most one line a second, with the running count
                log.warning("target %s outside workspace %s..%s: clipped (%d so far)",
                            np.round(pose[:3], 4).tolist(), self.low, self.high, self.n_clipped)
                self._last_log = now
        return clipped


class EStop:
    """A latch any process can trip (a key, a watchdog, Ctrl-C); loops poll it and stop the arm."""

    def __init__(self):
        self._flag = mp.Event()
        self.reason = ""

    def trip(self, reason: str = "e-stop") -> None:
        if not self._flag.is_set():
            log.error("E-STOP: %s", reason)
        self.reason = reason
        self._flag.set()

    @property
    def tripped(self) -> bool:
        return self._flag.is_set()


def stop_signals_interrupt() -> None:
    """Make SIGTERM/SIGHUP (a process manager, a closed terminal) and SIGINT act like Ctrl-C in the main thread:
    a KeyboardInterrupt, which the runners turn into "arm holds, recording saved, connections closed".

    Without this SIGTERM kills the process before any cleanup runs, and a script started in the background
    inherits an ignored SIGINT. Call it once from a script's main thread.
    """
    def interrupt(signum, _frame):
        raise KeyboardInterrupt(f"signal {signal.Signals(signum).name}")

    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, interrupt)
