"""Hierarchical latents with layer-dependent transmission (HC model, after Ge et al.).

::

    x ─g_a[0:4]─► h/4 ─g_a[4:6]─► h/8 ─g_a[6]─► y4 (M, /16)
                   │               │
                 head2           head3          each ×gain_k(q), then
                   ▼               ▼            [HierarchicalLatentCodec: ẑ; y4 | h_s(ẑ);
                y2 (4, /4)     y3 (16, /8)       y3 | c3(ŷ4); y2 | c2(c3 features, ŷ3)]
    x̂ = g_s[4:](g_s[2:4](g_s[0:2](ŷ4) + inject3(ŷ3)) + inject2(ŷ2))   (each ŷ ×1/gain_k(q))

Which layers a file carries is a rule of the quality (y4 always, y3 from quality 4, y2 from 6);
the decoder accepts any announced subset. Latents: :mod:`lccodec.latents.hierarchical`.
"""
from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ..exact import ACT_BITS
from ..latents.hierarchical import C2, C3, ConditionalNetworks, HierarchicalLatentCodec
from ..latents.hyperprior import HyperLatent, hyper_synthesis
from ..layers import LINEAR_SCALE, QualityGain, conv
from ..tiling import run_tiled
from .base import (
    ANALYSIS_HALO, ANALYSIS_TILE, LAMBDAS, SYNTHESIS_HALO, SYNTHESIS_TILE, HyperpriorBase, quality_tensor,
    warm_start_light_h_s,
)

ONE = float(1 << ACT_BITS)


class HierarchicalModel(HyperpriorBase, model="hierarchical"):
    """Variable-rate HC model: latents y4, y3, y2 with hierarchical conditional entropy."""

    # y3 and y2 come from analysis heads of its own (head3, head2 and their gains): trained with
    # the rate alone they would learn to carry nothing, so HC trains with the full loss
    heads_on_frozen_transforms = False

    def __init__(
        self, N: int = 128, M: int = 192, K: int = 96, K3: int = 96, K2: int = 64,
        lambdas: tuple[float, ...] = LAMBDAS, linear_path: bool = False,
    ) -> None:
        super().__init__(N, M, lambdas, linear_path=linear_path)
        self.config.update({"K": K, "K3": K3, "K2": K2})
        L = len(lambdas)
        self.h_s = hyper_synthesis(N, M, hidden=K)
        self.head3 = conv(N, C3, 3, 1)
        self.head2 = conv(N, C2, 3, 1)
        self.gain3, self.inv_gain3 = QualityGain(L, C3), QualityGain(L, C3)
        self.gain2, self.inv_gain2 = QualityGain(L, C2), QualityGain(L, C2)
        nets = ConditionalNetworks(M, K3, K2)
        self.c3, self.c3_head, self.c2 = nets.c3, nets.c3_head, nets.c2
        self.inject3 = conv(C3, N, 3, 1)
        self.inject2 = conv(C2, N, 3, 1)
        for m in (self.inject3, self.inject2):  # start as the plain hyperprior synthesis
            nn.init.zeros_(m.weight)
            nn.init.zeros_(m.bias)
        self.latent_codec = HierarchicalLatentCodec(HyperLatent(self.h_a, self.h_s, self.z_density, N), nets, M)

    def warm_start(self, weights: str | Path) -> list[str]:
        """From a hyperprior weights file: same-shaped tensors, h_s pruned to K hidden channels
        (the injections start at zero, so the model starts as that hyperprior)."""
        return warm_start_light_h_s(self, str(weights))

    # -------------------------------------------------------------- transforms
    def layered_analysis(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(y4, y3, y2) of an image, before the gains."""
        h = self.g_a[0:4](x)
        y2 = self.head2(h)
        h = self.g_a[4:6](h)
        y4 = self.g_a[6](h)
        if self.g_a_linear is not None:
            y4 = y4 + self.g_a_linear(x)
        return y4, self.head3(h), y2

    def layered_synthesis(self, y4: torch.Tensor, y3: torch.Tensor, y2: torch.Tensor) -> torch.Tensor:
        """x̂ from (ŷ4, ŷ3, ŷ2) after the inverse gains."""
        s = self.g_s[0:2](y4 if self.g_s_linear is None else y4 * (1.0 / LINEAR_SCALE)) + self.inject3(y3)
        s = self.g_s[2:4](s) + self.inject2(y2)
        x = self.g_s[4:](s)
        return x if self.g_s_linear is None else x + self.g_s_linear(y4)

    def _pack(self, y4: torch.Tensor, y3: torch.Tensor, y2: torch.Tensor) -> torch.Tensor:
        """The three latents as one tensor at 1/16 scale (pixel-unshuffled), for tiling."""
        return torch.cat([y4, F.pixel_unshuffle(y3, 2), F.pixel_unshuffle(y2, 4)], dim=1)

    def _unpack(self, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        M = self.config["M"]
        return t[:, :M], F.pixel_shuffle(t[:, M : M + 4 * C3], 2), F.pixel_shuffle(t[:, M + 4 * C3 :], 4)

    def _gains(self, quality: torch.Tensor, inverse: bool = False) -> tuple[torch.Tensor, ...]:
        mods = (self.inv_gain, self.inv_gain3, self.inv_gain2) if inverse else (self.gain, self.gain3, self.gain2)
        out = []
        for m in mods:
            g = m(quality)
            out.append(g.view(*g.shape[:-1], -1, 1, 1) if g.dim() == 2 else g.view(1, -1, 1, 1))
        return tuple(out)

    @torch.no_grad()
    def analyze(self, x: torch.Tensor) -> torch.Tensor:
        """(y4, y3, y2) of a padded image, packed at 1/16 scale (quality-independent)."""
        return run_tiled(lambda t: self._pack(*self.layered_analysis(t)), x, Fraction(1, 16), ANALYSIS_TILE, ANALYSIS_HALO)

    def apply_gain(self, analysis: torch.Tensor | tuple, quality: float | torch.Tensor) -> tuple[torch.Tensor, ...]:
        """(y4, y3, y2) times their gains, from a packed analysis or the three latents."""
        ys = self._unpack(analysis) if isinstance(analysis, torch.Tensor) else analysis
        gains = self._gains(quality_tensor(quality, ys[0].device))
        return tuple(y * g for y, g in zip(ys, gains))

    def synthesize(self, latents: dict[str, torch.Tensor], quality: float, device: torch.device) -> torch.Tensor:
        ys = [((latents[f"r{n}"] * (1 << ACT_BITS) + latents[f"mean{n}"]).to(torch.float32) / ONE).to(device) for n in "432"]
        ys = [y * g for y, g in zip(ys, self._gains(quality_tensor(quality, device), inverse=True))]
        packed = self._pack(*ys).contiguous(memory_format=torch.channels_last)
        x = run_tiled(lambda t: self.layered_synthesis(*self._unpack(t)), packed, 16, SYNTHESIS_TILE, SYNTHESIS_HALO)
        return x.clamp_(0.0, 1.0)

    def forward(self, x: torch.Tensor, quality: torch.Tensor) -> dict:
        """Training pass: x in [0, 1], quality (B,). Layers absent at a quality cost no rate
        and are replaced by their predicted mean, as in the codec."""
        ys = self.apply_gain(self.layered_analysis(x), quality)
        rates = self.likelihoods(ys, quality)
        i4, i3, i2 = self._gains(quality, inverse=True)
        hats = rates.hats
        x_hat = self.layered_synthesis(hats["y4"] * i4, hats["y3"] * i3, hats["y2"] * i2)
        return {"x_hat": x_hat, **rates.as_output()}
