"""Demonstration data: replay buffers on zarr, normalizers, samplers and dataset adapters.

Names are imported on first use (robodiff.lazy): ``from robodiff.data import ReplayBuffer`` loads zarr, not torch.
"""

from robodiff.lazy import lazy_exports

_EXPORTS = {
    **dict.fromkeys(["DatasetError", "ObsSource", "SequenceDataset", "make_loader"], "datasets"),
    "LinearNormalizer": "normalizer",
    **dict.fromkeys(["ReplayBuffer", "ReplayBufferCorruptError", "ReplayBufferError"], "replay_buffer"),
    **dict.fromkeys(["SequenceSampler", "downsample_mask", "get_val_mask"], "sampler"),
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
