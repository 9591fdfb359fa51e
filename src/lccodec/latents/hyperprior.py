"""The mean-scale hyperprior (Ballé et al. 2018; Minnen et al. 2018): side information ẑ gives
μ and σ of every y.

::

    y ─h_a─► z ──round──► ẑ ──[factorized tables]──► z stream          (HyperLatent)
                          │
             exact h_s (fixed point, CPU) ─► hyper features (μ, σ) ─► σ-index
                                                     ▼
             r = round(y − μ) ──[Gaussian tables by σ-index]──► y stream   (GaussianConditional)
             ŷ = r + μ

:class:`HyperLatent` (z and the hyper features) is shared by the context and reference codecs,
which replace the y part. Only integers decide probabilities: ẑ, the fixed-point output of h_s
and the stored tables.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from ..coding import EscapeReader, EscapeWriter
from ..container import LAYER_Y, LAYER_Z, STREAM_Y, STREAM_Z, Stream
from ..entropy_models import FactorizedDensity
from ..errors import FormatError
from ..exact import ExactNet
from .base import CodedLatents, LatentLikelihoods, expect_streams, latent_shape, refuse_params
from .factorized import FactorizedLatent
from .gaussian import GaussianConditional, build_tables_beside, load_gaussian_tables

Z_STRIDE, Y_STRIDE = 64, 16  # of the padded image: z at 1/64, y at 1/16
FLAGS = LAYER_Z | LAYER_Y


def hyper_analysis(N: int, M: int) -> nn.Sequential:
    """h_a: y (M, 1/16) -> z (N, 1/64)."""
    from ..layers import conv

    return nn.Sequential(
        conv(M, N, 3, 1), nn.LeakyReLU(inplace=True), conv(N, N), nn.LeakyReLU(inplace=True), conv(N, N),
    )


def hyper_synthesis(N: int, M: int, hidden: int | None = None) -> nn.Sequential:
    """h_s: ẑ (N, 1/64) -> (μ, σ) of y (2M, 1/16); hidden width 3M/2 unless given (lighter)."""
    from ..layers import conv, deconv

    k = M * 3 // 2 if hidden is None else hidden
    return nn.Sequential(deconv(N, M), nn.ReLU(), deconv(M, k), nn.ReLU(), conv(k, 2 * M, 3, 1))


class HyperLatent:
    """z = h_a(y), coded factorized, and the hyper features h_s(ẑ) it gives (fixed point)."""

    def __init__(self, h_a: nn.Module, h_s: nn.Sequential, density: FactorizedDensity, channels: int) -> None:
        self.h_a, self.h_s, self.channels = h_a, h_s, channels
        self.z = FactorizedLatent(density, STREAM_Z)
        self._exact_h_s: ExactNet | None = None

    @property
    def exact_h_s(self) -> ExactNet:
        if self._exact_h_s is None:
            self._exact_h_s = ExactNet(self.h_s)
        return self._exact_h_s

    def shape(self, padded_hw: tuple[int, int]) -> tuple[int, ...]:
        return latent_shape(padded_hw, self.channels, Z_STRIDE)

    def likelihoods(self, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Training: (p(z), hyper features h_s(ẑ) as floats)."""
        z_lik, z_hat = self.z.likelihood(self.h_a(y))
        return z_lik, self.h_s(z_hat)

    def compress(self, y: torch.Tensor, escapes: EscapeWriter) -> tuple[Stream, torch.Tensor, torch.Tensor]:
        """(z stream, ẑ, exact hyper features) of y (on any device)."""
        z_hat = torch.round(self.h_a(y)).cpu().to(torch.int64)
        stream, z_hat = self.z.compress(z_hat, escapes)
        return stream, z_hat, self.exact_h_s(z_hat)

    def decompress(self, stream: Stream, shape: tuple[int, ...], escapes: EscapeReader) -> tuple[torch.Tensor, torch.Tensor]:
        """(ẑ, exact hyper features) from the z stream."""
        z_hat = self.z.decompress(stream, shape, escapes)
        return z_hat, self.exact_h_s(z_hat)

    def build_tables(self) -> dict[str, np.ndarray]:
        return self.z.build_tables()

    def load_tables(self, arrays: dict[str, np.ndarray]) -> None:
        self.z.load_tables(arrays)
        self._exact_h_s = None


