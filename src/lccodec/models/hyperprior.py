"""Mean-scale hyperprior model (Ballé et al. 2018; Minnen et al. 2018 without context).

::

    x ─g_a─► ×gain(q) ─► y ─[HyperpriorLatentCodec: ẑ factorized, y | exact h_s(ẑ)]─► z, y streams
    x̂ ◄─g_s─ ×1/gain(q) ◄─ ŷ = r + μ

Transforms: :class:`~lccodec.models.base.HyperpriorBase`. Latents:
:mod:`lccodec.latents.hyperprior`.
"""
from __future__ import annotations

from ..latents.hyperprior import HyperLatent, HyperpriorLatentCodec
from .base import LAMBDAS, HyperpriorBase


class HyperpriorModel(HyperpriorBase, model="hyperprior"):
    """Variable-rate mean-scale hyperprior."""

    def __init__(
        self, N: int = 128, M: int = 192, lambdas: tuple[float, ...] = LAMBDAS, gsdn: bool = False,
        linear_path: bool = False,
    ) -> None:
        super().__init__(N, M, lambdas, gsdn=gsdn, linear_path=linear_path)
        self.latent_codec = HyperpriorLatentCodec(HyperLatent(self.h_a, self.h_s, self.z_density, N), M)
