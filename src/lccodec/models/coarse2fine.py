"""Coarse-to-fine hyperprior with information aggregation (Hu, Yang, Liu 2020).

::

    x ─g_a─► ×gain(q) ─► y ─[TwoLevelHyperLatentCodec: ẑ2 factorized; ẑ1 | h_s2(ẑ2);
                              y | h_s(ẑ1)]─► z2, z, y streams
    x̂ = g_s(ŷ·inv_gain + agg1(ẑ1 + agg2(ẑ2)))      (information aggregation)

The synthesis aggregates the hyper representations of every scale, fully convolutional.
Padding stride 128. Latents: :mod:`lccodec.latents.two_level_hyper`.
"""
from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from ..entropy_models import FactorizedDensity
from ..exact import ACT_BITS
from ..latents.hyperprior import hyper_synthesis
from ..latents.two_level_hyper import TwoLevelHyperLatentCodec
from ..layers import conv, deconv
from ..tiling import run_tiled
from .base import LAMBDAS, SYNTHESIS_HALO, SYNTHESIS_TILE, HyperpriorBase, warm_start_light_h_s

ONE = float(1 << ACT_BITS)


class Coarse2FineModel(HyperpriorBase, model="coarse2fine"):
    """Variable-rate two-layer hyperprior; `z_density` codes the top layer z2."""

    stride = 128

    def __init__(
        self, N: int = 128, M: int = 192, K: int = 80, N2: int = 64, A: int = 64,
        lambdas: tuple[float, ...] = LAMBDAS, linear_path: bool = False,
    ) -> None:
        super().__init__(N, M, lambdas, linear_path=linear_path)
        self.config.update({"K": K, "N2": N2, "A": A})
        self.h_s = hyper_synthesis(N, M, hidden=K)
        self.h_a2 = nn.Sequential(conv(N, N2, 3, 1), nn.LeakyReLU(inplace=True), conv(N2, N2, 3, 2))
        self.h_s2 = nn.Sequential(deconv(N2, N, 3), nn.ReLU(), conv(N, 2 * N, 1, 1))
        self.z_density = FactorizedDensity(N2)
        self.agg2 = deconv(N2, N, 3)
        self.agg1 = nn.Sequential(deconv(N, A, 3), nn.LeakyReLU(inplace=True), deconv(A, M, 3))
        nn.init.zeros_(self.agg1[2].weight)  # start as the plain hyperprior synthesis
        nn.init.zeros_(self.agg1[2].bias)
        self.latent_codec = TwoLevelHyperLatentCodec(
            self.h_a, self.h_s, self.h_a2, self.h_s2, self.z_density, {"y": M, "z1": N, "z2": N2}
        )

    def warm_start(self, weights: str | Path) -> list[str]:
        """From a hyperprior weights file: same-shaped tensors, h_s pruned to K hidden channels
        (the aggregation starts at zero, so the model starts as that hyperprior's synthesis)."""
        return warm_start_light_h_s(self, str(weights))

    def synthesize(self, latents: dict[str, torch.Tensor], quality: float, device: torch.device) -> torch.Tensor:
        def real(name: str) -> torch.Tensor:
            return ((latents[f"r_{name}"] * (1 << ACT_BITS) + latents[f"mean_{name}"]).to(torch.float32) / ONE).to(device)

        agg = self.agg1(real("z1") + self.agg2(latents["z2_hat"].to(device, torch.float32)))
        y_in = (self.inverse_gain(real("y"), quality) + agg).contiguous(memory_format=torch.channels_last)
        return run_tiled(self.synthesis, y_in, 16, SYNTHESIS_TILE, SYNTHESIS_HALO).clamp_(0.0, 1.0)

    def forward(self, x: torch.Tensor, quality: torch.Tensor) -> dict:
        y = self.apply_gain(self.analysis(x), quality)
        rates = self.likelihoods(y, quality)
        hats = rates.hats
        agg = self.agg1(hats["z1"] + self.agg2(hats["z2"]))
        return {"x_hat": self.synthesis(self.inverse_gain(hats["y"], quality) + agg), **rates.as_output()}
