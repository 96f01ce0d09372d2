"""The one training loop (EMA, checkpoints with exact resume, loggers, DDP) and the config composer it reads."""

from robodiff.training.checkpoint import CheckpointError, load_checkpoint
from robodiff.training.config import ConfigError, compose_config
from robodiff.training.trainer import Trainer, TrainResult, build_dataset, train

__all__ = ["CheckpointError", "ConfigError", "TrainResult", "Trainer", "build_dataset", "compose_config",
           "load_checkpoint", "train"]