def check_flags(layer_flags: int | None, valid: int = FLAGS) -> None:
    """Files of the hyperprior-shaped codecs carry layers z and y, nothing else."""
    if layer_flags is not None and layer_flags != valid:
        raise FormatError(f"corrupt: layer flags {layer_flags:#x} are not valid for this model (it writes z|y, {valid:#x})")


class HyperpriorLatentCodec:
    """The hyperprior's latent codec: :class:`HyperLatent` + a :class:`GaussianConditional` y."""

    #: What y's training rate is measured on: "noise" or "rounded" (see latents.base.RATE_INPUTS).
    rate_input: str = "noise"

    def __init__(self, hyper: HyperLatent, channels: int) -> None:
        self.hyper, self.channels = hyper, channels
        self.y = GaussianConditional(STREAM_Y)

    def stream_kinds(self, layer_flags: int) -> frozenset[int]:
        return frozenset((STREAM_Z, STREAM_Y))

    def header_params(self) -> bytes:
        return b""

    # ----------------------------------------------------------------- training
    def likelihoods(self, y: torch.Tensor, quality: torch.Tensor | None = None) -> LatentLikelihoods:
        z_lik, params = self.hyper.likelihoods(y)
        y_lik, y_hat = self.y.likelihood(y, params, self.rate_input)
        return LatentLikelihoods({"y": y_lik, "z": z_lik}, {"y": y_hat})

    # ------------------------------------------------------------------- tables
    def build_tables(self) -> dict[str, np.ndarray]:
        return build_tables_beside(self, self.hyper)

    def load_tables(self, arrays: dict[str, np.ndarray]) -> None:
        self.y.tables = load_gaussian_tables(arrays)
        self.hyper.load_tables(arrays)

    # ------------------------------------------------------------------- coding
    def entropy_params(self, z_hat: torch.Tensor) -> tuple[torch.Tensor, np.ndarray]:
        """Exact mean (float32, a multiple of 2^-ACT_BITS) and scale-table index of every y."""
        mean_int, index = self.y.params(self.hyper.exact_h_s(z_hat))
        return mean_int.to(torch.float32) / 256.0, index

    def compress(self, y: torch.Tensor, quality: float, escapes: EscapeWriter, layers: int | None = None) -> CodedLatents:
        check_flags(layers)
        z_stream, z_hat, features = self.hyper.compress(y, escapes)
        mean_int, index = self.y.params(features)
        y_stream, residual = self.y.compress(y.cpu(), mean_int, index, escapes)
        latents = self._latents(z_hat, residual, mean_int, index)
        return CodedLatents([z_stream, y_stream], FLAGS, latents)

    def decompress(
        self, streams: dict[int, Stream], padded_hw: tuple[int, int], escapes: EscapeReader,
        layer_flags: int | None = None, params: bytes | None = None,
    ) -> dict[str, torch.Tensor]:
        """ẑ and the y residuals (z_hat, residual int64; mean float32; index int64)."""
        refuse_params(params)
        check_flags(layer_flags)
        z_shape = self.hyper.shape(padded_hw)
        y_shape = latent_shape(padded_hw, self.channels, Y_STRIDE)
        expect_streams(streams, {STREAM_Z: z_shape, STREAM_Y: y_shape})
        z_hat, features = self.hyper.decompress(streams[STREAM_Z], z_shape, escapes)
        mean_int, index = self.y.params(features)
        residual = self.y.decompress(streams[STREAM_Y], index, y_shape, escapes)
        return self._latents(z_hat, residual, mean_int, index)

    @staticmethod
    def _latents(z_hat: torch.Tensor, residual: torch.Tensor, mean_int: torch.Tensor, index: np.ndarray) -> dict:
        return {
            "z_hat": z_hat,
            "residual": residual,
            "mean": mean_int.to(torch.float32) / 256.0,
            "index": torch.from_numpy(index).view(*residual.shape),
        }
