"""Two-level hyperprior (coarse-to-fine, Hu, Yang, Liu 2020): y's hyper-latent has its own hyper.

::

    y ─h_a─► z1 (N, /64) ─h_a2─► z2 (N2, /128) ─round─► ẑ2 ─[factorized]─► z2 stream
                                  exact h_s2(ẑ2) ─► μ1, σ1
             ẑ1 = round(z1 − μ1) + μ1 ─[Gaussian tables]─► z stream
             exact h_s(ẑ1·256) ─► μ, σ ;  ŷ = round(y − μ) + μ ─► y stream

Each hyper layer's Gaussian parameters come from the coarser one; the top (z2) uses a learned
factorized density. Files carry the layer flags z2 | z | y. Only integers decide probabilities
(fixed-point h_s2, h_s; ẑ1 enters h_s as r·256 + μ_int). The synthesis also sees ẑ1 and ẑ2
(information aggregation, the model's).
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from ..coding import EscapeReader, EscapeWriter
from ..container import LAYER_Y, LAYER_Z, LAYER_Z2, STREAM_Y, STREAM_Z, STREAM_Z2, Stream
from ..entropy_models import FactorizedDensity
from ..errors import FormatError
from ..exact import ACT_BITS, ExactNet
from .base import CodedLatents, LatentLikelihoods, expect_streams, latent_shape, refuse_params
from .factorized import FactorizedLatent
from .gaussian import GaussianConditional, build_tables_beside, load_gaussian_tables
from .hyperprior import Y_STRIDE, Z_STRIDE

FLAGS = LAYER_Z2 | LAYER_Z | LAYER_Y
Z2_STRIDE = 128


class TwoLevelHyperLatentCodec:
    """z2 factorized → z1 | ẑ2 Gaussian → y | ẑ1 Gaussian; networks are the model's."""

    #: What y's training rate is measured on: "noise" or "rounded" (see latents.base.RATE_INPUTS).
    rate_input: str = "noise"

    def __init__(
        self, h_a: nn.Module, h_s: nn.Sequential, h_a2: nn.Module, h_s2: nn.Sequential,
        density: FactorizedDensity, channels: dict[str, int],
    ) -> None:
        """`channels`: of "y" (M), "z1" (N) and "z2" (N2)."""
        self.h_a, self.h_s, self.h_a2, self.h_s2 = h_a, h_s, h_a2, h_s2
        self.channels = channels
        self.z2 = FactorizedLatent(density, STREAM_Z2)
        self.layers = {"z1": GaussianConditional(STREAM_Z), "y": GaussianConditional(STREAM_Y)}
        self._exact_h_s2: ExactNet | None = None
        self._exact_h_s1: ExactNet | None = None

    def shapes(self, padded_hw: tuple[int, int]) -> dict[int, tuple[int, ...]]:
        c = self.channels
        return {
            STREAM_Z2: latent_shape(padded_hw, c["z2"], Z2_STRIDE),
            STREAM_Z: latent_shape(padded_hw, c["z1"], Z_STRIDE),
            STREAM_Y: latent_shape(padded_hw, c["y"], Y_STRIDE),
        }

    def stream_kinds(self, layer_flags: int) -> frozenset[int]:
        return frozenset((STREAM_Z2, STREAM_Z, STREAM_Y))

    def header_params(self) -> bytes:
        return b""

    # ----------------------------------------------------------------- training
    def likelihoods(self, y: torch.Tensor, quality: torch.Tensor | None = None) -> LatentLikelihoods:
        z1 = self.h_a(y)
        z2_lik, z2_hat = self.z2.likelihood(self.h_a2(z1))
        z1_lik, z1_hat = GaussianConditional.likelihood(z1, self.h_s2(z2_hat))
        y_lik, y_hat = GaussianConditional.likelihood(y, self.h_s(z1_hat), self.rate_input)
        return LatentLikelihoods({"y": y_lik, "z": z1_lik, "z2": z2_lik}, {"y": y_hat, "z1": z1_hat, "z2": z2_hat})

    # ------------------------------------------------------------------- tables
    def build_tables(self) -> dict[str, np.ndarray]:
        return build_tables_beside(self, self.z2)

    def load_tables(self, arrays: dict[str, np.ndarray]) -> None:
        tables = load_gaussian_tables(arrays)
        for layer in self.layers.values():
            layer.tables = tables
        self.z2.load_tables(arrays)
        self._exact_h_s2 = self._exact_h_s1 = None

    @property
    def exact_h_s2(self) -> ExactNet:
        if self._exact_h_s2 is None:
            self._exact_h_s2 = ExactNet(self.h_s2)
        return self._exact_h_s2

    @property
    def exact_h_s1(self) -> ExactNet:
        if self._exact_h_s1 is None:
            self._exact_h_s1 = ExactNet(self.h_s, in_bits=ACT_BITS)
        return self._exact_h_s1

    # ------------------------------------------------------------------- coding
    def _walk(self, z2_hat: torch.Tensor, code: Callable[[str, torch.Tensor, np.ndarray], torch.Tensor]) -> dict[str, torch.Tensor]:
        """Exact path shared by encoder and decoder: z1 from ẑ2, then y from ẑ1."""
        out = {"z2_hat": z2_hat}
        for name in ("z1", "y"):
            if name == "z1":
                params = self.exact_h_s2(z2_hat)
            else:
                params = self.exact_h_s1(out["r_z1"] * (1 << ACT_BITS) + out["mean_z1"])
            mean_int, index = self.layers[name].params(params)
            out[f"r_{name}"] = code(name, mean_int, index)
            out[f"mean_{name}"] = mean_int
            out[f"index_{name}"] = torch.from_numpy(index).view(mean_int.shape)
        return out

    def compress(self, y: torch.Tensor, quality: float, escapes: EscapeWriter, layers: int | None = None) -> CodedLatents:
        check_flags(layers)
        z1 = self.h_a(y)
        z2_hat = torch.round(self.h_a2(z1)).cpu().to(torch.int64)
        z2_stream, z2_hat = self.z2.compress(z2_hat, escapes)
        streams = [z2_stream]
        latent = {"z1": z1.float().cpu(), "y": y.cpu()}

        def code(name: str, mean_int: torch.Tensor, index: np.ndarray) -> torch.Tensor:
            stream, r = self.layers[name].compress(latent[name], mean_int, index, escapes)
            streams.append(stream)
            return r

        return CodedLatents(streams, FLAGS, self._walk(z2_hat, code))

    def decompress(
        self, streams: dict[int, Stream], padded_hw: tuple[int, int], escapes: EscapeReader,
        layer_flags: int | None = None, params: bytes | None = None,
    ) -> dict[str, torch.Tensor]:
        refuse_params(params)
        check_flags(layer_flags)
        shapes = self.shapes(padded_hw)
        expect_streams(streams, shapes)
        z2_hat = self.z2.decompress(streams[STREAM_Z2], shapes[STREAM_Z2], escapes)

        def code(name: str, mean_int: torch.Tensor, index: np.ndarray) -> torch.Tensor:
            layer = self.layers[name]
            return layer.decompress(streams[layer.kind], index, shapes[layer.kind], escapes)

        return self._walk(z2_hat, code)


def check_flags(layer_flags: int | None) -> None:
    if layer_flags is not None and layer_flags != FLAGS:
        raise FormatError(f"corrupt: layer flags {layer_flags:#06x} are not valid for the coarse2fine model (z2|z|y)")
