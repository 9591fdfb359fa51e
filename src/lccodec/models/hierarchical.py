"""Hierarchical latents with layer-dependent transmission (HC model, after Ge et al.).

::

    x ─g_a[0:4]─► h/4 ─g_a[4:6]─► h/8 ─g_a[6]─► y4 (M, /16) ─h_a─► z ─► ẑ ─[factorized]─► z
                   │               │              │                 exact h_s ─► μ4, σ4
                 head2           head3            ▼
                   ▼               ▼         ŷ4 = round(y4 − μ4) + μ4 ─► exact c3 ─► h3 ─► μ3, σ3
                y2 (4, /4)     y3 (16, /8)   ŷ3 = round(y3 − μ3) + μ3  (or μ3 when y3 is not sent)
                                             [h3, ŷ3] ─► exact c2 ─► μ2, σ2 ; ŷ2 likewise
    x̂ = g_s[4:](g_s[2:4](g_s[0:2](ŷ4) + inject3(ŷ3)) + inject2(ŷ2))

Every latent is scaled by its own quality gain. Which layers a file carries is a fixed rule of
the quality (:func:`layers_for_quality`): y4 always, y3 from quality Y3_FROM, y2 from Y2_FROM;
training follows the same rule. The header's layer flags announce the layers; the decoder
accepts any announced subset and puts the predicted mean in place of a missing layer.

Only integers decide probabilities: ẑ, the fixed-point nets h_s, c3, c2 (fed ŷ as r·256 + μ_int,
i.e. with ACT_BITS fractional bits) and the stored tables. This module also holds helpers the
coarse-to-fine model shares: :class:`ExactFixedNet`, :func:`light_h_s`, :func:`warm_start`.
"""
from __future__ import annotations

from collections.abc import Callable
from fractions import Fraction

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..coding import EscapeReader, EscapeWriter, decode_indexed, encode_indexed
from ..container import LAYER_Y2, LAYER_Y3, LAYER_Y4, LAYER_Z, STREAM_Y, STREAM_Y2, STREAM_Y3, STREAM_Z, Stream
from ..entropy_models import gaussian_likelihood
from ..errors import FormatError
from ..exact import ACT_BITS, ExactNet, _ExactLayer
from ..layers import LINEAR_SCALE, QualityGain, conv, deconv
from ..tiling import run_tiled
from .hyperprior import (
    ANALYSIS_HALO, ANALYSIS_TILE, LAMBDAS, SYNTHESIS_HALO, SYNTHESIS_TILE, HyperpriorModel,
    _lower_bound, _ste_round,
)

STREAM_Y4 = STREAM_Y  # the deepest latent uses the ordinary "y" stream kind
Y3_FROM = 4.0  # y3 is sent from this quality on (≈0.5 bpp)
Y2_FROM = 6.0  # y2 from this one (≈1 bpp)
C3, C2 = 16, 4  # channels of y3 and y2
BASE_FLAGS = LAYER_Z | LAYER_Y4
ONE = float(1 << ACT_BITS)


# ---------------------------------------------------------------- shared helpers
class ExactFixedNet(ExactNet):
    """:class:`ExactNet` whose input already carries `in_bits` fractional bits (e.g. ŷ·256)."""

    def __init__(self, net: nn.Sequential, in_bits: int = ACT_BITS) -> None:
        self.steps = []
        bits = in_bits
        for layer in net:
            if isinstance(layer, (nn.Conv2d, nn.ConvTranspose2d)):
                self.steps.append(_ExactLayer(layer, bits))
                bits = ACT_BITS
            elif isinstance(layer, nn.ReLU):
                self.steps.append("relu")
            else:
                raise TypeError(f"no exact form of {type(layer).__name__}")


def light_h_s(N: int, M: int, K: int) -> nn.Sequential:
    """A hyper-synthesis lighter than the hyperprior's (hidden width K instead of 3M/2)."""
    return nn.Sequential(deconv(N, M), nn.ReLU(), deconv(M, K), nn.ReLU(), conv(K, 2 * M, 3, 1))


def gaussian_params(out: torch.Tensor, scale_bounds: np.ndarray) -> tuple[torch.Tensor, np.ndarray]:
    """(μ_int int64, flat scale-table index) from an exact net's (μ, σ) output."""
    mean_int, scale_int = out.chunk(2, dim=1)
    index = np.searchsorted(scale_bounds, scale_int.numpy().ravel(), side="left")
    return mean_int.contiguous(), np.minimum(index, len(scale_bounds) - 1)


