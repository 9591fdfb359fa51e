"""Local context + global reference + hyperprior (Qian et al. 2021), coded by wavefront.

::

    y ─h_a─► z ─► ẑ ─[factorized]─► z stream ; exact h_s ─► hyper (2M) ──────────────────┐
    ŷ so far ─ masked 5×5 ─► ctx (2M) ─┬─► params_ctx ─► μ₁, σ₁ (confidence U)          │
                                       │                                                │
    best decoded match b of the 4-neighbour query (exact cosine search,                  │
    lccodec.exact.reference_search): S·U(b)·transfer(ŷ around b) ─► ref (M) ─► params_ref ─► μ₂, σ₂ (training)
                                       ▼                                                ▼
    r = round(y − μ₃) in wavefront order ◄── [hyper +] params_full([ctx, ref, hyper]) ─► μ₃, σ₃
    ŷ = r + μ₃

params_full predicts a correction of the hyperprior's (μ, σ) (a residual connection, so a warm
start from a hyperprior codes like it and trains stably), or, with ``hyper_residual=False``,
(μ, σ) itself, as the context model's entropy parameters do (so a warm start from a context model
codes exactly like it). The progressive entropy model trains
three predictions, context → +reference → +hyperprior, weighted by the model's rate weights;
only the last one codes bits. Everything that decides a probability is integer arithmetic
(:class:`ReferencePredictor`). The search window is the header's params (4 bytes).
"""
from __future__ import annotations

import copy
from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from ..entropy_models import gaussian_likelihood, scale_levels
from ..exact.fixed_point import LIMIT, ExactMatrix, exact_stack, run_stack, tap_matrix
from ..exact.reference_search import (
    EMBED, QUERY_TAPS, RELEVANT_TAPS, ExactSearch, Window, candidate_mask, confidence, confidence_table,
    embed_rows, train_search,
)
from ..exact.wavefront import KERNEL, TAPS, Grid, hyper_rows
from ..layers import TapConv
from .base import LatentLikelihoods, lower_bound, rate_likelihood, ste_round, uniform_noise
from .context import WavefrontLatentCodec, context_convolution
from .hyperprior import HyperLatent

QUERY_INDEX = [TAPS.index(t) for t in QUERY_TAPS]


def params_net(widths: tuple[int, ...]) -> nn.Sequential:
    """1×1 convolutions through `widths` with ReLU between."""
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(widths[:-1], widths[1:])):
        layers.append(nn.Conv2d(a, b, 1))
        if i < len(widths) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


