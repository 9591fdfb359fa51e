"""Registry of models: a stable name and numeric id (recorded in every .lic file) per model.

Ids are never reused or renumbered; a new model gets the next free id.
"""
from __future__ import annotations

import importlib.resources
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from torch import nn

from ..errors import ModelError
from .coarse2fine import Coarse2FineModel
from .context import ContextModel
from .hierarchical import HierarchicalModel
from .hyperprior import HyperpriorModel
from .reference import ReferenceModel

WEIGHTS_ENV = "LIC_WEIGHTS_DIR"


@dataclass(frozen=True)
class ModelSpec:
    name: str
    model_id: int
    factory: Callable[..., nn.Module]
    description: str

    @property
    def weights_file(self) -> str:
        return f"{self.name}.safetensors"


MODELS: dict[str, ModelSpec] = {
    spec.name: spec
    for spec in (
        ModelSpec("hyperprior", 1, HyperpriorModel, "mean-scale hyperprior (Ballé 2018, Minnen 2018)"),
        ModelSpec("context", 2, ContextModel, "joint autoregressive + hierarchical prior (Minnen 2018), wavefront decoding"),
        ModelSpec("reference", 3, ReferenceModel, "global reference + context + hyperprior with GSDN (Qian et al. 2021)"),
        ModelSpec("hierarchical", 4, HierarchicalModel, "hierarchical latents y4/y3/y2 with layer-dependent transmission (HC, Ge et al.)"),
        ModelSpec("coarse2fine", 5, Coarse2FineModel, "coarse-to-fine two-layer hyperprior with information aggregation (Hu et al. 2020)"),
    )
}


def model_by_name(name: str) -> ModelSpec:
    try:
        return MODELS[name]
    except KeyError:
        raise ModelError(f"unknown model '{name}' (available: {', '.join(MODELS)})") from None


def model_by_id(model_id: int) -> ModelSpec:
    for spec in MODELS.values():
        if spec.model_id == model_id:
            return spec
    raise ModelError(f"file was made by an unknown model (id {model_id}); this lic knows {', '.join(MODELS)}")


def build_model(spec: ModelSpec, config: dict | None = None) -> nn.Module:
    """An untrained model of `spec` with the given config (N, M, lambdas...)."""
    config = dict(config or {})
    if "lambdas" in config:
        config["lambdas"] = tuple(config["lambdas"])
    return spec.factory(**config)


def weights_path(spec: ModelSpec) -> Path:
    """Where the weights of `spec` are: $LIC_WEIGHTS_DIR if set, else the installed package data."""
    override = os.environ.get(WEIGHTS_ENV)
    if override:
        path = Path(override) / spec.weights_file
    else:
        path = Path(str(importlib.resources.files("lccodec.weights") / spec.weights_file))
    if not path.is_file():
        raise ModelError(f"no weights for model '{spec.name}' (looked for {path})")
    return path
