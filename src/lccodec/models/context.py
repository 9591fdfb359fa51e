"""Joint autoregressive + hierarchical prior (Minnen, Ballé, Toderici 2018), decoded by wavefront.

::

    x ─g_a─► y ─×gain(q)─► y' ─h_a─► z ──round──► ẑ ──[factorized tables]──► z stream
                            │                     │
                            │        exact h_s (fixed point) ─► hyper features (2M)
                            │                                        │
                            │   ŷ' so far ─ masked 5×5 conv (exact) ─┤ concat
                            │                                        ▼
                            │            1×1 entropy parameters (exact) ─► μ, σ-index
                            ▼
          r = round(y' − μ) in wavefront order ──[Gaussian tables by σ-index]──► y stream
          ŷ' = r + μ ─×1/gain(q)─► g_s ─► x̂

Transforms, gains, h_a, h_s and the z density have the hyperprior's shapes (a hyperprior can
warm-start this model: :func:`init_from_hyperprior`). The context path sees the decoded latents
as the integers r·256 + μ_int, so everything that decides a probability is integer arithmetic
(:mod:`lccodec.wavefront`); latents with equal 3·row + col are coded together.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..coding import EscapeReader, EscapeWriter, encode_indexed
from ..container import LAYER_Y, LAYER_Z, STREAM_Y, STREAM_Z, Stream
from ..entropy_models import gaussian_likelihood
from ..wavefront import ExactContext, causal_mask, decode_wavefront, encode_wavefront
from .hyperprior import LAMBDAS, HyperpriorModel, _lower_bound, _ste_round

WARM_MEAN_OFFSET = 64.0  # init_from_hyperprior carries μ through the ReLUs as μ + this


class MaskedConv2d(nn.Conv2d):
    """5×5 convolution that sees only the causal neighbourhood (type A, centre excluded)."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__(cin, cout, 5, padding=2)
        self.register_buffer("mask", causal_mask(), persistent=False)
        with torch.no_grad():
            self.weight.mul_(self.mask)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.weight * self.mask.to(self.weight.dtype), self.bias, padding=2)


class ContextModel(HyperpriorModel):
    """Variable-rate joint autoregressive + hierarchical prior with exact wavefront decoding."""

    name = "context"
    model_id = 2

    def __init__(
        self, N: int = 128, M: int = 192, lambdas: tuple[float, ...] = LAMBDAS, linear_path: bool = False
    ) -> None:
        super().__init__(N, M, lambdas, linear_path=linear_path)
        self.context_prediction = MaskedConv2d(M, 2 * M)
        self.entropy_parameters = nn.Sequential(
            nn.Conv2d(4 * M, M * 10 // 3, 1), nn.ReLU(),
            nn.Conv2d(M * 10 // 3, M * 8 // 3, 1), nn.ReLU(),
            nn.Conv2d(M * 8 // 3, 2 * M, 1),
        )
        self._exact_context: ExactContext | None = None

    # ----------------------------------------------------------------- training
    def forward(self, x: torch.Tensor, quality: torch.Tensor) -> dict:
        """Training pass: x in [0, 1], quality (B,) floats. Returns x_hat and likelihoods.

        The context sees y' + uniform noise: the decoder's ŷ' = round(y' − μ) + μ differs from
        y' by an error in [−0.5, 0.5] that noise models (μ is not known before the context).
        """
        y, z_lik, hyper, y_noisy = self._train_latents(x, quality)
        ctx = self.context_prediction(y_noisy)
        mean, scale = self.entropy_parameters(torch.cat([ctx, hyper], dim=1)).chunk(2, dim=1)
        scale = _lower_bound(scale, 0.11)
        y_lik = gaussian_likelihood(y_noisy, mean, scale)
        y_hat = _ste_round(y - mean) + mean
        x_hat = self.synthesis(y_hat * self.inv_gain(quality)[:, :, None, None])
        return {"x_hat": x_hat, "likelihoods": {"y": y_lik, "z": z_lik}}

    # ------------------------------------------------------------ exact context
    def load_tables(self, arrays: dict[str, np.ndarray]) -> None:
        super().load_tables(arrays)
        self._exact_context = None

    @property
    def exact_context(self) -> ExactContext:
        if self._exact_context is None:
            self._exact_context = ExactContext(self.context_prediction, self.entropy_parameters)
        return self._exact_context

    # ---------------------------------------------------------------- the codec
    @torch.no_grad()
    def compress(
        self,
        analysis: torch.Tensor,
        quality: float,
        escapes: EscapeWriter,
        synthesize: bool = True,
    ) -> tuple[list[Stream], int, torch.Tensor | None]:
        """Code the analysis of one padded image at `quality` (see HyperpriorModel.compress)."""
        return wavefront_compress(self, self.exact_context, analysis, quality, escapes, synthesize)

    def decode_latents(
        self, streams: dict[int, Stream], padded_hw: tuple[int, int], escapes: EscapeReader
    ) -> dict[str, torch.Tensor]:
        """Entropy-decode ẑ, then y step by step; everything here is exact integer work.

        Returns z_hat, residual (int64), mean (float32) and index (int64, scale-table index).
        """
        return wavefront_decode_latents(self, self.exact_context, streams, padded_hw, escapes)


def wavefront_compress(
    model: HyperpriorModel, predictor, analysis: torch.Tensor, quality: float,
    escapes: EscapeWriter, synthesize: bool,
) -> tuple[list[Stream], int, torch.Tensor | None]:
    """z as the hyperprior codes it, then y in wavefront order with `predictor` (an object
    with ``start(grid, hyper)``, see :mod:`lccodec.wavefront`) deciding μ and σ."""
    q = torch.tensor([quality], device=analysis.device)
    y = (analysis * model.gain(q)[:, :, None, None]).float()
    z_hat = torch.round(model.h_a(y)).cpu().to(torch.int64)
    z_data, z_count = encode_indexed(
        z_hat.numpy().ravel(), model._z_index(z_hat.shape), model.tables["z"], escapes
    )
    hyper = model.exact_h_s(z_hat)
    y_data, y_count, residual, mean_int = encode_wavefront(
        y, hyper, predictor, model.scale_bounds, model.tables["y"], escapes
    )
    mean = mean_int.to(torch.float32) / 256.0
    x_hat = model._synthesize(residual, mean, quality, analysis.device) if synthesize else None
    streams = [Stream(STREAM_Z, z_data, z_count), Stream(STREAM_Y, y_data, y_count)]
    return streams, LAYER_Z | LAYER_Y, x_hat


def wavefront_decode_latents(
    model: HyperpriorModel, predictor, streams: dict[int, Stream], padded_hw: tuple[int, int],
    escapes: EscapeReader,
) -> dict[str, torch.Tensor]:
    """Inverse of :func:`wavefront_compress` up to the latents: z_hat, residual (int64),
    mean (float32) and index (int64, scale-table index)."""
    z_hat, _ = model._decode_z(streams, padded_hw, escapes)
    hyper = model.exact_h_s(z_hat)
    residual, mean_int, index = decode_wavefront(
        streams[STREAM_Y].data, hyper, predictor, model.scale_bounds, model.tables["y"], escapes,
    )
    return {
        "z_hat": z_hat,
        "residual": residual,
        "mean": mean_int.to(torch.float32) / 256.0,
        "index": index,
    }


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
