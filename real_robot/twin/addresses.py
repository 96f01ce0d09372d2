"""Where a twin is reached: the UR controller's fixed TCP ports on the twin's loopback address, and the names
and layouts of its shared-memory rings (cameras, ground truth), and which cameras it may render. Imported by the
twin and by its clients."""

from __future__ import annotations

import argparse

import numpy as np

RTDE_PORT, DASHBOARD_PORT, PRIMARY_PORT, SECONDARY_PORT = 30004, 29999, 30002, 30003
DEFAULT_CAMERAS = ("front",)


def twin_camera_names() -> tuple[str, ...]:
    """The cameras the twin's MuJoCo model defines (imported on use: the model package loads MuJoCo, which a
    client of real hardware does not need)."""
    from envs.ur5e_pusht.model import CAMERAS

    return tuple(CAMERAS)


def camera_list(text: str) -> tuple[str, ...]:
    """argparse type of ``--cameras``: comma-separated twin cameras, in order (the first is the policy's ``image``,
    recorded as ``img``; the others ``image_<cam>`` / ``img_<cam>``)."""
    names, known = tuple(n.strip() for n in text.split(",")), twin_camera_names()
    if not all(n in known for n in names) or len(set(names)) != len(names):
        raise argparse.ArgumentTypeError(f"{text!r}: name twin cameras from {', '.join(known)}, each once, "
                                         "separated by commas (e.g. front,side)")
    return names


def camera_ring_name(host: str, camera: str) -> str:
    """Shared-memory name of a twin camera's ring (one twin per loopback address)."""
    return f"robodiff_twin_{host.replace('.', '_')}_{camera}"


def camera_ring_spec(image_hw: tuple[int, int]) -> dict:
    return {"color": ((*image_hw, 3), np.uint8), "step": ((), np.int64)}


def truth_ring_name(host: str) -> str:
    """Ground truth of the simulated scene (block pose, coverage): the twin's stand-in for a motion-capture
    system, used to score episodes; a policy never sees it."""
    return f"robodiff_twin_{host.replace('.', '_')}_truth"


TRUTH_RING_SPEC = {"block_pose_px": ((3,), np.float64), "coverage": ((), np.float64),
                   "tcp_pose": ((6,), np.float64), "block_lifted": ((), np.bool_)}


def unlink_stale(name: str) -> None:
    """A twin killed with SIGKILL leaves its ring behind; a new twin on the same address replaces it."""
    from multiprocessing import shared_memory

    try:
        old = shared_memory.SharedMemory(name=name)
    except FileNotFoundError:
        return
    old.close()
    old.unlink()