def check_symbols(streams: dict[int, Stream], expected: dict[int, tuple[int, ...]]) -> None:
    """Every expected stream is there with the symbol count its shape implies."""
    for kind, shape in expected.items():
        if kind not in streams:
            raise FormatError("corrupt: a latent stream is missing")
        if streams[kind].symbols != int(np.prod(shape)):
            raise FormatError("corrupt: symbol count does not match the image size")


@torch.no_grad()
def warm_start(model: nn.Module, hyper_state: dict[str, torch.Tensor]) -> list[str]:
    """Copy every same-shaped tensor of a hyperprior state; fit its h_s into a light h_s.

    The light h_s keeps the hyperprior's first layer and the K hidden channels of its second
    layer that its last layer weighs most. Returns the names copied.
    """
    from ..weights_io import copy_matching

    own = model.state_dict()
    pruned: dict[str, torch.Tensor] = {}
    w2, b2, w3 = hyper_state["h_s.2.weight"], hyper_state["h_s.2.bias"], hyper_state["h_s.4.weight"]
    k = own["h_s.2.weight"].shape[1]
    if own["h_s.2.weight"].shape[0] == w2.shape[0] and own["h_s.4.weight"].shape[0] == w3.shape[0]:
        keep = torch.argsort(w3.flatten(2).norm(dim=2).norm(dim=0), descending=True)[:k]
        pruned["h_s.2.weight"], pruned["h_s.2.bias"] = w2[:, keep].clone(), b2[keep].clone()
        if own["h_s.4.weight"].shape[2:] == w3.shape[2:]:
            pruned["h_s.4.weight"], pruned["h_s.4.bias"] = w3[:, keep].clone(), hyper_state["h_s.4.bias"].clone()
    copied = copy_matching(model, hyper_state, pruned)
    return copied + (["h_s.2 (pruned)", "h_s.4 (pruned)"] if "h_s.4.weight" in pruned else [])


def layers_for_quality(quality: float) -> int:
    """The layer flags an encode at `quality` carries (the transmission rule)."""
    flags = BASE_FLAGS
    if quality >= Y3_FROM:
        flags |= LAYER_Y3
    if quality >= Y2_FROM:
        flags |= LAYER_Y2
    return flags


