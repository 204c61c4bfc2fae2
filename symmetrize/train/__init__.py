"""Fine-tuning converted models: :func:`fit` with Adam and VideoPose3D's schedules, mixed
precision on CUDA, several processes under ``torchrun``, atomic checkpoints and exact resume."""

from symmetrize.train.checkpoint import load_checkpoint, save_checkpoint
from symmetrize.train.config import ConfigError, ConfigTypeError, TrainConfig
from symmetrize.train.loop import NotEquivariantError, TrainResult, evaluate, fit
from symmetrize.train.schedule import bn_momentum, set_bn_momentum

__all__ = ["ConfigError", "ConfigTypeError", "NotEquivariantError", "TrainConfig", "TrainResult",
           "bn_momentum", "evaluate", "fit", "load_checkpoint", "save_checkpoint",
           "set_bn_momentum"]
