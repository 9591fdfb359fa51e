"""The latent-codec contract: one way of coding a model's latents, with the same verbs for all.

A model is transforms + a latent codec (:mod:`lccodec.models`). The transforms make y (after
the quality gain) and turn the decoded latents back into an image; the latent codec does
everything between, with three verbs::

    likelihoods(y, quality)            training: rate terms and straight-through latents
    compress(y, quality, escapes)  ──► streams, layer flags, the latents the decoder will get
    decompress(streams, ...)       ◄── streams: the same latents, exactly (integer work only)

A latent codec owns its index computation, its stream kinds and symbol counts and the checks
that its streams end exactly. It does not own parameters: the networks it uses are the model's
(their state-dict names are the weights files' names), handed to it at construction; the integer
tables come from :meth:`LatentCodec.load_tables` (weights files) or
:meth:`LatentCodec.build_tables` (export).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import torch

from ..coding import EscapeReader, EscapeWriter
from ..container import METADATA_STREAMS, STREAM_ALPHA, STREAM_ESCAPE, STREAM_NAMES, Stream
from ..entropy_models import gaussian_likelihood
from ..errors import FormatError

FILE_STREAMS = frozenset((STREAM_ESCAPE, STREAM_ALPHA, *METADATA_STREAMS))  # beside the latents (lccodec.side_streams)
SCALE_LOWER_BOUND = 0.11  # training: predicted scales below this are lifted (identity gradient)


def ste_round(x: torch.Tensor) -> torch.Tensor:
    """round(x) in the forward pass, identity gradient (straight-through)."""
    return x + (torch.round(x) - x).detach()


def lower_bound(x: torch.Tensor, bound: float = SCALE_LOWER_BOUND) -> torch.Tensor:
    """max(x, bound) in the forward pass, identity gradient."""
    return x + (x.clamp_min(bound) - x).detach()


def uniform_noise(x: torch.Tensor) -> torch.Tensor:
    """x + U(−0.5, 0.5): the training stand-in for rounding."""
    return x + torch.empty_like(x).uniform_(-0.5, 0.5)


#: What a latent's training rate is measured on (a training switch of the latent codecs that have
#: it; coding never reads it). "noise": p(y + U(−0.5, 0.5) | μ, σ), the usual proxy. "rounded":
#: p(round(y − μ) | 0, σ), what the coder spends (μ learns through the rounding, straight-through).
#: On frozen transforms the proxy is what misleads: for the shipped reference model on 4 Kodak
#: images at quality 1 it reads 0.579 bpp of y where the coder spends 0.423 (docs/training.md).
RATE_INPUTS = ("noise", "rounded")


def rate_likelihood(y: torch.Tensor, mean: torch.Tensor, scale: torch.Tensor, rate_input: str = "noise",
                    y_noisy: torch.Tensor | None = None) -> torch.Tensor:
    """The training likelihood of y under N(mean, scale), on what `rate_input` names (see
    :data:`RATE_INPUTS`); `y_noisy` is the noisy y to use, if it is already drawn."""
    if rate_input == "rounded":
        return gaussian_likelihood(ste_round(y - mean), torch.zeros_like(scale), scale)
    return gaussian_likelihood(uniform_noise(y) if y_noisy is None else y_noisy, mean, scale)


@dataclass
class LatentLikelihoods:
    """What the training verb returns."""

    likelihoods: dict[str, torch.Tensor]  # the coded rate terms, by stream name
    hats: dict[str, torch.Tensor]  # quantised latents (straight-through) the synthesis takes
    aux_likelihoods: dict[str, torch.Tensor] = field(default_factory=dict)  # trained, not coded
    rate_weights: dict[str, float] | None = None  # loss weights of likelihoods + aux, if not 1

    def as_output(self) -> dict:
        """The likelihood entries of a model's training output (see rd_loss)."""
        out: dict = {"likelihoods": self.likelihoods}
        if self.aux_likelihoods:
            out["aux_likelihoods"] = self.aux_likelihoods
        if self.rate_weights is not None:
            out["rate_weights"] = self.rate_weights
        return out


@dataclass
class CodedLatents:
    """What compress returns: the streams and flags of a file, and the latents its decoder gets."""

    streams: list[Stream]
    layer_flags: int
    latents: dict[str, torch.Tensor]


class LatentCodec(Protocol):
    """The verbs every latent codec provides (see the module docstring)."""

    def likelihoods(self, y, quality: torch.Tensor) -> LatentLikelihoods:
        """Training: y after the gain (B, …) and the qualities (B,), no synthesis."""
        ...

    def compress(self, y, quality: float, escapes: EscapeWriter, layers: int | None = None) -> CodedLatents:
        """Code y (after the gain) of one image; `layers` overrides the layer flags it would choose."""
        ...

    def decompress(
        self, streams: dict[int, Stream], padded_hw: tuple[int, int], escapes: EscapeReader,
        layer_flags: int | None = None, params: bytes | None = None,
    ) -> dict[str, torch.Tensor]:
        """The latents of a padded image of `padded_hw` from its streams (None flags / params:
        the codec's own). Refuses flags, params and streams it does not write."""
        ...

    def stream_kinds(self, layer_flags: int) -> frozenset[int]:
        """The stream kinds a file with these (valid) layer flags carries."""
        ...

    def header_params(self) -> bytes:
        """The params the encoder writes into the header."""
        ...

    def build_tables(self) -> dict[str, np.ndarray]:
        """Integer tables from the trained float model (export time), also installed."""
        ...

    def load_tables(self, arrays: dict[str, np.ndarray]) -> None:
        """Install tables (from a weights file) and forget fixed-point nets made from old weights."""
        ...


def expect_streams(streams: dict[int, Stream], expected: dict[int, tuple[int, ...]]) -> None:
    """The latent streams are exactly `expected` (beside the file-level escape and alpha
    streams), each with the symbol count its shape implies."""
    for kind in sorted(set(streams) - set(expected) - FILE_STREAMS):
        name = STREAM_NAMES.get(kind, "unknown")
        article = "an" if name[0] in "aeiou" else "a"
        raise FormatError(f"corrupt: {article} {name} stream (kind {kind}) does not belong in this model's files")
    if any(kind not in streams for kind in expected):
        raise FormatError("corrupt: a latent stream is missing")
    for kind, shape in expected.items():
        if streams[kind].symbols != int(np.prod(shape)):
            raise FormatError("corrupt: symbol count does not match the image size")


def refuse_params(params: bytes | None) -> None:
    """For codecs whose files carry no header params."""
    if params:
        raise FormatError(f"corrupt: files of this model carry no model params ({len(params)} bytes found)")


def latent_shape(padded_hw: tuple[int, int], channels: int, stride: int) -> tuple[int, int, int, int]:
    """(1, channels, H/stride, W/stride) of a latent of a padded image."""
    h, w = padded_hw
    return (1, channels, h // stride, w // stride)