# ------------------------------------------------------------------------ model
class HierarchicalModel(HyperpriorModel):
    """Variable-rate HC model: latents y4, y3, y2 with hierarchical conditional entropy."""

    name = "hierarchical"
    model_id = 4
    stride = 64

    def __init__(
        self, N: int = 128, M: int = 192, K: int = 96, K3: int = 96, K2: int = 64,
        lambdas: tuple[float, ...] = LAMBDAS, linear_path: bool = False,
    ) -> None:
        super().__init__(N, M, lambdas, linear_path=linear_path)
        self.config.update({"K": K, "K3": K3, "K2": K2})
        L = len(lambdas)
        self.h_s = light_h_s(N, M, K)
        self.head3 = conv(N, C3, 3, 1)
        self.head2 = conv(N, C2, 3, 1)
        self.gain3, self.inv_gain3 = QualityGain(L, C3), QualityGain(L, C3)
        self.gain2, self.inv_gain2 = QualityGain(L, C2), QualityGain(L, C2)
        self.c3 = nn.Sequential(deconv(M, K3, 3), nn.ReLU())
        self.c3_head = nn.Sequential(conv(K3, 2 * C3, 3, 1))
        self.c2 = nn.Sequential(deconv(K3 + C3, K2, 3), nn.ReLU(), conv(K2, 2 * C2, 3, 1))
        self.inject3 = conv(C3, N, 3, 1)
        self.inject2 = conv(C2, N, 3, 1)
        for m in (self.inject3, self.inject2):  # start as the plain hyperprior synthesis
            nn.init.zeros_(m.weight)
            nn.init.zeros_(m.bias)
        self._exact: dict[str, ExactNet] = {}

    # -------------------------------------------------------------- transforms
    def _split(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(y4, y3, y2) of an image, before the gains."""
        h = self.g_a[0:4](x)
        y2 = self.head2(h)
        h = self.g_a[4:6](h)
        y4 = self.g_a[6](h)
        if self.g_a_linear is not None:
            y4 = y4 + self.g_a_linear(x)
        return y4, self.head3(h), y2

    def _synth(self, y4: torch.Tensor, y3: torch.Tensor, y2: torch.Tensor) -> torch.Tensor:
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

    def _gains(self, quality, inverse: bool = False) -> tuple[torch.Tensor, ...]:
        mods = (self.inv_gain, self.inv_gain3, self.inv_gain2) if inverse else (self.gain, self.gain3, self.gain2)
        out = []
        for m in mods:
            g = m(quality)
            out.append(g.view(*g.shape[:-1], -1, 1, 1) if g.dim() == 2 else g.view(1, -1, 1, 1))
        return tuple(out)

    # ----------------------------------------------------------------- training
    def forward(self, x: torch.Tensor, quality: torch.Tensor) -> dict:
        """Training pass: x in [0, 1], quality (B,). Layers absent at a quality cost no rate
        and are replaced by their predicted mean, as in the codec."""
        g4, g3, g2 = self._gains(quality)
        y4, y3, y2 = self._split(x)
        y4, y3, y2 = y4 * g4, y3 * g3, y2 * g2
        z = self.h_a(y4)
        z_lik = self.z_density.likelihood(z + torch.empty_like(z).uniform_(-0.5, 0.5))
        mean4, scale4 = self.h_s(_ste_round(z)).chunk(2, dim=1)
        lik4 = gaussian_likelihood(y4 + torch.empty_like(y4).uniform_(-0.5, 0.5), mean4, _lower_bound(scale4, 0.11))
        y4_hat = _ste_round(y4 - mean4) + mean4
        h3 = self.c3(y4_hat)
        has3 = (quality >= Y3_FROM).view(-1, 1, 1, 1)
        has2 = (quality >= Y2_FROM).view(-1, 1, 1, 1)
        y3_hat, lik3 = self._layer(y3, self.c3_head(h3), has3)
        y2_hat, lik2 = self._layer(y2, self.c2(torch.cat([h3, y3_hat], dim=1)), has2)
        i4, i3, i2 = self._gains(quality, inverse=True)
        x_hat = self._synth(y4_hat * i4, y3_hat * i3, y2_hat * i2)
        return {"x_hat": x_hat, "likelihoods": {"y4": lik4, "y3": lik3, "y2": lik2, "z": z_lik}}

    @staticmethod
    def _layer(y: torch.Tensor, params: torch.Tensor, present: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mean, scale = params.chunk(2, dim=1)
        lik = gaussian_likelihood(y + torch.empty_like(y).uniform_(-0.5, 0.5), mean, _lower_bound(scale, 0.11))
        y_hat = torch.where(present, _ste_round(y - mean) + mean, mean)
        return y_hat, torch.where(present, lik, torch.ones_like(lik))

    # ------------------------------------------------------------ exact nets
    def load_tables(self, arrays: dict[str, np.ndarray]) -> None:
        super().load_tables(arrays)
        self._exact = {}

    def _net(self, name: str) -> ExactNet:
        if name not in self._exact:
            self._exact[name] = ExactFixedNet(getattr(self, name))
        return self._exact[name]

    # ---------------------------------------------------------------- the codec
    @torch.no_grad()
    def analyze(self, x: torch.Tensor) -> torch.Tensor:
        """(y4, y3, y2) of a padded image, packed at 1/16 scale (quality-independent)."""
        return run_tiled(lambda t: self._pack(*self._split(t)), x, Fraction(1, 16), ANALYSIS_TILE, ANALYSIS_HALO)

    def _walk(
        self, z_hat: torch.Tensor, flags: int,
        code: Callable[[str, torch.Tensor, np.ndarray], torch.Tensor],
    ) -> dict[str, torch.Tensor]:
        """The exact entropy path shared by encoder and decoder.

        For each layer, deepest first, ``code(name, mean_int, index)`` codes or decodes the
        residuals of a present layer and returns them (int64); absent layers get residual 0.
        Returns residuals and means (int64, ACT_BITS fractional bits) of every layer.
        """
        out: dict[str, torch.Tensor] = {"z_hat": z_hat}

        def layer(name: str, params: torch.Tensor, present: bool) -> torch.Tensor:
            mean_int, index = gaussian_params(params, self.scale_bounds)
            r = code(name, mean_int, index) if present else torch.zeros_like(mean_int)
            out[f"r{name}"], out[f"mean{name}"], out[f"index{name}"] = r, mean_int, torch.from_numpy(index).view(mean_int.shape)
            return r * (1 << ACT_BITS) + mean_int

        y4_int = layer("4", self.exact_h_s(z_hat), True)
        h3 = self._net("c3")(y4_int)
        y3_int = layer("3", self._net("c3_head")(h3), bool(flags & LAYER_Y3))
        layer("2", self._net("c2")(torch.cat([h3, y3_int], dim=1)), bool(flags & LAYER_Y2))
        return out

    @torch.no_grad()
    def compress(
        self, analysis: torch.Tensor, quality: float, escapes: EscapeWriter, synthesize: bool = True,
        layers: int | None = None,
    ) -> tuple[list[Stream], int, torch.Tensor | None]:
        """Code the analysis at `quality`; `layers` (flags) overrides the transmission rule."""
        flags = layers_for_quality(quality) if layers is None else layers
        self._check_flags(flags)
        q = torch.tensor([quality], device=analysis.device)
        ys = [(y * g).float().cpu() for y, g in zip(self._unpack(analysis), self._gains(q))]
        z_hat = torch.round(self.h_a(ys[0].to(analysis.device))).cpu().to(torch.int64)
        z_data, z_count = encode_indexed(z_hat.numpy().ravel(), self._z_index(z_hat.shape), self.tables["z"], escapes)
        streams = [Stream(STREAM_Z, z_data, z_count)]
        kinds = {"4": STREAM_Y4, "3": STREAM_Y3, "2": STREAM_Y2}
        latent = {"4": ys[0], "3": ys[1], "2": ys[2]}

        def code(name: str, mean_int: torch.Tensor, index: np.ndarray) -> torch.Tensor:
            r = torch.round(latent[name] - mean_int.to(torch.float32) / ONE).to(torch.int64)
            data, count = encode_indexed(r.numpy().ravel(), index, self.tables["y"], escapes)
            streams.append(Stream(kinds[name], data, count))
            return r

        lat = self._walk(z_hat, flags, code)
        x_hat = self._synthesize_latents(lat, quality, analysis.device) if synthesize else None
        return streams, flags, x_hat

    def _check_flags(self, flags: int) -> None:
        if flags & ~(BASE_FLAGS | LAYER_Y3 | LAYER_Y2) or flags & BASE_FLAGS != BASE_FLAGS:
            raise FormatError(f"corrupt: layer flags {flags:#06x} are not valid for the hierarchical model")

    def flags_from_streams(self, streams: dict[int, Stream]) -> int:
        return BASE_FLAGS | (LAYER_Y3 if STREAM_Y3 in streams else 0) | (LAYER_Y2 if STREAM_Y2 in streams else 0)

    def decode_latents(
        self, streams: dict[int, Stream], padded_hw: tuple[int, int], escapes: EscapeReader,
        layer_flags: int | None = None,
    ) -> dict[str, torch.Tensor]:
        """Entropy-decode ẑ and the residuals of the layers the flags announce (exact work)."""
        flags = self.flags_from_streams(streams) if layer_flags is None else layer_flags
        self._check_flags(flags)
        h, w = padded_hw
        N, M = self.config["N"], self.config["M"]
        z_shape = (1, N, h // 64, w // 64)
        shapes = {"4": (1, M, h // 16, w // 16), "3": (1, C3, h // 8, w // 8), "2": (1, C2, h // 4, w // 4)}
        kinds = {"4": STREAM_Y4, "3": STREAM_Y3, "2": STREAM_Y2}
        expected = {STREAM_Z: z_shape, STREAM_Y4: shapes["4"]}
        for name, bit in (("3", LAYER_Y3), ("2", LAYER_Y2)):
            if flags & bit:
                expected[kinds[name]] = shapes[name]
            elif kinds[name] in streams:
                raise FormatError(f"corrupt: a y{name} stream is present but the layer flags do not announce it")
        check_symbols(streams, expected)
        z_values = decode_indexed(streams[STREAM_Z].data, self._z_index(z_shape), self.tables["z"], escapes)
        z_hat = self._decoded_z(z_values, z_shape)

        def code(name: str, mean_int: torch.Tensor, index: np.ndarray) -> torch.Tensor:
            r = decode_indexed(streams[kinds[name]].data, index, self.tables["y"], escapes)
            return torch.from_numpy(r).view(*shapes[name])

        return self._walk(z_hat, flags, code)

    def _synthesize_latents(self, lat: dict[str, torch.Tensor], quality: float, device: torch.device) -> torch.Tensor:
        ys = [((lat[f"r{n}"] * (1 << ACT_BITS) + lat[f"mean{n}"]).to(torch.float32) / ONE).to(device) for n in "432"]
        q = torch.tensor([quality], device=device)
        ys = [y * g for y, g in zip(ys, self._gains(q, inverse=True))]
        packed = self._pack(*ys).contiguous(memory_format=torch.channels_last)
        x = run_tiled(lambda t: self._synth(*self._unpack(t)), packed, 16, SYNTHESIS_TILE, SYNTHESIS_HALO)
        return x.clamp_(0.0, 1.0)

    @torch.no_grad()
    def decompress(
        self, streams: dict[int, Stream], padded_hw: tuple[int, int], quality: float,
        escapes: EscapeReader, device: torch.device, layer_flags: int | None = None,
        params: bytes = b"",
    ) -> torch.Tensor:
        """Rebuild the padded image from the layers the flags announce (or the streams hold)."""
        self.check_params(params)
        lat = self.decode_latents(streams, padded_hw, escapes, layer_flags)
        return self._synthesize_latents(lat, quality, device)
