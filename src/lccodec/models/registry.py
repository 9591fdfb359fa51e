"""Registry of models: each model class by the stable name and id of its identity.

Names, ids, descriptions and header-params layouts are written once, in
:mod:`lccodec.identity`; a model class takes its own with ``class X(LicModel, model="name")``.
A new model is one line here (and one there).
"""
from __future__ import annotations

import inspect
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..errors import ModelError
from ..identity import BY_ID, IDENTITIES
from ..weights_io import WEIGHTS_ENV, installed_weights  # noqa: F401 (WEIGHTS_ENV: re-exported)
from .base import LicModel
from .coarse2fine import Coarse2FineModel
from .context import ContextModel
from .hierarchical import HierarchicalModel
from .hyperprior import HyperpriorModel
from .reference import ReferenceModel


MODEL_CLASSES: tuple[type[LicModel], ...] = (
    HyperpriorModel,
    ContextModel,
    ReferenceModel,
    HierarchicalModel,
    Coarse2FineModel,
)


@dataclass(frozen=True)
class ModelSpec:
    name: str
    model_id: int
    factory: Callable[..., LicModel]
    description: str

    @property
    def weights_file(self) -> str:
        return f"{self.name}.safetensors"


MODELS: dict[str, ModelSpec] = {
    cls.name: ModelSpec(cls.name, cls.model_id, cls, cls.identity.description) for cls in MODEL_CLASSES
}
if [spec.model_id for spec in MODELS.values()] != [i.model_id for i in IDENTITIES]:
    raise ImportError("models/registry.py and lccodec/identity.py list different models")


def model_by_name(name: str) -> ModelSpec:
    try:
        return MODELS[name]
    except KeyError:
        raise ModelError(f"unknown model '{name}' (available: {', '.join(MODELS)})") from None


def model_by_id(model_id: int) -> ModelSpec:
    if model_id in BY_ID and BY_ID[model_id].name in MODELS:
        return MODELS[BY_ID[model_id].name]
    raise ModelError(f"file was made by an unknown model (id {model_id}); this lic knows {', '.join(MODELS)}")


def build_model(spec: ModelSpec, config: dict | None = None) -> LicModel:
    """An untrained model of `spec` with the given config (N, M, lambdas...); a config the
    model does not take (an unknown key, a bad value) is a ModelError."""
    config = dict(config or {})
    known = [p for p in inspect.signature(spec.factory).parameters if p != "self"]
    unknown = sorted(set(config) - set(known))
    if unknown:
        raise ModelError(f"unknown config key '{unknown[0]}' for model {spec.name} (it takes {', '.join(known)})")
    if "lambdas" in config:
        lambdas = config["lambdas"]
        if not (isinstance(lambdas, (list, tuple)) and lambdas and all(
                isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v > 0
                for v in lambdas)):
            raise ModelError(f"config 'lambdas' must be a non-empty list of positive numbers, got {lambdas!r}")
        config["lambdas"] = tuple(lambdas)
    try:
        return spec.factory(**config)
    except (TypeError, ValueError, RuntimeError) as exc:  # a value of the wrong type or range
        raise ModelError(f"invalid config for model {spec.name}: {exc}") from None


def weights_path(spec: ModelSpec) -> Path:
    """Where the weights of `spec` are: $LIC_WEIGHTS_DIR if set, else the installed package data."""
    return installed_weights(spec.name)
