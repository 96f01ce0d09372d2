"""Shared test fixtures: paths to the reference data, a small synthetic episode maker."""

import time
from pathlib import Path

import numpy as np
import pytest

from envs.pusht.protocol import REFERENCE_ZARR as PUSHT_ZARR

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def pusht_zarr() -> Path:
    if not PUSHT_ZARR.exists():
        pytest.skip(f"reference PushT data not found at {PUSHT_ZARR}")
    return PUSHT_ZARR


def make_episode(i: int, length: int | None = None, image: bool = True) -> dict[str, np.ndarray]:
    """A deterministic synthetic episode in the PushT key layout (index i seeds its contents)."""
    rng = np.random.default_rng(i)
    T = length or int(rng.integers(5, 30))
    ep = {
        "state": rng.uniform(0, 512, (T, 5)).astype(np.float32),
        "keypoint": rng.uniform(0, 512, (T, 9, 2)).astype(np.float32),
        "action": rng.uniform(0, 512, (T, 2)).astype(np.float32),
        "n_contacts": rng.integers(0, 3, (T, 1)).astype(np.float32),
    }
    if image:
        ep["img"] = rng.integers(0, 256, (T, 96, 96, 3), dtype=np.uint8)
    return ep


@pytest.fixture
def episode_factory():
    return make_episode


@pytest.fixture
def one_thread():
    """Torch on one thread for the test: the CI machine's 2 cores are shared, avoid oversubscription."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def wait_for(condition, timeout: float = 10.0, poll: float = 0.01) -> bool:
    """True as soon as ``condition()`` holds; False after ``timeout`` s (generous: the CI box is shared)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(poll)
    return True
