"""Global reference model with GSDN (Qian et al. 2021): local context + global reference +
hyperprior, decoded by wavefront and exact on any machine.

::

    x ─g_a (GSDN)─► y ─×gain(q)─► y' ─h_a─► z ─round─► ẑ ─[factorized]─► z stream
                                   │                 exact h_s ─► hyper (2M) ────────────┐
                                   │   ŷ' so far ─ masked 5×5 ─► ctx (2M) ─┬─► params_ctx ─► μ₁, σ₁ (confidence U)
                                   │                                       │
                                   │   best decoded match b of the 4-neighbour query      │
                                   │   (exact cosine search, lccodec.reference)           │
                                   │   S·U(b)·transfer(ŷ' around b) ─► ref (M) ─┬─► params_ref ─► μ₂, σ₂ (training)
                                   ▼                                            ▼          ▼
             r = round(y' − μ₃) in wavefront order ◄── hyper + params_full([ctx, ref, hyper]) ─► μ₃, σ₃
             ŷ' = r + μ₃ ─×1/gain(q)─► g_s (IGSDN) ─► x̂

params_full predicts a correction of the hyperprior's (μ, σ) (a residual connection, so a
warm start from a hyperprior codes like it and trains stably). The progressive entropy model
trains three predictions, context → +reference → +hyperprior,
with rate weights 0.3 : 0.3 : 0.4 for the first half of the planned steps and 0.1 : 0.1 : 0.8
after; only the last one codes bits. Everything that decides a probability is integer
arithmetic: the fixed-point nets (:mod:`lccodec.wavefront`), the search, S and U
(:mod:`lccodec.reference`). The search window is the header's model params (4 bytes).
"""
from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..coding import EscapeReader, EscapeWriter
from ..container import LAYER_Y, LAYER_Z, Stream
from ..entropy_models import gaussian_likelihood, scale_levels
from ..errors import FormatError
from ..layers import TapConv
from ..reference import (
    DEFAULT_WINDOW, EMBED, QUERY_TAPS, RELEVANT_TAPS, ExactSearch, Window, candidate_mask,
    confidence, confidence_table, embed_rows, train_search,
)
from ..wavefront import (
    HALF, LIMIT, TAPS, ExactMatrix, _Grid, exact_stack, hyper_rows, run_stack, scale_index, tap_matrix,
)
from .context import wavefront_compress, wavefront_decode_latents
from .hyperprior import LAMBDAS, HyperpriorModel, _lower_bound, _ste_round

RATE_WEIGHTS_EARLY = (0.3, 0.3, 0.4)  # context, +reference, +hyperprior
RATE_WEIGHTS_LATE = (0.1, 0.1, 0.8)
SWITCH_AT = 0.5  # fraction of the planned steps
QUERY_INDEX = [TAPS.index(t) for t in QUERY_TAPS]


def _params_net(widths: tuple[int, ...]) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(widths[:-1], widths[1:])):
        layers.append(nn.Conv2d(a, b, 1))
        if i < len(widths) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


