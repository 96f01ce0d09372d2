"""The sequence dataset a run config describes: ``task.dataset`` + ``task.shape_meta`` + window sizes.

Policy training composes this with ``robodiff.training.train``; the training loop itself takes any dataset.
"""

from __future__ import annotations

from robodiff.data.datasets import DatasetError, ObsSources, SequenceDataset


def dataset_from_config(cfg: dict, obs_sources: ObsSources | None = None) -> SequenceDataset:
    """The task's windows: obs keys, shapes and units from ``task.shape_meta``, window sizes from the top-level
    config. ``obs_sources`` (robodiff.data.datasets): where derived observation keys come from; a task config
    that names them as ``"module:attr"`` (task.dataset.obs_sources) is resolved by the caller, the
    composition root (policies/train.py), since robodiff imports no task package."""
    task, ds = cfg["task"], cfg["task"]["dataset"]
    if obs_sources is None:
        obs_sources = ds.get("obs_sources")
        if isinstance(obs_sources, str):
            raise DatasetError(f"task {task['name']!r}: task.dataset.obs_sources names {obs_sources!r}; resolve it "
                               f"and pass the mapping: dataset_from_config(cfg, obs_sources=...) (policies/train.py "
                               f"does)")
    return SequenceDataset(
        ds["path"],
        task["shape_meta"],
        horizon=cfg["horizon"],
        n_obs_steps=cfg["n_obs_steps"],
        n_action_steps=cfg["n_action_steps"],
        val_ratio=ds.get("val_ratio", 0.0),
        max_train_episodes=ds.get("max_train_episodes"),
        seed=ds.get("seed", 42),
        task_name=task["name"],
        obs_sources=obs_sources,
    )
