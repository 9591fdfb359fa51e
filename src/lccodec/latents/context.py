"""Joint autoregressive + hierarchical prior (Minnen, Ballé, Toderici 2018), coded by wavefront.

::

    y ─h_a─► z ─► ẑ ──[factorized tables]──► z stream          (HyperLatent, as the hyperprior)
                  │
                  exact h_s ─► hyper features (2M)
                                     │
    ŷ so far ─ masked 5×5 conv ─► ctx ┤ concat
                                     ▼
                1×1 entropy parameters ─► μ, σ-index
                                     ▼
    r = round(y − μ) in wavefront order ──[Gaussian tables by σ-index]──► y stream
    ŷ = r + μ

The context path sees the decoded latents as the integers r·256 + μ_int, so everything that
decides a probability is integer arithmetic: :class:`ContextPredictor` evaluates the masked
convolution and the 1×1 stack in fixed point per wavefront step (:mod:`lccodec.exact.wavefront`
schedules the steps: latents with equal 3·row + col are coded together).
"""
from __future__ import annotations

from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..coding import EscapeReader, EscapeWriter
from ..container import STREAM_Y, STREAM_Z, Stream
from ..exact.fixed_point import ACT_BITS, LIMIT, ExactMatrix, FixedPointLayer, exact_stack, run_stack, shift_round_rows, tap_matrix
from ..exact.wavefront import (
    HALF, KERNEL, TAPS, Grid, Predictor, decode_wavefront, encode_wavefront, hyper_rows,
)
from ..layers import TapConv
from .base import CodedLatents, LatentLikelihoods, expect_streams, latent_shape, lower_bound, rate_likelihood, refuse_params, ste_round, uniform_noise
from .gaussian import GaussianConditional, build_tables_beside, load_gaussian_tables
from .hyperprior import FLAGS, Y_STRIDE, HyperLatent, check_flags


def context_convolution(M: int) -> TapConv:
    """The masked 5×5 context convolution M -> 2M (type A, centre excluded): only its 12 causal
    taps (:data:`TAPS`) are parameters, so a weights file stores no zeros."""
    return TapConv(M, 2 * M, TAPS, KERNEL)


def taps_of_full_kernel(weight: torch.Tensor) -> torch.Tensor:
    """(cout, cin, 5, 5) masked kernel -> (cout, cin, 12) taps: weights files written before the
    context convolution stored its taps alone hold the full kernel (zeros outside the taps)."""
    return torch.stack([weight[:, :, HALF + dr, HALF + dc] for dr, dc in TAPS], 2)


