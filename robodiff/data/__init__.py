"""Demonstration data: replay buffers on zarr, normalizers, samplers and dataset adapters."""

from robodiff.data.normalizer import LinearNormalizer
from robodiff.data.replay_buffer import ReplayBuffer, ReplayBufferError

__all__ = ["LinearNormalizer", "ReplayBuffer", "ReplayBufferError"]
