"""The models lic ships, by stable name and id (see :mod:`.registry`)."""
from .registry import MODELS, ModelSpec, build_model, model_by_id, model_by_name, weights_path

__all__ = ["MODELS", "ModelSpec", "build_model", "model_by_id", "model_by_name", "weights_path"]
