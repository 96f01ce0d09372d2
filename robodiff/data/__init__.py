"""Demonstration data: replay buffers on zarr, normalizers, samplers and dataset adapters."""

from robodiff.data.datasets import DatasetError, ObsSource, SequenceDataset, make_loader
from robodiff.data.normalizer import LinearNormalizer
from robodiff.data.replay_buffer import ReplayBuffer, ReplayBufferCorruptError, ReplayBufferError
from robodiff.data.sampler import SequenceSampler, downsample_mask, get_val_mask

__all__ = ["DatasetError", "LinearNormalizer", "ObsSource", "ReplayBuffer", "ReplayBufferCorruptError", "ReplayBufferError",
           "SequenceDataset", "SequenceSampler", "downsample_mask", "get_val_mask", "make_loader"]
