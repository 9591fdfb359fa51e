"""The models lic ships, by stable name and id (see :mod:`.registry`); the contract: :mod:`.base`."""
from .base import LicModel
from .registry import MODELS, ModelSpec, build_model, model_by_id, model_by_name, weights_path

__all__ = ["LicModel", "MODELS", "ModelSpec", "build_model", "model_by_id", "model_by_name", "weights_path"]
