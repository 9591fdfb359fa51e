"""Hierarchical latent layers y4 / y3 / y2 with layer-dependent transmission (HC, after Ge et al.).

::

    y4 (M, /16) ─h_a─► z ─► ẑ ─[factorized]─► z stream ; exact h_s(ẑ) ─► μ4, σ4
    ŷ4 = round(y4 − μ4) + μ4                   ──► y stream (kind y, flag y4)
    exact c3(ŷ4) ─► h3 ─► exact c3_head ─► μ3, σ3
    ŷ3 = round(y3 − μ3) + μ3, or μ3 when y3 is not sent ──► y3 stream
    exact c2([h3, ŷ3]) ─► μ2, σ2 ;  ŷ2 likewise        ──► y2 stream

Which layers a file carries is a fixed rule of the quality (:func:`layers_for_quality`): y4
always, y3 from quality Y3_FROM, y2 from Y2_FROM; training follows the same rule. The header's
layer flags announce the layers; the decoder accepts any announced subset and puts the predicted
mean in place of a missing layer. Only integers decide probabilities: ẑ, the fixed-point nets
h_s, c3, c2 (fed ŷ as r·256 + μ_int, i.e. with ACT_BITS fractional bits) and the stored tables.
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from ..coding import EscapeReader, EscapeWriter
from ..container import LAYER_Y2, LAYER_Y3, LAYER_Y4, LAYER_Z, STREAM_Y, STREAM_Y2, STREAM_Y3, STREAM_Z, Stream
from ..errors import FormatError
from ..exact import ACT_BITS, ExactNet
from ..layers import conv, deconv
from .base import CodedLatents, LatentLikelihoods, expect_streams, latent_shape, refuse_params
from .gaussian import GaussianConditional, build_tables_beside, load_gaussian_tables
from .hyperprior import Y_STRIDE, HyperLatent

STREAM_Y4 = STREAM_Y  # the deepest latent uses the ordinary "y" stream kind
Y3_FROM = 4.0  # y3 is sent from this quality on (≈0.5 bpp)
Y2_FROM = 6.0  # y2 from this one (≈1 bpp)
C3, C2 = 16, 4  # channels of y3 and y2
BASE_FLAGS = LAYER_Z | LAYER_Y4
#: name -> (stream kind, layer flag, channels, stride of the padded image)
LAYERS = {"4": (STREAM_Y4, LAYER_Y4, None, Y_STRIDE), "3": (STREAM_Y3, LAYER_Y3, C3, 8), "2": (STREAM_Y2, LAYER_Y2, C2, 4)}


def layers_for_quality(quality: float) -> int:
    """The layer flags an encode at `quality` carries (the transmission rule)."""
    flags = BASE_FLAGS
    if quality >= Y3_FROM:
        flags |= LAYER_Y3
    if quality >= Y2_FROM:
        flags |= LAYER_Y2
    return flags


def check_flags(flags: int) -> None:
    if flags & ~(BASE_FLAGS | LAYER_Y3 | LAYER_Y2) or flags & BASE_FLAGS != BASE_FLAGS:
        raise FormatError(f"corrupt: layer flags {flags:#06x} are not valid for the hierarchical model")


class ConditionalNetworks:
    """The conditioning networks (registered on the model under these names)."""

    def __init__(self, M: int, K3: int, K2: int) -> None:
        self.c3 = nn.Sequential(deconv(M, K3, 3), nn.ReLU())
        self.c3_head = nn.Sequential(conv(K3, 2 * C3, 3, 1))
        self.c2 = nn.Sequential(deconv(K3 + C3, K2, 3), nn.ReLU(), conv(K2, 2 * C2, 3, 1))


class HierarchicalLatentCodec:
    """The HC latent codec: :class:`HyperLatent` for y4, then y3 | ŷ4 and y2 | ŷ3, ŷ4."""

    def __init__(self, hyper: HyperLatent, nets: ConditionalNetworks, channels: int) -> None:
        self.hyper, self.nets, self.channels = hyper, nets, channels
        self.layers = {name: GaussianConditional(kind) for name, (kind, *_) in LAYERS.items()}
        self._exact: dict[str, ExactNet] = {}

    def shapes(self, padded_hw: tuple[int, int]) -> dict[str, tuple[int, ...]]:
        return {name: latent_shape(padded_hw, c or self.channels, stride) for name, (_, _, c, stride) in LAYERS.items()}

    def stream_kinds(self, layer_flags: int) -> frozenset[int]:
        return frozenset([STREAM_Z] + [kind for kind, bit, *_ in LAYERS.values() if layer_flags & bit])

    def header_params(self) -> bytes:
        return b""

    # ----------------------------------------------------------------- training
    def likelihoods(self, y: tuple[torch.Tensor, torch.Tensor, torch.Tensor], quality: torch.Tensor) -> LatentLikelihoods:
        """Layers absent at a quality cost no rate and are replaced by their predicted mean, as
        in the codec."""
        y4, y3, y2 = y
        z_lik, params4 = self.hyper.likelihoods(y4)
        lik4, y4_hat = GaussianConditional.likelihood(y4, params4)
        h3 = self.nets.c3(y4_hat)
        has3 = (quality >= Y3_FROM).view(-1, 1, 1, 1)
        has2 = (quality >= Y2_FROM).view(-1, 1, 1, 1)
        y3_hat, lik3 = self._layer(y3, self.nets.c3_head(h3), has3)
        y2_hat, lik2 = self._layer(y2, self.nets.c2(torch.cat([h3, y3_hat], dim=1)), has2)
        return LatentLikelihoods({"y4": lik4, "y3": lik3, "y2": lik2, "z": z_lik},
                                 {"y4": y4_hat, "y3": y3_hat, "y2": y2_hat})

    @staticmethod
    def _layer(y: torch.Tensor, params: torch.Tensor, present: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        lik, y_hat = GaussianConditional.likelihood(y, params)
        mean = params.chunk(2, dim=1)[0]
        return torch.where(present, y_hat, mean), torch.where(present, lik, torch.ones_like(lik))

    # ------------------------------------------------------------------- tables
    def build_tables(self) -> dict[str, np.ndarray]:
        return build_tables_beside(self, self.hyper)

    def load_tables(self, arrays: dict[str, np.ndarray]) -> None:
        tables = load_gaussian_tables(arrays)
        for layer in self.layers.values():
            layer.tables = tables
        self.hyper.load_tables(arrays)
        self._exact = {}

    def _net(self, name: str) -> ExactNet:
        if name not in self._exact:
            self._exact[name] = ExactNet(getattr(self.nets, name), in_bits=ACT_BITS)
        return self._exact[name]

    # ------------------------------------------------------------------- coding
    def _walk(
        self, z_hat: torch.Tensor, params4: torch.Tensor, flags: int,
        code: Callable[[str, torch.Tensor, np.ndarray], torch.Tensor],
    ) -> dict[str, torch.Tensor]:
        """The exact path shared by encoder and decoder, from ẑ and its h_s output `params4`.

        For each layer, deepest first, ``code(name, mean_int, index)`` codes or decodes the
        residuals of a present layer and returns them (int64); absent layers get residual 0.
        Returns residuals and means (int64, ACT_BITS fractional bits) of every layer.
        """
        out: dict[str, torch.Tensor] = {"z_hat": z_hat}

        def layer(name: str, params: torch.Tensor, present: bool) -> torch.Tensor:
            mean_int, index = self.layers[name].params(params)
            r = code(name, mean_int, index) if present else torch.zeros_like(mean_int)
            out[f"r{name}"], out[f"mean{name}"], out[f"index{name}"] = r, mean_int, torch.from_numpy(index).view(mean_int.shape)
            return r * (1 << ACT_BITS) + mean_int

        y4_int = layer("4", params4, True)
        h3 = self._net("c3")(y4_int)
        y3_int = layer("3", self._net("c3_head")(h3), bool(flags & LAYER_Y3))
        layer("2", self._net("c2")(torch.cat([h3, y3_int], dim=1)), bool(flags & LAYER_Y2))
        return out

    def compress(
        self, y: tuple[torch.Tensor, torch.Tensor, torch.Tensor], quality: float, escapes: EscapeWriter,
        layers: int | None = None,
    ) -> CodedLatents:
        """Code (y4, y3, y2); `layers` (flags) overrides the transmission rule."""
        flags = layers_for_quality(quality) if layers is None else layers
        check_flags(flags)
        latent = {name: t.float().cpu() for name, t in zip("432", y)}
        z_stream, z_hat, params4 = self.hyper.compress(y[0].float(), escapes)
        streams = [z_stream]

        def code(name: str, mean_int: torch.Tensor, index: np.ndarray) -> torch.Tensor:
            stream, r = self.layers[name].compress(latent[name], mean_int, index, escapes)
            streams.append(stream)
            return r

        return CodedLatents(streams, flags, self._walk(z_hat, params4, flags, code))

    def flags_from_streams(self, streams: dict[int, Stream]) -> int:
        return BASE_FLAGS | (LAYER_Y3 if STREAM_Y3 in streams else 0) | (LAYER_Y2 if STREAM_Y2 in streams else 0)

    def decompress(
        self, streams: dict[int, Stream], padded_hw: tuple[int, int], escapes: EscapeReader,
        layer_flags: int | None = None, params: bytes | None = None,
    ) -> dict[str, torch.Tensor]:
        """ẑ and the residuals of the layers the flags (None: the streams) announce."""
        refuse_params(params)
        flags = self.flags_from_streams(streams) if layer_flags is None else layer_flags
        check_flags(flags)
        shapes = self.shapes(padded_hw)
        z_shape = self.hyper.shape(padded_hw)
        expected = {STREAM_Z: z_shape, STREAM_Y4: shapes["4"]}
        for name in "32":
            kind, bit, *_ = LAYERS[name]
            if flags & bit:
                expected[kind] = shapes[name]
            elif kind in streams:
                raise FormatError(f"corrupt: a y{name} stream is present but the layer flags do not announce it")
        expect_streams(streams, expected)
        z_hat, params4 = self.hyper.decompress(streams[STREAM_Z], z_shape, escapes)

        def code(name: str, mean_int: torch.Tensor, index: np.ndarray) -> torch.Tensor:
            layer = self.layers[name]
            return layer.decompress(streams[layer.kind], index, shapes[name], escapes)

        return self._walk(z_hat, params4, flags, code)