class ReferenceNetworks:
    """The networks of the reference path (registered on the model under these names)."""

    def __init__(self, M: int, hyper_residual: bool = True) -> None:
        self.hyper_residual = hyper_residual  # params_full corrects the hyperprior's (μ, σ)
        self.context_prediction = context_convolution(M)
        self.embed = nn.Conv2d(M, EMBED, 1)
        self.transfer = TapConv(M, M, RELEVANT_TAPS, 3)
        self.params_ctx = params_net((2 * M, 2 * M, 2 * M))
        self.params_ref = params_net((3 * M, M * 7 // 3, 2 * M))
        self.params_full = params_net((5 * M, M * 10 // 3, M * 8 // 3, 2 * M))


class ReferencePredictor:
    """Fixed-point form of the reference entropy path (a wavefront :class:`Predictor`)."""

    def __init__(self, nets: ReferenceNetworks, confidence_table: np.ndarray, gaussian_bounds, window: Window) -> None:
        m = nets.context_prediction.weight.shape[1]
        self.channels = m
        # ExactMatrix rounds weights to fp16 (what ships) before fixing the point
        self.ctx = ExactMatrix(tap_matrix(nets.context_prediction.full_weight().detach().cpu(), TAPS, KERNEL),
                               nets.context_prediction.bias.cpu(), relu=False)
        self.embed = ExactMatrix(nets.embed.weight.flatten(1), nets.embed.bias, relu=False)
        self.transfer = ExactMatrix(
            tap_matrix(nets.transfer.full_weight().detach().cpu(), RELEVANT_TAPS, 3),
            nets.transfer.bias.cpu(), relu=False,
        )
        self.params_ctx = exact_stack(nets.params_ctx)
        self.params_full = exact_stack(nets.params_full)
        self.hyper_residual = nets.hyper_residual
        self.confidence = confidence_table
        self.gaussian = gaussian_bounds  # GaussianTables: the context-only scale index of U
        self.window = window

    def with_window(self, window: Window) -> "ReferencePredictor":
        """The same exact path searching `window` (a file's header may name its own)."""
        clone = copy.copy(self)
        clone.window = window
        return clone

    def start(self, grid: Grid, hyper: torch.Tensor) -> "ReferenceStepper":
        return ReferenceStepper(self, grid, hyper)


class ReferenceStepper:
    """One image: per step, context → confidence inputs → search → reference → parameters."""

    def __init__(self, ex: ReferencePredictor, grid: Grid, hyper: torch.Tensor) -> None:
        self.ex, self.grid = ex, grid
        m = ex.channels
        self.hyper = hyper_rows(hyper)
        self.hyper_acc = ex.params_full[0].partial(self.hyper, 3 * m, None)
        self.egrid = np.zeros((grid.data.shape[0], EMBED), dtype=np.float32)
        self.search = ExactSearch(grid.h, grid.w, ex.window)
        n = grid.h * grid.w
        self.moved = np.zeros((n, m), dtype=np.int32)  # transfer(ŷ' around b) (|·| < 2^24), per b
        self.conf = np.zeros(n, dtype=np.int64)  # U8 per decoded b
        self.rel_offsets = np.array([dr * grid.pw + dc for dr, dc in RELEVANT_TAPS], dtype=np.int64)
        self._pending: tuple | None = None

    def predict(self, pos: np.ndarray, padded: np.ndarray, taps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        ex, m = self.ex, self.ex.channels
        patches = self.grid.data[taps.ravel()].reshape(len(pos), -1)
        ctx = ex.ctx(patches)
        out_ctx = run_stack(ex.params_ctx, ctx)
        queries = self.egrid[taps[:, QUERY_INDEX].ravel()].reshape(len(pos), -1)
        best, s8 = self.search.find(pos, queries)
        ref = np.zeros((len(pos), m), dtype=np.int64)
        hit = best >= 0
        if hit.any():
            b = best[hit]
            weight = s8[hit] * self.conf[b]
            ref[hit] = (self.moved[b].astype(np.int64) * weight[:, None] + (1 << 15)) >> 16
        index_ctx = ex.gaussian.index(out_ctx[:, m:]).reshape(len(pos), m)
        self._pending = (out_ctx[:, :m], index_ctx, queries)
        out = run_stack(ex.params_full, np.concatenate([ctx, ref], axis=1), self.hyper_acc[pos])
        if ex.hyper_residual:  # a correction of the hyperprior's (μ, σ)
            out = out + self.hyper[pos]
        out = np.clip(out, -LIMIT, LIMIT)
        return out[:, :m], out[:, m:]

    def commit(self, pos: np.ndarray, padded: np.ndarray, rows: np.ndarray) -> None:
        ex = self.ex
        mean_ctx, index_ctx, queries = self._pending
        self.egrid[padded] = embed_rows(ex.embed(rows))
        self.search.add(pos, queries)
        self.conf[pos] = confidence(rows, mean_ctx, index_ctx, ex.confidence)
        relevant = self.grid.data[(padded[:, None] + self.rel_offsets[None, :]).ravel()]
        self.moved[pos] = ex.transfer(relevant.reshape(len(pos), -1))


class ReferenceLatentCodec(WavefrontLatentCodec):
    """The reference model's latent codec; `window` is what the encoder writes in the header."""

    def __init__(self, hyper: HyperLatent, nets: ReferenceNetworks, window: Window) -> None:
        super().__init__(hyper, nets.context_prediction.weight.shape[1])
        self.nets, self.window = nets, window
        self.confidence: np.ndarray | None = None  # integer table, from build/load_tables
        self.rate_weights: tuple[float, float, float] = (1.0, 1.0, 1.0)  # context, +reference, +hyperprior
        self._mask_cache: dict[tuple, torch.Tensor] = {}
        self._predictor: ReferencePredictor | None = None

    # ------------------------------------------------------------------ params
    def header_params(self) -> bytes:
        return self.window.pack()

    def check_params(self, params: bytes | None) -> None:
        if params is not None:
            Window.unpack(params)

    def predictor(self, params: bytes | None = None) -> ReferencePredictor:
        """The exact path searching the window of `params` (None: this codec's window)."""
        if self._predictor is None:
            self._predictor = ReferencePredictor(self.nets, self.confidence, self.y.require_tables(), self.window)
        return self._predictor.with_window(self.window if params is None else Window.unpack(params))

    # ------------------------------------------------------------------ tables
    def build_tables(self) -> dict[str, np.ndarray]:
        arrays = super().build_tables()
        arrays["ref.confidence"] = confidence_table(scale_levels())
        self.load_tables(arrays)
        return arrays

    def load_tables(self, arrays: dict[str, np.ndarray]) -> None:
        super().load_tables(arrays)
        if "ref.confidence" in arrays:
            self.confidence = np.asarray(arrays["ref.confidence"], dtype=np.int64)
        self._predictor = None

    # ---------------------------------------------------------------- training
    def _mask(self, h: int, w: int, device: torch.device) -> torch.Tensor:
        key = (h, w, str(device))
        if key not in self._mask_cache:
            self._mask_cache[key] = candidate_mask(h, w, self.window, device)
        return self._mask_cache[key]

    def reference_features(self, y_noisy: torch.Tensor, lik_ctx: torch.Tensor) -> torch.Tensor:
        """S·U·transfer of each position's best candidate, (B, M, H, W) (training twin)."""
        b, m, h, w = y_noisy.shape
        best, s = train_search(self.nets.embed(y_noisy), self._mask(h, w, y_noisy.device))
        u = lik_ctx.detach().float().mean(dim=1).flatten(1).gather(1, best)  # U of the chosen b
        moved = self.nets.transfer(y_noisy).flatten(2)
        ref = moved.gather(2, best.unsqueeze(1).expand(b, m, h * w))
        return (ref * (s * u).unsqueeze(1)).view(b, m, h, w)

    def likelihoods(self, y: torch.Tensor, quality: torch.Tensor | None = None) -> LatentLikelihoods:
        """The coded rate is the last prediction's; the loss weighs the three predictions by
        `rate_weights` (see rd_loss). The rates are measured on what :attr:`rate_input` says; the
        context and the search see what :attr:`context_input` says."""
        z_lik, hyper = self.hyper.likelihoods(y)
        y_noisy = uniform_noise(y)

        def rate(mean: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
            return rate_likelihood(y, mean, scale, self.rate_input, y_noisy)

        y_in = self.context_view(y, y_noisy, lambda v: self._predict(v, y_noisy, rate, hyper)[3])
        lik_ctx, lik_ref, lik_full, mean = self._predict(y_in, y_noisy, rate, hyper)
        w_ctx, w_ref, w_full = self.rate_weights
        return LatentLikelihoods(
            {"y": lik_full, "z": z_lik}, {"y": ste_round(y - mean) + mean},
            {"y_ctx": lik_ctx, "y_ref": lik_ref}, {"y": w_full, "y_ctx": w_ctx, "y_ref": w_ref},
        )

    def _predict(
        self, y_in: torch.Tensor, y_noisy: torch.Tensor, rate: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
        hyper: torch.Tensor,
    ) -> tuple[torch.Tensor, ...]:
        """The three predictions from the context input y_in: the training likelihood of y
        (`rate(μ, σ)`) under each (context, +reference, +hyperprior) and the last μ."""
        nets = self.nets
        ctx = nets.context_prediction(y_in)

        def params(raw: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            mean, scale = raw.chunk(2, dim=1)
            return mean, lower_bound(scale)

        mean_ctx, scale_ctx = params(nets.params_ctx(ctx))
        lik_ctx = rate(mean_ctx, scale_ctx)
        # U, as the decoder computes it: the likelihood of the context input
        same = y_in is y_noisy and self.rate_input == "noise"
        conf = lik_ctx if same else gaussian_likelihood(y_in, mean_ctx, scale_ctx)
        ref = self.reference_features(y_in, conf)
        lik_ref = rate(*params(nets.params_ref(torch.cat([ctx, ref], dim=1))))
        full = nets.params_full(torch.cat([ctx, ref, hyper], dim=1))
        mean, scale = params(hyper + full if nets.hyper_residual else full)
        return lik_ctx, lik_ref, rate(mean, scale), mean