def entropy_parameters(M: int) -> nn.Sequential:
    """The 1×1 stack [ctx (2M), hyper (2M)] -> (μ, σ) (2M) with ReLU between."""
    return nn.Sequential(
        nn.Conv2d(4 * M, M * 10 // 3, 1), nn.ReLU(),
        nn.Conv2d(M * 10 // 3, M * 8 // 3, 1), nn.ReLU(),
        nn.Conv2d(M * 8 // 3, 2 * M, 1),
    )


class ContextPredictor:
    """Fixed-point masked 5×5 conv → concat(hyper) → 1×1 stack (a :class:`Predictor`).

    Matrices are float64 numpy arrays of integers; products run through BLAS (exact, see
    :mod:`lccodec.exact.fixed_point`), which is fast for the few rows of one wavefront step.
    """

    def __init__(self, context_conv: TapConv, entropy_parameters: nn.Sequential) -> None:
        w = context_conv.full_weight().detach().to(torch.float16).cpu().float()
        self.channels = m = w.shape[1]
        self.ctx = ExactMatrix(tap_matrix(w, TAPS, KERNEL), context_conv.bias.detach().cpu(), relu=False)
        masked = nn.Conv2d(m, w.shape[0], KERNEL, padding=HALF)
        with torch.no_grad():
            masked.weight.copy_(w)
            masked.bias.copy_(context_conv.bias.detach().cpu())
        self.conv_weight = FixedPointLayer(masked, ACT_BITS).weight  # (2M, M, 5, 5) for one-shot use
        self.layers = exact_stack(entropy_parameters)
        self.ctx_width = 2 * m  # rows of the first matrix that read the context; the rest, hyper

    def start(self, grid: Grid, hyper: torch.Tensor) -> "ContextStepper":
        """The per-image stepper over `grid` with hyper features (1, 2M, H, W)."""
        return ContextStepper(self, grid, hyper)

    def params(self, ctx: np.ndarray, hyper_acc: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Context rows (int64) and their hyper accumulator -> (mean_int, scale_int) rows."""
        x = run_stack(self.layers, ctx, hyper_acc)
        return x[:, : self.channels], x[:, self.channels :]

    def full(self, y_int: torch.Tensor, hyper: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """One-shot evaluation over a finished grid: y_int (1, M, H, W), hyper (1, 2M, H, W).

        A float64 convolution and unsplit matrices, yet the same integers as the steps.
        Returns (mean_int, scale_int) as (1, M, H, W) int64.
        """
        _, m, h, w = y_int.shape
        x = y_int.to("cpu", torch.int64).clamp(-LIMIT, LIMIT).to(torch.float64)
        acc = F.conv2d(x, self.conv_weight, None, 1, HALF)
        acc = acc.permute(0, 2, 3, 1).reshape(h * w, -1).numpy()
        ctx = shift_round_rows(acc, self.ctx.bias, self.ctx.shift, False)
        rows = hyper.to("cpu", torch.int64).permute(0, 2, 3, 1).reshape(h * w, -1).numpy()
        x = run_stack(self.layers, np.concatenate([ctx, rows], axis=1))
        out = torch.from_numpy(x).reshape(1, h, w, 2 * m).permute(0, 3, 1, 2).contiguous()
        return out[:, :m].contiguous(), out[:, m:].contiguous()


class ContextStepper:
    """:class:`ContextPredictor` over one image: one predict per wavefront step."""

    def __init__(self, predictor: ContextPredictor, grid: Grid, hyper: torch.Tensor) -> None:
        self.predictor, self.grid = predictor, grid
        self.hyper_acc = predictor.layers[0].partial(hyper_rows(hyper), predictor.ctx_width, None)

    def predict(self, pos: np.ndarray, padded: np.ndarray, taps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        patches = self.grid.data[taps.ravel()].reshape(taps.shape[0], -1)
        return self.predictor.params(self.predictor.ctx(patches), self.hyper_acc[pos])

    def commit(self, pos: np.ndarray, padded: np.ndarray, rows: np.ndarray) -> None:
        """Nothing to keep: the grid holds the context."""


class WavefrontLatentCodec:
    """:class:`HyperLatent` for z, then y coded by wavefront with a predictor's μ and σ.

    The context and reference codecs are this with their own predictor (and training pass).
    """

    #: What the context sees in training (a training switch; coding never reads it). "noise":
    #: y + U(−0.5, 0.5). "rounded": round(y − μ) + μ with μ from a first, noisy pass without
    #: gradient (straight-through), close to the decoder's ŷ (mixed quantisation, as in ELIC).
    context_input: str = "noise"
    #: What y's training rate is measured on: "noise" or "rounded" (see latents.base.RATE_INPUTS).
    rate_input: str = "noise"

    def __init__(self, hyper: HyperLatent, channels: int) -> None:
        self.hyper, self.channels = hyper, channels
        self.y = GaussianConditional(STREAM_Y)

    def context_view(self, y: torch.Tensor, y_noisy: torch.Tensor, mean_of: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
        """The latents the context sees in training (see :attr:`context_input`); `mean_of` maps
        a context input to the predicted μ."""
        if self.context_input == "noise":
            return y_noisy
        with torch.no_grad():
            mean = mean_of(y_noisy)
        return ste_round(y - mean) + mean

    def predictor(self, params: bytes | None = None) -> Predictor:
        raise NotImplementedError

    def stream_kinds(self, layer_flags: int) -> frozenset[int]:
        return frozenset((STREAM_Z, STREAM_Y))

    def header_params(self) -> bytes:
        return b""

    def check_params(self, params: bytes | None) -> None:
        refuse_params(params)

    def build_tables(self) -> dict[str, np.ndarray]:
        return build_tables_beside(self, self.hyper)

    def load_tables(self, arrays: dict[str, np.ndarray]) -> None:
        self.y.tables = load_gaussian_tables(arrays)
        self.hyper.load_tables(arrays)

    def compress(self, y: torch.Tensor, quality: float, escapes: EscapeWriter, layers: int | None = None) -> CodedLatents:
        """z as the hyperprior codes it, then y in wavefront order with the predictor's μ and σ."""
        check_flags(layers)
        z_stream, z_hat, features = self.hyper.compress(y, escapes)
        data, count, residual, mean_int = encode_wavefront(y, features, self.predictor(), self.y.require_tables(), escapes)
        latents = {"z_hat": z_hat, "residual": residual, "mean": mean_int.to(torch.float32) / 256.0}
        return CodedLatents([z_stream, Stream(STREAM_Y, data, count)], FLAGS, latents)

    def decompress(
        self, streams: dict[int, Stream], padded_hw: tuple[int, int], escapes: EscapeReader,
        layer_flags: int | None = None, params: bytes | None = None,
    ) -> dict[str, torch.Tensor]:
        """ẑ, then y step by step: z_hat, residual (int64), mean (float32), index (int64)."""
        self.check_params(params)
        check_flags(layer_flags)
        predictor = self.predictor(params)
        z_shape = self.hyper.shape(padded_hw)
        expect_streams(streams, {STREAM_Z: z_shape, STREAM_Y: latent_shape(padded_hw, self.channels, Y_STRIDE)})
        z_hat, features = self.hyper.decompress(streams[STREAM_Z], z_shape, escapes)
        residual, mean_int, index = decode_wavefront(
            streams[STREAM_Y].data, features, predictor, self.channels, self.y.require_tables(), escapes,
        )
        return {"z_hat": z_hat, "residual": residual, "mean": mean_int.to(torch.float32) / 256.0, "index": index}


class ContextLatentCodec(WavefrontLatentCodec):
    """The context model's latent codec: hyper + masked-convolution context, wavefront coded."""

    def __init__(self, hyper: HyperLatent, context_prediction: TapConv, entropy_parameters: nn.Sequential) -> None:
        super().__init__(hyper, context_prediction.weight.shape[1])
        self.context_prediction, self.entropy_parameters = context_prediction, entropy_parameters
        self._predictor: ContextPredictor | None = None

    def predictor(self, params: bytes | None = None) -> ContextPredictor:
        if self._predictor is None:
            self._predictor = ContextPredictor(self.context_prediction, self.entropy_parameters)
        return self._predictor

    def load_tables(self, arrays: dict[str, np.ndarray]) -> None:
        super().load_tables(arrays)
        self._predictor = None

    def likelihoods(self, y: torch.Tensor, quality: torch.Tensor | None = None) -> LatentLikelihoods:
        """The context sees y + uniform noise (or ŷ, see :attr:`context_input`): the decoder's
        ŷ = round(y − μ) + μ differs from y by an error in [−0.5, 0.5] that noise models (μ is not
        known before the context). The rate is what :attr:`rate_input` says."""
        z_lik, hyper = self.hyper.likelihoods(y)
        y_noisy = uniform_noise(y)

        def params(y_in: torch.Tensor) -> torch.Tensor:
            return self.entropy_parameters(torch.cat([self.context_prediction(y_in), hyper], dim=1))

        mean, scale = params(self.context_view(y, y_noisy, lambda v: params(v).chunk(2, dim=1)[0])).chunk(2, dim=1)
        y_lik = rate_likelihood(y, mean, lower_bound(scale), self.rate_input, y_noisy)
        return LatentLikelihoods({"y": y_lik, "z": z_lik}, {"y": ste_round(y - mean) + mean})
