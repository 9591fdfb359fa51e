"""A latent coded as residuals under a Gaussian whose mean and scale come from a fixed-point net.

::

    exact net ─► (μ_int, σ_int) ─► scale index k = first table with bounds[k] ≥ σ_int
    y ─► r = round(y − μ_int/256) ──[Gaussian table k]──► stream ;   ŷ = r + μ_int/256

(training: p(y + noise | μ, σ) and ŷ = round(y − μ) + μ straight-through). Used for y of the
hyperprior, each layer of the hierarchical model, and z1 and y of coarse2fine. Symbols are in
(channel, row, column) order, grouped by table as in :mod:`lccodec.coding.indexed`.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ..coding import (
    CdfTables,
    EscapeReader,
    EscapeWriter,
    GaussianTables,
    build_gaussian_tables,
    decode_indexed,
    encode_indexed,
)
from ..container import STREAM_NAMES, Stream
from ..entropy_models import scale_levels
from ..errors import ModelError
from ..exact.fixed_point import ACT_BITS
from .base import lower_bound, rate_likelihood, ste_round

ONE = float(1 << ACT_BITS)


def build_gaussian_arrays(prefix: str = "y") -> dict[str, np.ndarray]:
    """The Gaussian tables and their scale bounds as weights-file arrays (export time)."""
    levels = scale_levels()
    arrays = {f"{prefix}.scale_bounds": np.round(levels * (1 << ACT_BITS)).astype(np.int64)}
    arrays.update(build_gaussian_tables(levels).as_arrays(prefix))
    return arrays


def build_tables_beside(codec: Any, side: Any) -> dict[str, np.ndarray]:
    """A latent codec's build_tables: the Gaussian arrays plus those of its side latent
    (`side.build_tables()`), installed on `codec` (its load_tables) and returned."""
    arrays = build_gaussian_arrays()
    arrays.update(side.build_tables())
    codec.load_tables(arrays)
    return arrays


def load_gaussian_tables(arrays: dict[str, np.ndarray], prefix: str = "y") -> GaussianTables:
    return GaussianTables(CdfTables.from_arrays(arrays, prefix), arrays[f"{prefix}.scale_bounds"])


def split_params(out: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(μ, σ) halves of an entropy-parameter output (channels first μ, then σ)."""
    mean, scale = out.chunk(2, dim=1)
    return mean, scale


class GaussianConditional:
    """Codes one latent of kind `kind` given (μ_int, σ_int); the tables are shared per model."""

    def __init__(self, kind: int) -> None:
        self.kind = kind
        self.tables: GaussianTables | None = None

    # ----------------------------------------------------------------- training
    @staticmethod
    def likelihood(y: torch.Tensor, params: torch.Tensor, rate_input: str = "noise") -> tuple[torch.Tensor, torch.Tensor]:
        """(p(y + noise | μ, σ) or, `rate_input` "rounded", p(round(y − μ) | 0, σ); ŷ
        straight-through) for float params = (μ, σ) channels."""
        mean, scale = split_params(params)
        lik = rate_likelihood(y, mean, lower_bound(scale), rate_input)
        return lik, ste_round(y - mean) + mean

    # ------------------------------------------------------------------- coding
    def require_tables(self) -> GaussianTables:
        if self.tables is None:
            raise ModelError("no entropy tables: load weights or build_tables() first")
        return self.tables

    def params(self, out_int: torch.Tensor) -> tuple[torch.Tensor, np.ndarray]:
        """(μ_int int64, flat scale-table index) from an exact net's (μ, σ) output."""
        mean_int, scale_int = split_params(out_int)
        return mean_int.contiguous(), self.require_tables().index(scale_int.numpy())

    @staticmethod
    def residual(y: torch.Tensor, mean_int: torch.Tensor) -> torch.Tensor:
        """r = round(y − μ_int/256) (int64) of a float32 latent on the CPU."""
        return torch.round(y - mean_int.to(torch.float32) / ONE).to(torch.int64)

    def compress(
        self, y: torch.Tensor, mean_int: torch.Tensor, index: np.ndarray, escapes: EscapeWriter
    ) -> tuple[Stream, torch.Tensor]:
        """(the stream, the residuals r) of y (float32, CPU) given its exact params."""
        r = self.residual(y, mean_int)
        data, count = encode_indexed(r.numpy().ravel(), index, self.require_tables().tables, escapes)
        return Stream(self.kind, data, count), r

    def decompress(self, stream: Stream, index: np.ndarray, shape: tuple[int, ...], escapes: EscapeReader) -> torch.Tensor:
        """The residuals (int64, `shape`) from the stream (whose symbol count the caller checked);
        the stream must end with its last symbol."""
        r = decode_indexed(stream.data, index, self.require_tables().tables, escapes, STREAM_NAMES[self.kind])
        return torch.from_numpy(r).view(*shape)
