"""The one training loop trains any model with ``compute_loss`` on any map-style dataset (not only policies)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from robodiff.training import ConfigError, load_model, train, with_training_defaults
from robodiff.training.checkpoint import CheckpointError


class PairDataset(torch.utils.data.Dataset):
    """y = 3 x - 1 with a fixed validation split; items are dicts of tensors (default collate)."""

    def __init__(self, n=64, seed=0):
        g = torch.Generator().manual_seed(seed)
        self.x = torch.randn(n, 1, generator=g)
        self.y = 3 * self.x - 1

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        return {"x": self.x[i], "y": self.y[i]}

    def get_validation_dataset(self):
        return PairDataset(16, seed=1)


class Line(nn.Module):
    def __init__(self, width):
        super().__init__()
        self.lin = nn.Linear(1, width)
        self.out = nn.Linear(width, 1)

    def compute_loss(self, batch):
        return ((self.out(self.lin(batch["x"])) - batch["y"]) ** 2).mean()


def build(cfg, dataset):
    return Line(cfg["model"]["width"])


def run_cfg(out, **training):
    return {"output_dir": str(out), "seed": 0, "device": "cpu", "model": {"width": 4},
            "training": {"batch_size": 16, "lr": 0.05, "lr_scheduler": "constant", "lr_warmup_steps": 0,
                         "rollout_every": 1, "progress": False, "ema": {"enabled": False},
                         "checkpoint": {"monitor": "test/neg_mse", "top_k": 2}, **training},
            "logging": {"tensorboard": False}}


def neg_mse(model):
    data = PairDataset(32, seed=2)
    with torch.no_grad():
        return {"neg_mse": -float(model.compute_loss({"x": data.x, "y": data.y}))}


def test_generic_model_trains_evaluates_and_reloads(tmp_path):
    res = train(run_cfg(tmp_path / "run", num_epochs=30), build, PairDataset(), neg_mse)
    assert res.step == 30 * 4 and res.best_checkpoint is not None
    assert res.metrics["test/neg_mse"] > -0.05                    # it learned the line
    assert res.metrics["val/loss"] < 0.05
    model, ckpt = load_model(res.best_checkpoint, build)
    assert not model.training and ckpt["config"]["model"] == {"width": 4}
    assert neg_mse(model)["neg_mse"] == pytest.approx(float(ckpt["metrics"]["test/neg_mse"]), abs=0.05)


def test_resume_refuses_a_changed_model_section(tmp_path):
    train(run_cfg(tmp_path / "r", max_steps=4), build, PairDataset())
    cfg = run_cfg(tmp_path / "r", max_steps=8, resume=True)
    cfg["model"]["width"] = 8
    with pytest.raises(CheckpointError, match="different 'model' config"):
        train(cfg, build, PairDataset())
    # the run's own sections (training.*) may change on resume
    assert train(run_cfg(tmp_path / "r", max_steps=8, resume=True, lr=0.01), build, PairDataset()).step == 8


def test_training_defaults_fill_in_and_reject_typos():
    cfg = with_training_defaults({"training": {"batch_size": 8}})
    assert cfg["training"]["batch_size"] == 8 and cfg["training"]["ema"]["power"] == 0.75
    with pytest.raises(ConfigError, match="did you mean 'batch_size'"):
        with_training_defaults({"training": {"batch_sise": 8}})
    with pytest.raises(ConfigError, match="training.ema.pwr"):
        with_training_defaults({"training": {"ema": {"pwr": 1}}})


def test_a_model_without_compute_loss_is_refused(tmp_path):
    with pytest.raises(TypeError, match="compute_loss"):
        train(run_cfg(tmp_path / "x", max_steps=1), lambda cfg, ds: nn.Linear(1, 1), PairDataset())
