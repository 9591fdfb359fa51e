"""Coarse-to-fine hyperprior with information aggregation (Hu, Yang, Liu 2020).

::

    x ─g_a─► y ─h_a─► z1 (N, /64) ─h_a2─► z2 (N2, /128) ─round─► ẑ2 ─[factorized]─► z2 stream
                                           exact h_s2(ẑ2) ─► μ1, σ1
             ẑ1 = round(z1 − μ1) + μ1 ─[Gaussian tables]─► z stream
             exact h_s(ẑ1·256) ─► μ, σ ;  ŷ = round(y − μ) + μ ─► y stream
    x̂ = g_s(ŷ·inv_gain + agg1(ẑ1 + agg2(ẑ2)))      (information aggregation)

Each hyper layer's Gaussian parameters come from the coarser one; the top (z2) uses a learned
factorized density. The synthesis aggregates the hyper representations of every scale, fully
convolutional. Files carry the layer flags z2 | z | y (two hyper layers). Only integers decide
probabilities (fixed-point h_s2, h_s; ẑ1 enters h_s as r·256 + μ_int).
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from ..coding import EscapeReader, EscapeWriter, decode_indexed, encode_indexed
from ..container import LAYER_Y, LAYER_Z, LAYER_Z2, STREAM_Y, STREAM_Z, STREAM_Z2, Stream
from ..entropy_models import gaussian_likelihood
from ..errors import FormatError
from ..exact import ACT_BITS, ExactNet
from ..layers import conv, deconv
from ..tiling import run_tiled
from .hierarchical import ONE, ExactFixedNet, check_symbols, gaussian_params, light_h_s
from .hyperprior import LAMBDAS, SYNTHESIS_HALO, SYNTHESIS_TILE, HyperpriorModel, _lower_bound, _ste_round

FLAGS = LAYER_Z2 | LAYER_Z | LAYER_Y


class Coarse2FineModel(HyperpriorModel):
    """Variable-rate two-layer hyperprior; `z_density` codes the top layer z2."""

    name = "coarse2fine"
    model_id = 5
    stride = 128

    def __init__(
        self, N: int = 128, M: int = 192, K: int = 80, N2: int = 64, A: int = 64,
        lambdas: tuple[float, ...] = LAMBDAS, linear_path: bool = False,
    ) -> None:
        super().__init__(N, M, lambdas, linear_path=linear_path)
        self.config.update({"K": K, "N2": N2, "A": A})
        from ..entropy_models import FactorizedDensity

        self.h_s = light_h_s(N, M, K)
        self.h_a2 = nn.Sequential(conv(N, N2, 3, 1), nn.LeakyReLU(inplace=True), conv(N2, N2, 3, 2))
        self.h_s2 = nn.Sequential(deconv(N2, N, 3), nn.ReLU(), conv(N, 2 * N, 1, 1))
        self.z_density = FactorizedDensity(N2)
        self.agg2 = deconv(N2, N, 3)
        self.agg1 = nn.Sequential(deconv(N, A, 3), nn.LeakyReLU(inplace=True), deconv(A, M, 3))
        nn.init.zeros_(self.agg1[2].weight)  # start as the plain hyperprior synthesis
        nn.init.zeros_(self.agg1[2].bias)
        self._exact_h_s2: ExactNet | None = None
        self._exact_h_s1: ExactNet | None = None

    # ----------------------------------------------------------------- training
    def forward(self, x: torch.Tensor, quality: torch.Tensor) -> dict:
        y = self.analysis(x) * self.gain(quality)[:, :, None, None]
        z1 = self.h_a(y)
        z2 = self.h_a2(z1)
        z2_lik = self.z_density.likelihood(z2 + torch.empty_like(z2).uniform_(-0.5, 0.5))
        z2_hat = _ste_round(z2)
        mean1, scale1 = self.h_s2(z2_hat).chunk(2, dim=1)
        z1_lik = gaussian_likelihood(z1 + torch.empty_like(z1).uniform_(-0.5, 0.5), mean1, _lower_bound(scale1, 0.11))
        z1_hat = _ste_round(z1 - mean1) + mean1
        mean, scale = self.h_s(z1_hat).chunk(2, dim=1)
        y_lik = gaussian_likelihood(y + torch.empty_like(y).uniform_(-0.5, 0.5), mean, _lower_bound(scale, 0.11))
        y_hat = _ste_round(y - mean) + mean
        agg = self.agg1(z1_hat + self.agg2(z2_hat))
        x_hat = self.synthesis(y_hat * self.inv_gain(quality)[:, :, None, None] + agg)
        return {"x_hat": x_hat, "likelihoods": {"y": y_lik, "z": z1_lik, "z2": z2_lik}}

    # ------------------------------------------------------------ exact nets
    def load_tables(self, arrays: dict[str, np.ndarray]) -> None:
        super().load_tables(arrays)
        self._exact_h_s2 = self._exact_h_s1 = None

    @property
    def exact_h_s2(self) -> ExactNet:
        if self._exact_h_s2 is None:
            self._exact_h_s2 = ExactNet(self.h_s2)
        return self._exact_h_s2

    @property
    def exact_h_s1(self) -> ExactNet:
        if self._exact_h_s1 is None:
            self._exact_h_s1 = ExactFixedNet(self.h_s)
        return self._exact_h_s1

    # ---------------------------------------------------------------- the codec
    def _shapes(self, padded_hw: tuple[int, int]) -> dict[int, tuple[int, ...]]:
        h, w = padded_hw
        c = self.config
        return {
            STREAM_Z2: (1, c["N2"], h // 128, w // 128),
            STREAM_Z: (1, c["N"], h // 64, w // 64),
            STREAM_Y: (1, c["M"], h // 16, w // 16),
        }

    def _walk(self, z2_hat: torch.Tensor, code) -> dict[str, torch.Tensor]:
        """Exact path shared by encoder and decoder: z1 from ẑ2, then y from ẑ1."""
        out = {"z2_hat": z2_hat}
        for name, params in (("z1", None), ("y", None)):
            if name == "z1":
                params = self.exact_h_s2(z2_hat)
            else:
                params = self.exact_h_s1(out["r_z1"] * (1 << ACT_BITS) + out["mean_z1"])
            mean_int, index = gaussian_params(params, self.scale_bounds)
            out[f"r_{name}"] = code(name, mean_int, index)
            out[f"mean_{name}"] = mean_int
            out[f"index_{name}"] = torch.from_numpy(index).view(mean_int.shape)
        return out

    @torch.no_grad()
    def compress(
        self, analysis: torch.Tensor, quality: float, escapes: EscapeWriter, synthesize: bool = True,
    ) -> tuple[list[Stream], int, torch.Tensor | None]:
        q = torch.tensor([quality], device=analysis.device)
        y = (analysis * self.gain(q)[:, :, None, None]).float()
        z1 = self.h_a(y)
        z2_hat = torch.round(self.h_a2(z1)).cpu().to(torch.int64)
        data, count = encode_indexed(z2_hat.numpy().ravel(), self._z_index(z2_hat.shape), self.tables["z"], escapes)
        streams = [Stream(STREAM_Z2, data, count)]
        latent = {"z1": z1.float().cpu(), "y": y.cpu()}
        kinds = {"z1": STREAM_Z, "y": STREAM_Y}

        def code(name: str, mean_int: torch.Tensor, index: np.ndarray) -> torch.Tensor:
            r = torch.round(latent[name] - mean_int.to(torch.float32) / ONE).to(torch.int64)
            d, c = encode_indexed(r.numpy().ravel(), index, self.tables["y"], escapes)
            streams.append(Stream(kinds[name], d, c))
            return r

        lat = self._walk(z2_hat, code)
        x_hat = self._synthesize_latents(lat, quality, analysis.device) if synthesize else None
        return streams, FLAGS, x_hat

    def decode_latents(
        self, streams: dict[int, Stream], padded_hw: tuple[int, int], escapes: EscapeReader,
        layer_flags: int | None = None,
    ) -> dict[str, torch.Tensor]:
        if layer_flags is not None and layer_flags != FLAGS:
            raise FormatError(f"corrupt: layer flags {layer_flags:#06x} are not valid for the coarse2fine model (z2|z|y)")
        shapes = self._shapes(padded_hw)
        check_symbols(streams, shapes)
        z2 = decode_indexed(streams[STREAM_Z2].data, self._z_index(shapes[STREAM_Z2]), self.tables["z"], escapes)
        kinds = {"z1": STREAM_Z, "y": STREAM_Y}

        def code(name: str, mean_int: torch.Tensor, index: np.ndarray) -> torch.Tensor:
            r = decode_indexed(streams[kinds[name]].data, index, self.tables["y"], escapes)
            return torch.from_numpy(r).view(*shapes[kinds[name]])

        return self._walk(self._decoded_z(z2, shapes[STREAM_Z2]), code)

    def _synthesize_latents(self, lat: dict[str, torch.Tensor], quality: float, device: torch.device) -> torch.Tensor:
        def real(name: str) -> torch.Tensor:
            return ((lat[f"r_{name}"] * (1 << ACT_BITS) + lat[f"mean_{name}"]).to(torch.float32) / ONE).to(device)

        q = torch.tensor([quality], device=device)
        agg = self.agg1(real("z1") + self.agg2(lat["z2_hat"].to(device, torch.float32)))
        y_in = (real("y") * self.inv_gain(q)[:, :, None, None] + agg).contiguous(memory_format=torch.channels_last)
        return run_tiled(self.synthesis, y_in, 16, SYNTHESIS_TILE, SYNTHESIS_HALO).clamp_(0.0, 1.0)

    @torch.no_grad()
    def decompress(
        self, streams: dict[int, Stream], padded_hw: tuple[int, int], quality: float,
        escapes: EscapeReader, device: torch.device, layer_flags: int | None = None,
        params: bytes = b"",
    ) -> torch.Tensor:
        self.check_params(params)
        lat = self.decode_latents(streams, padded_hw, escapes, layer_flags)
        return self._synthesize_latents(lat, quality, device)
