"""A latent coded with one learned table per channel (the factorized prior of Ballé et al. 2018).

::

    z ──round──► ẑ ──[table of its channel]──► stream        (training: p(z + noise) per channel)

Used for the top hyper-latent of every model (ẑ; coarse2fine's ẑ2). Symbols are in (channel,
row, column) order, grouped by table (= channel) as in :mod:`lccodec.coding.indexed`.
"""
from __future__ import annotations

import numpy as np
import torch

from ..coding import CdfTables, EscapeReader, EscapeWriter, build_factorized_tables, decode_indexed, encode_indexed
from ..container import STREAM_NAMES, Stream
from ..entropy_models import FactorizedDensity
from ..errors import ModelError
from .base import ste_round, uniform_noise

Z_GRID = 255  # tables are built from the density on -Z_GRID..Z_GRID


class FactorizedLatent:
    """Codes an integer latent (1, C, H, W) with the per-channel tables `prefix` of the weights."""

    def __init__(self, density: FactorizedDensity, kind: int, prefix: str = "z") -> None:
        self.density, self.kind, self.prefix = density, kind, prefix
        self.tables: CdfTables | None = None

    # ----------------------------------------------------------------- training
    def likelihood(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(p(z + noise), ẑ straight-through) of a training batch."""
        return self.density.likelihood(uniform_noise(z)), ste_round(z)

    # ------------------------------------------------------------------- tables
    def build_tables(self) -> dict[str, np.ndarray]:
        pmf = self.density.pmf_grid(-Z_GRID, Z_GRID)
        return build_factorized_tables(pmf, -Z_GRID).as_arrays(self.prefix)

    def load_tables(self, arrays: dict[str, np.ndarray]) -> None:
        self.tables = CdfTables.from_arrays(arrays, self.prefix)

    def require_tables(self) -> CdfTables:
        if self.tables is None:
            raise ModelError("no entropy tables: load weights or build_tables() first")
        return self.tables

    # ------------------------------------------------------------------- coding
    @staticmethod
    def index(shape: tuple[int, ...]) -> np.ndarray:
        """The table of every symbol: its channel, in (channel, row, column) order."""
        c, h, w = shape[1:]
        return np.repeat(np.arange(c), h * w)

    def compress(self, z_hat: torch.Tensor, escapes: EscapeWriter) -> tuple[Stream, torch.Tensor]:
        """(the stream, ẑ as the decoder will see it) of an integer latent."""
        values = z_hat.detach().cpu().to(torch.int64).numpy().ravel()
        data, count = encode_indexed(values, self.index(z_hat.shape), self.require_tables(), escapes)
        return Stream(self.kind, data, count), self._as_tensor(values, tuple(z_hat.shape))

    def decompress(self, stream: Stream, shape: tuple[int, ...], escapes: EscapeReader) -> torch.Tensor:
        """ẑ (int64, `shape`) from its stream (whose symbol count the caller has checked); the
        stream must end with its last symbol."""
        values = decode_indexed(stream.data, self.index(shape), self.require_tables(), escapes, STREAM_NAMES[self.kind])
        return self._as_tensor(values, shape)

    @staticmethod
    def _as_tensor(values: np.ndarray, shape: tuple[int, ...]) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(values, dtype=np.int64)).view(*shape)
