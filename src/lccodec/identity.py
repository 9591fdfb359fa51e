"""Every model's identity: its stable name, numeric id, header-params layout and description.

This table is the one place they are written. The container (``lic info``) reads it without
torch; each model class takes its name and id from it (:class:`lccodec.models.base.LicModel`);
the registry (:mod:`lccodec.models.registry`) maps each identity to its class. Ids are recorded
in every .lic file: never reuse or renumber one; a new model takes the next free id.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass

from .errors import ModelError


@dataclass(frozen=True)
class ParamsLayout:
    """The layout of a model's header params: a little-endian struct and its field names."""

    fmt: str
    names: tuple[str, ...]

    @property
    def size(self) -> int:
        return struct.calcsize(self.fmt)

    def pack(self, *values: int) -> bytes:
        return struct.pack(self.fmt, *values)

    def unpack(self, params: bytes) -> dict[str, int] | None:
        """The named fields of `params`, or None when the length does not fit the layout."""
        if len(params) != self.size:
            return None
        return dict(zip(self.names, struct.unpack(self.fmt, params)))


@dataclass(frozen=True)
class ModelIdentity:
    """What a .lic file and a weights file record about a model."""

    name: str
    model_id: int
    description: str
    params: ParamsLayout | None = None  # None: the model's files carry no params


IDENTITIES: tuple[ModelIdentity, ...] = (
    ModelIdentity("hyperprior", 1, "mean-scale hyperprior (Ballé 2018, Minnen 2018)"),
    ModelIdentity("context", 2, "joint autoregressive + hierarchical prior (Minnen 2018), wavefront decoding"),
    ModelIdentity("reference", 3, "global reference + context + hyperprior with GSDN (Qian et al. 2021)",
                  ParamsLayout("<HH", ("search_window_rows", "search_window_cols"))),
    ModelIdentity("hierarchical", 4, "hierarchical latents y4/y3/y2 with layer-dependent transmission (HC, Ge et al.)"),
    ModelIdentity("coarse2fine", 5, "coarse-to-fine two-layer hyperprior with information aggregation (Hu et al. 2020)"),
)

BY_NAME: dict[str, ModelIdentity] = {i.name: i for i in IDENTITIES}
BY_ID: dict[int, ModelIdentity] = {i.model_id: i for i in IDENTITIES}
assert len(BY_NAME) == len(BY_ID) == len(IDENTITIES), "model names and ids must be unique"


def identity(name: str) -> ModelIdentity:
    """The identity of model `name`; an unknown name is a ModelError."""
    try:
        return BY_NAME[name]
    except KeyError:
        raise ModelError(f"unknown model '{name}' (available: {', '.join(BY_NAME)})") from None