class ReferenceModel(HyperpriorModel):
    """Variable-rate global reference model with GSDN transforms and exact wavefront decoding."""

    name = "reference"
    model_id = 3

    def __init__(
        self,
        N: int = 128,
        M: int = 192,
        lambdas: tuple[float, ...] = LAMBDAS,
        window: tuple[int, int] = (DEFAULT_WINDOW.rows, DEFAULT_WINDOW.cols),
        linear_path: bool = False,
    ) -> None:
        super().__init__(N, M, lambdas, gsdn=True, linear_path=linear_path)
        del self.config["gsdn"]  # always GSDN here
        self.config["window"] = list(window)
        self.window = Window(*window)
        self.context_prediction = TapConv(M, 2 * M, TAPS, 5)
        self.embed = nn.Conv2d(M, EMBED, 1)
        self.transfer = TapConv(M, M, RELEVANT_TAPS, 3)
        self.params_ctx = _params_net((2 * M, 2 * M, 2 * M))
        self.params_ref = _params_net((3 * M, M * 7 // 3, 2 * M))
        self.params_full = _params_net((5 * M, M * 10 // 3, M * 8 // 3, 2 * M))
        self.rate_weights = RATE_WEIGHTS_EARLY
        self.confidence: np.ndarray | None = None  # integer table, from build/load_tables
        self._mask_cache: dict[tuple, torch.Tensor] = {}
        self._exact: _ExactReference | None = None

    # ----------------------------------------------------------------- training
    def set_progress(self, fraction: float) -> None:
        """The training loop reports how far along the planned steps it is (0..1)."""
        self.rate_weights = RATE_WEIGHTS_EARLY if fraction < SWITCH_AT else RATE_WEIGHTS_LATE

    def _mask(self, h: int, w: int, device: torch.device) -> torch.Tensor:
        key = (h, w, str(device))
        if key not in self._mask_cache:
            self._mask_cache[key] = candidate_mask(h, w, self.window, device)
        return self._mask_cache[key]

    def reference_features(self, y_noisy: torch.Tensor, lik_ctx: torch.Tensor) -> torch.Tensor:
        """S·U·transfer of each position's best candidate, (B, M, H, W) (training twin)."""
        b, m, h, w = y_noisy.shape
        best, s = train_search(self.embed(y_noisy), self._mask(h, w, y_noisy.device))
        u = lik_ctx.detach().float().mean(dim=1).flatten(1).gather(1, best)  # U of the chosen b
        moved = self.transfer(y_noisy).flatten(2)
        ref = moved.gather(2, best.unsqueeze(1).expand(b, m, h * w))
        return (ref * (s * u).unsqueeze(1)).view(b, m, h, w)

    def forward(self, x: torch.Tensor, quality: torch.Tensor) -> dict:
        """Training pass: x in [0, 1], quality (B,). The coded rate is the last prediction's;
        the loss weighs the three predictions by `rate_weights` (see rd_loss)."""
        y, z_lik, hyper, y_noisy = self._train_latents(x, quality)
        ctx = self.context_prediction(y_noisy)

        def lik(params: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            mean, scale = params.chunk(2, dim=1)
            return gaussian_likelihood(y_noisy, mean, _lower_bound(scale, 0.11)), mean

        lik_ctx, _ = lik(self.params_ctx(ctx))
        ref = self.reference_features(y_noisy, lik_ctx)
        lik_ref, _ = lik(self.params_ref(torch.cat([ctx, ref], dim=1)))
        lik_full, mean = lik(hyper + self.params_full(torch.cat([ctx, ref, hyper], dim=1)))
        y_hat = _ste_round(y - mean) + mean
        x_hat = self.synthesis(y_hat * self.inv_gain(quality)[:, :, None, None])
        w_ctx, w_ref, w_full = self.rate_weights
        return {
            "x_hat": x_hat,
            "likelihoods": {"y": lik_full, "z": z_lik},
            "aux_likelihoods": {"y_ctx": lik_ctx, "y_ref": lik_ref},
            "rate_weights": {"y": w_full, "y_ctx": w_ctx, "y_ref": w_ref},
        }

    # ------------------------------------------------------------ exact entropy path
    def build_tables(self) -> dict[str, np.ndarray]:
        arrays = super().build_tables()
        arrays["ref.confidence"] = confidence_table(scale_levels())
        self.load_tables(arrays)
        return arrays

    def load_tables(self, arrays: dict[str, np.ndarray]) -> None:
        super().load_tables(arrays)
        if "ref.confidence" in arrays:
            self.confidence = np.asarray(arrays["ref.confidence"], dtype=np.int64)
        self._exact = None

    @property
    def exact(self) -> "_ExactReference":
        if self._exact is None:
            self._exact = _ExactReference(self)
        return self._exact

    def warm_start(self, weights: str | Path) -> None:
        """Initialise from a hyperprior or context weights file (:func:`init_from_hyperprior`)."""
        init_from_hyperprior(self, weights)

    def header_params(self) -> bytes:
        return self.window.pack()

    def check_params(self, params: bytes) -> None:
        Window.unpack(params)

    # ---------------------------------------------------------------- the codec
    @torch.no_grad()
    def compress(
        self, analysis: torch.Tensor, quality: float, escapes: EscapeWriter, synthesize: bool = True
    ) -> tuple[list[Stream], int, torch.Tensor | None]:
        """Code the analysis of one padded image at `quality` (see HyperpriorModel.compress)."""
        predictor = self.exact.with_window(self.window)
        return wavefront_compress(self, predictor, analysis, quality, escapes, synthesize)

    def decode_latents(
        self, streams: dict[int, Stream], padded_hw: tuple[int, int], escapes: EscapeReader,
        params: bytes | None = None,
    ) -> dict[str, torch.Tensor]:
        """Entropy-decode ẑ, then y step by step with the window of `params` (default: this
        model's). Returns z_hat, residual (int64), mean (float32) and index (int64)."""
        window = self.window if params is None else Window.unpack(params)
        predictor = self.exact.with_window(window)
        return wavefront_decode_latents(self, predictor, streams, padded_hw, escapes)

    @torch.no_grad()
    def decompress(
        self, streams: dict[int, Stream], padded_hw: tuple[int, int], quality: float,
        escapes: EscapeReader, device: torch.device, layer_flags: int = LAYER_Z | LAYER_Y,
        params: bytes = b"",
    ) -> torch.Tensor:
        if layer_flags != LAYER_Z | LAYER_Y:
            raise FormatError(f"corrupt: {self.name} files carry layers z and y (flags {layer_flags:#x})")
        latents = self.decode_latents(streams, padded_hw, escapes, params)
        return self._synthesize(latents["residual"], latents["mean"], quality, device)


class _ExactReference:
    """Fixed-point form of the reference model's entropy path (see :mod:`lccodec.wavefront`)."""

    def __init__(self, model: ReferenceModel) -> None:
        m = model.config["M"]
        self.channels = m
        # ExactMatrix rounds weights to fp16 (what ships) before fixing the point
        self.ctx = ExactMatrix(tap_matrix(model.context_prediction.full_weight().detach().cpu(), TAPS),
                               model.context_prediction.bias.cpu(), relu=False)
        self.embed = ExactMatrix(model.embed.weight.flatten(1), model.embed.bias, relu=False)
        self.transfer = ExactMatrix(
            tap_matrix(model.transfer.full_weight().detach().cpu(), RELEVANT_TAPS, 3),
            model.transfer.bias.cpu(), relu=False,
        )
        self.params_ctx = exact_stack(model.params_ctx)
        self.params_full = exact_stack(model.params_full)
        self.confidence = model.confidence
        self.bounds = model.scale_bounds
        self.window = model.window

    def with_window(self, window: Window) -> "_ExactReference":
        """The same exact path searching `window` (a file's header may name its own)."""
        clone = copy.copy(self)
        clone.window = window
        return clone

    def start(self, grid: _Grid, hyper: torch.Tensor) -> "_ReferenceStepper":
        return _ReferenceStepper(self, grid, hyper)


class _ReferenceStepper:
    """One image: per step, context → confidence inputs → search → reference → parameters."""

    def __init__(self, ex: _ExactReference, grid: _Grid, hyper: torch.Tensor) -> None:
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

    def predict(self, pos: np.ndarray, padded: np.ndarray, taps: np.ndarray):
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
        self._pending = (out_ctx[:, :m], scale_index(out_ctx[:, m:], ex.bounds).reshape(len(pos), m), queries)
        out = run_stack(ex.params_full, np.concatenate([ctx, ref], axis=1), self.hyper_acc[pos])
        out = np.clip(out + self.hyper[pos], -LIMIT, LIMIT)  # a correction of the hyperprior's (μ, σ)
        return out[:, :m], out[:, m:]

    def commit(self, pos: np.ndarray, padded: np.ndarray, rows: np.ndarray) -> None:
        ex = self.ex
        mean_ctx, index_ctx, queries = self._pending
        self.egrid[padded] = embed_rows(ex.embed(rows))
        self.search.add(pos, queries)
        self.conf[pos] = confidence(rows, mean_ctx, index_ctx, ex.confidence)
        relevant = self.grid.data[(padded[:, None] + self.rel_offsets[None, :]).ravel()]
        self.moved[pos] = ex.transfer(relevant.reshape(len(pos), -1))


@torch.no_grad()
def init_from_hyperprior(model: ReferenceModel, weights: str | Path) -> ReferenceModel:
    """Warm start from a hyperprior (or context) weights file.

    Copies every same-shaped tensor — transforms (GDN β, γ into GSDN, whose ν = τ = 0 keep it a
    GDN), gains, h_a, h_s, z density — and a context model's masked convolution at its taps.
    The last layer of params_full starts at zero, so the fresh model codes exactly like the
    hyperprior, and training then learns to use context and reference.
    """
    from ..weights_io import copy_matching, weights_state

    theirs = weights_state(weights)
    overrides = {}
    ctx_w = theirs.get("context_prediction.weight")
    if ctx_w is not None and ctx_w.shape[2:] == (5, 5):  # a context model's 5×5: keep its taps
        overrides["context_prediction.weight"] = torch.stack(
            [ctx_w[:, :, HALF + dr, HALF + dc] for dr, dc in TAPS], 2)
    copy_matching(model, theirs, overrides)
    last = model.params_full[-1]
    last.weight.zero_()  # no correction yet: (μ, σ) are the hyperprior's
    last.bias.zero_()
    model.build_tables()
    return model
