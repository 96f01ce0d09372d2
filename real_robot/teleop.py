"""Teleoperation devices: 6-DoF axes in [-1, 1] (x, y, z, roll, pitch, yaw) and buttons.

* ``SpaceMouse``: 3Dconnexion device through spacenavd's client library libspnav (``apt-get install spacenavd
  libspnav0``). A ctypes binding of its three calls, because pyspacemouse needs hidapi access to the raw USB
  device while spacenavd already owns it on a configured station.
* ``KeyboardTeleop``: arrow-free fallback from a terminal (w/a/s/d move, space = button 0 (end episode),
  escape / q = e-stop), no X server needed.
* ``ScriptedTeleop``: a programmed sequence of stick deflections, for tests and for recording repeatable demos
  without a person: it goes through exactly the same code path as a SpaceMouse.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import select
import sys
import threading
import time
from dataclasses import dataclass, field

import numpy as np


@dataclass
class TeleopState:
    axes: np.ndarray = field(default_factory=lambda: np.zeros(6))  # x, y, z, rx, ry, rz in [-1, 1]
    buttons: tuple = (False, False)
    estop: bool = False


class _SpnavMotion(ctypes.Structure):
    _fields_ = [("type", ctypes.c_int), ("x", ctypes.c_int), ("y", ctypes.c_int), ("z", ctypes.c_int),
                ("rx", ctypes.c_int), ("ry", ctypes.c_int), ("rz", ctypes.c_int),
                ("period", ctypes.c_uint), ("data", ctypes.POINTER(ctypes.c_int))]


class _SpnavButton(ctypes.Structure):
    _fields_ = [("type", ctypes.c_int), ("press", ctypes.c_int), ("bnum", ctypes.c_int)]


class _SpnavEvent(ctypes.Union):
    # libspnav's ``spnav_event`` union; pad: events of newer libspnav versions are larger
    _fields_ = [("type", ctypes.c_int), ("motion", _SpnavMotion), ("button", _SpnavButton),
                ("pad", ctypes.c_char * 128)]


class SpaceMouse:
    """Latest state of a SpaceMouse; a thread drains spacenavd's events. ``deadzone`` in normalised units."""

    FULL_SCALE = 350.0  # libspnav reports roughly +-350 at full deflection
    _MOTION, _BUTTON = 1, 2

    def __init__(self, deadzone: float = 0.05):
        path = ctypes.util.find_library("spnav")
        if path is None:
            raise OSError("SpaceMouse needs libspnav and a running spacenavd: `apt-get install spacenavd libspnav0`")
        self._lib = ctypes.CDLL(path)
        if self._lib.spnav_open() == -1:
            raise OSError("cannot connect to spacenavd (is the daemon running and the SpaceMouse plugged in?)")
        self.deadzone = deadzone
        self._state = TeleopState()
        self._buttons = [False, False]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._pump, daemon=True)
        self._thread.start()

    def _pump(self) -> None:
        ev = _SpnavEvent()
        while not self._stop.is_set():
            kind = self._lib.spnav_poll_event(ctypes.byref(ev))
            if kind == 0:
                time.sleep(0.002)
            elif kind == self._MOTION:
                m = ev.motion
                # spacenavd axes: x right, y up, z toward the user -> robot base frame x, y, z (right-handed)
                raw = np.array([m.x, m.z, m.y, m.rx, m.rz, m.ry], dtype=np.float64) / self.FULL_SCALE
                raw = np.clip(raw, -1, 1)
                raw[np.abs(raw) < self.deadzone] = 0.0
                self._state = TeleopState(axes=raw, buttons=tuple(self._buttons))
            elif kind == self._BUTTON and 0 <= ev.button.bnum < 2:
                self._buttons[ev.button.bnum] = bool(ev.button.press)
                self._state = TeleopState(axes=self._state.axes, buttons=tuple(self._buttons))

    def read(self) -> TeleopState:
        return self._state

    def close(self) -> None:
        self._stop.set()
        self._thread.join(1)
        self._lib.spnav_close()


class KeyboardTeleop:
    """Terminal keys (no window needed). Each key press deflects the stick for ``hold_s`` seconds."""

    KEYS = {"w": (1, +1), "s": (1, -1), "d": (0, +1), "a": (0, -1)}

    def __init__(self, hold_s: float = 0.15):
        import termios
        import tty

        if not sys.stdin.isatty():
            raise OSError("KeyboardTeleop needs an interactive terminal (stdin is not a tty)")
        self._fd = sys.stdin.fileno()
        self._old = termios.tcgetattr(self._fd)
        tty.setcbreak(self._fd)
        self.hold_s = hold_s
        self._axes_until = np.zeros(6)
        self._dir = np.zeros(6)
        self._button = False
        self._estop = False

    def read(self) -> TeleopState:
        now = time.monotonic()
        while select.select([sys.stdin], [], [], 0)[0]:
            ch = os.read(self._fd, 1).decode(errors="ignore").lower()
            if ch in self.KEYS:
                ax, sign = self.KEYS[ch]
                self._dir[ax] = sign
                self._axes_until[ax] = now + self.hold_s
            elif ch == " ":
                self._button = True
            elif ch in ("q", "\x1b"):
                self._estop = True
        axes = np.where(self._axes_until > now, self._dir, 0.0)
        state = TeleopState(axes=axes, buttons=(self._button, False), estop=self._estop)
        self._button = False
        return state

    def close(self) -> None:
        import termios

        termios.tcsetattr(self._fd, termios.TCSADRAIN, self._old)


class ScriptedTeleop:
    """Stick deflections from a script: a list of (duration_s, axes6); button 0 is pressed once it is over."""

    def __init__(self, segments):
        self.segments = [(float(d), np.asarray(a, dtype=np.float64)) for d, a in segments]
        self.t0 = None

    @classmethod
    def square(cls, side_s: float = 1.0, speed: float = 0.8) -> "ScriptedTeleop":
        """Trace a square in the table plane: +x, +y, -x, -y."""
        dirs = [(1, 0), (0, 1), (-1, 0), (0, -1)]
        return cls([(side_s, [speed * dx, speed * dy, 0, 0, 0, 0]) for dx, dy in dirs])

    @property
    def duration(self) -> float:
        return sum(d for d, _ in self.segments)

    def read(self) -> TeleopState:
        now = time.monotonic()
        if self.t0 is None:
            self.t0 = now
        t = now - self.t0
        for d, axes in self.segments:
            if t < d:
                return TeleopState(axes=axes.copy())
            t -= d
        return TeleopState(buttons=(True, False))

    def close(self) -> None:
        pass
