"""Joint autoregressive + hierarchical prior (Minnen, Ballé, Toderici 2018), decoded by wavefront.

::

    x ─g_a─► ×gain(q) ─► y ─[ContextLatentCodec: ẑ factorized; y | (h_s(ẑ), masked 5×5 context),
                                                  wavefront order]─► z, y streams
    x̂ ◄─g_s─ ×1/gain(q) ◄─ ŷ = r + μ

Transforms, gains, h_a, h_s and the z density have the hyperprior's shapes (a hyperprior can
warm-start this model: :func:`init_from_hyperprior`). Latents: :mod:`lccodec.latents.context`.
"""
from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from ..latents.context import ContextLatentCodec, context_convolution, entropy_parameters, taps_of_full_kernel
from ..latents.hyperprior import HyperLatent
from .base import LAMBDAS, HyperpriorBase

WARM_MEAN_OFFSET = 64.0  # init_from_hyperprior carries μ through the ReLUs as μ + this


class ContextModel(HyperpriorBase, model="context"):
    """Variable-rate joint autoregressive + hierarchical prior with exact wavefront decoding."""

    def __init__(
        self, N: int = 128, M: int = 192, lambdas: tuple[float, ...] = LAMBDAS, linear_path: bool = False
    ) -> None:
        super().__init__(N, M, lambdas, linear_path=linear_path)
        self.context_prediction = context_convolution(M)
        self.entropy_parameters = entropy_parameters(M)
        self.latent_codec = ContextLatentCodec(
            HyperLatent(self.h_a, self.h_s, self.z_density, N), self.context_prediction, self.entropy_parameters
        )

    def adapt_state(self, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Files written before the context convolution stored its taps alone hold its full
        masked 5×5 kernel: keep the taps (the same numbers, so such files decode as before)."""
        weight = state.get("context_prediction.weight")
        if weight is not None and weight.dim() == 4:
            state = {**state, "context_prediction.weight": taps_of_full_kernel(weight)}
        return state


@torch.no_grad()
def init_from_hyperprior(model: ContextModel, hyperprior_weights: str | Path) -> ContextModel:
    """Warm start: the hyperprior's transforms, gains, h_a, h_s and z density, and entropy
    parameters that initially pass the hyperprior's (μ, σ) through unchanged.

    Layer 1 carries μ + WARM_MEAN_OFFSET and σ on its first 2M units (ReLU-safe), layer 2 copies
    them, layer 3 subtracts the offset; the remaining units start random and read the context,
    and their weights into the output start at zero. Training then learns to use the context.
    """
    from ..weights_io import copy_matching, weights_state

    copy_matching(model, weights_state(hyperprior_weights))
    M = model.config["M"]
    l1, l2, l3 = (m for m in model.entropy_parameters if isinstance(m, nn.Conv2d))
    eye = torch.eye(2 * M)
    l1.weight[: 2 * M].zero_()
    l1.weight[: 2 * M, 2 * M :, 0, 0] = eye  # input = [ctx (2M), μ_h (M), σ_h (M)]
    l1.bias[:M] = WARM_MEAN_OFFSET
    l1.bias[M : 2 * M] = 0.0
    l2.weight[: 2 * M].zero_()
    l2.weight[: 2 * M, : 2 * M, 0, 0] = eye
    l2.bias[: 2 * M] = 0.0
    l3.weight.zero_()
    l3.weight[:, : 2 * M, 0, 0] = eye
    l3.bias[:M] = -WARM_MEAN_OFFSET
    l3.bias[M:] = 0.0
    model.build_tables()
    return model
