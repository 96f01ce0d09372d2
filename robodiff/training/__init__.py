"""The one training loop (EMA, checkpoints with exact resume, loggers, DDP) and the config composer it reads."""

from robodiff.training.checkpoint import CheckpointError, load_checkpoint, load_model
from robodiff.training.config import ConfigError, compose_config, with_training_defaults
from robodiff.training.trainer import Trainer, TrainResult, train

__all__ = ["CheckpointError", "ConfigError", "TrainResult", "Trainer", "compose_config", "load_checkpoint",
           "load_model", "train", "with_training_defaults"]
