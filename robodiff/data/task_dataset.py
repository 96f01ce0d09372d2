"""The sequence dataset a run config describes: ``task.dataset`` + ``task.shape_meta`` + window sizes.

Policy training composes this with ``robodiff.training.train``; the training loop itself takes any dataset.
"""

from __future__ import annotations

from robodiff.data.datasets import DatasetError, SequenceDataset


def dataset_from_config(cfg: dict) -> SequenceDataset:
    """The task's windows: obs keys from ``task.shape_meta``, window sizes from the top-level config."""
    task, ds = cfg["task"], cfg["task"]["dataset"]
    dataset = SequenceDataset(
        ds["path"],
        obs_keys=list(task["shape_meta"]["obs"]),
        horizon=cfg["horizon"],
        n_obs_steps=cfg["n_obs_steps"],
        n_action_steps=cfg["n_action_steps"],
        val_ratio=ds.get("val_ratio", 0.0),
        max_train_episodes=ds.get("max_train_episodes"),
        seed=ds.get("seed", 42),
        task_name=task["name"],
    )
    check_shape_meta(dataset.shape_meta(), task["shape_meta"], ds["path"], task["name"])
    return dataset


def check_shape_meta(got: dict, want: dict, path, task_name: str) -> None:
    """The buffer's per-step shapes must be the ones the task (and so the policy) was configured for."""
    for key, spec in want["obs"].items():
        if list(got["obs"][key]["shape"]) != list(spec["shape"]):
            raise DatasetError(f"dataset {path}: obs {key!r} has per-step shape {got['obs'][key]['shape']}, "
                               f"task {task_name!r} expects {list(spec['shape'])} (task.shape_meta)")
    if list(got["action"]["shape"]) != list(want["action"]["shape"]):
        raise DatasetError(f"dataset {path}: action has shape {got['action']['shape']}, "
                           f"task {task_name!r} expects {list(want['action']['shape'])}")
