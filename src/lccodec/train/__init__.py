"""Training: data held on the device, the variable-rate loop, checkpoints, export (`lic train`)."""
from .loop import TrainConfig, TrainResult, train

__all__ = ["TrainConfig", "TrainResult", "train"]
