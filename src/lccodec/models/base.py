"""The model contract (:class:`LicModel`) and the transforms every shipped model shares.

A model is transforms + a latent codec (:mod:`lccodec.latents`)::

    x ─analyze─► analysis ─apply_gain(q)─► y ─latent_codec.compress─► streams
    x̂ ◄─synthesize(q)─ decoded latents ◄─latent_codec.decompress─ streams

The codec (:class:`lccodec.codec.Codec`), the trainer and the exporter use only what
:class:`LicModel` declares. Training on frozen transforms (rate only, no synthesis)::

    analysis = model.analyze(x)                  # once; quality-independent
    rates = model.likelihoods(model.apply_gain(analysis, q), q)
    bits = sum(-log2(p).sum() for p in rates.likelihoods.values())
"""
from __future__ import annotations

from fractions import Fraction
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from ..coding import EscapeReader, EscapeWriter
from ..container import Stream
from ..entropy_models import FactorizedDensity
from ..identity import ModelIdentity, identity
from ..latents.base import LatentCodec, LatentLikelihoods
from ..latents.hyperprior import hyper_analysis, hyper_synthesis
from ..layers import GDN, GSDN, LINEAR_SCALE, LinearAnalysis, LinearSynthesis, QualityGain, conv, deconv
from ..tiling import run_tiled

LAMBDAS = (0.0018, 0.0035, 0.0067, 0.0130, 0.0250, 0.0483, 0.0932, 0.1800)
# Transforms run on tiles (with halos wider than their receptive fields) so that memory stays
# bounded on large images: image tiles of 1024 px with a 64 px halo, latent tiles of 64 with 4.
ANALYSIS_TILE, ANALYSIS_HALO = 1024, 64
SYNTHESIS_TILE, SYNTHESIS_HALO = 64, 4
LINEAR_START_SCALE = 0.01  # with a linear path, g_s's last layer starts this much smaller


class LicModel(nn.Module):
    """What every model provides. A subclass names its identity: ``class M(LicModel, model="x")``.

    Transforms (model-specific): :meth:`analyze`, :meth:`apply_gain`, :meth:`synthesize`,
    :meth:`forward`. Latents: :attr:`latent_codec`, through :meth:`likelihoods`,
    :meth:`compress`, :meth:`decode_latents`, :meth:`decompress`. Optional: ``warm_start(weights)``
    (``lic train --init``) and ``set_progress(fraction)`` (called by the training loop).
    """

    identity: ClassVar[ModelIdentity]
    name: ClassVar[str]
    model_id: ClassVar[int]
    stride: ClassVar[int] = 64  # the image is padded to a multiple of this
    #: the modules that make y and x̂ (analysis, synthesis, gains): frozen by heads-only training
    transform_modules: ClassVar[tuple[str, ...]] = ()
    #: whether everything between the image and y is in transform_modules, so that the entropy
    #: model can be trained on the frozen transforms with the rate alone (:meth:`rates`)
    heads_on_frozen_transforms: ClassVar[bool] = False
    config: dict[str, Any]  # the constructor's arguments, as recorded in weights files
    lambdas: tuple[float, ...]
    latent_codec: LatentCodec

    def __init_subclass__(cls, model: str | None = None, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if model is not None:
            cls.identity = identity(model)
            cls.name, cls.model_id = cls.identity.name, cls.identity.model_id

    def adapt_state(self, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Parameters read from a file (weights or checkpoint) in this model's current layout;
        a model whose layout changed converts the older one here. Default: unchanged."""
        return state

    @property
    def quality_range(self) -> tuple[float, float]:
        return (1.0, float(len(self.lambdas)))

    # --------------------------------------------------------------- transforms
    def analyze(self, x: torch.Tensor) -> torch.Tensor:
        """The quality-independent analysis of a padded (1|B, 3, H, W) image in [0, 1]."""
        raise NotImplementedError

    def apply_gain(self, analysis: torch.Tensor, quality: float | torch.Tensor) -> Any:
        """y: the analysis times the gain of `quality` (a float, or (B,) for a batch)."""
        raise NotImplementedError

    def synthesize(self, latents: dict[str, torch.Tensor], quality: float, device: torch.device) -> torch.Tensor:
        """The padded image (1, 3, H, W) in [0, 1] from the latents decompress returns."""
        raise NotImplementedError

    def forward(self, x: torch.Tensor, quality: torch.Tensor) -> dict:
        """Training pass: x in [0, 1], quality (B,). Returns x_hat and the likelihoods."""
        raise NotImplementedError

    def rates(self, x: torch.Tensor, quality: torch.Tensor) -> dict:
        """Heads-only training pass: the likelihoods of x's latents, the analysis run without
        gradient and no synthesis (no "x_hat": the loss is the rate alone)."""
        raise NotImplementedError(f"{self.name} cannot train its entropy model on frozen transforms")

    def rates_of_analysis(self, analysis: torch.Tensor, quality: torch.Tensor) -> dict:
        """:meth:`rates` from a precomputed analysis (``lic train --cache-analysis``)."""
        raise NotImplementedError(f"{self.name} cannot train its entropy model on frozen transforms")

    # ------------------------------------------------------------------ latents
    def likelihoods(self, y: Any, quality: torch.Tensor) -> LatentLikelihoods:
        """The training verb alone: rate terms of y (after the gain), no synthesis."""
        return self.latent_codec.likelihoods(y, quality)

    def build_tables(self) -> dict[str, np.ndarray]:
        """Integer tables from the trained float model (export time), also installed on self."""
        return self.latent_codec.build_tables()

    def load_tables(self, arrays: dict[str, np.ndarray]) -> None:
        self.latent_codec.load_tables(arrays)

    def header_params(self) -> bytes:
        """The model parameters the encoder writes into the header."""
        return self.latent_codec.header_params()

    def stream_kinds(self, layer_flags: int) -> frozenset[int]:
        """The latent stream kinds of a file with these layer flags."""
        return self.latent_codec.stream_kinds(layer_flags)

    @torch.no_grad()
    def compress(
        self, analysis: torch.Tensor, quality: float, escapes: EscapeWriter, synthesize: bool = True,
        layers: int | None = None,
    ) -> tuple[list[Stream], int, torch.Tensor | None]:
        """Code the analysis of one padded image at `quality` (`layers`: forced layer flags).

        Returns the streams, the layer flags and (if `synthesize`) the reconstruction, which is
        exactly what the decoder computes on the same machine.
        """
        coded = self.latent_codec.compress(self.apply_gain(analysis, quality), quality, escapes, layers)
        x_hat = self.synthesize(coded.latents, quality, analysis.device) if synthesize else None
        return coded.streams, coded.layer_flags, x_hat

    def decode_latents(
        self, streams: dict[int, Stream], padded_hw: tuple[int, int], escapes: EscapeReader,
        layer_flags: int | None = None, params: bytes | None = None,
    ) -> dict[str, torch.Tensor]:
        """The exact latents of the streams (integer work only); see the latent codec."""
        return self.latent_codec.decompress(streams, padded_hw, escapes, layer_flags, params)

    @torch.no_grad()
    def decompress(
        self, streams: dict[int, Stream], padded_hw: tuple[int, int], quality: float,
        escapes: EscapeReader, device: torch.device, layer_flags: int | None = None,
        params: bytes | None = None,
    ) -> torch.Tensor:
        """Rebuild the padded image (1, 3, H, W) in [0, 1] from the streams."""
        latents = self.decode_latents(streams, padded_hw, escapes, layer_flags, params)
        return self.synthesize(latents, quality, device)


def quality_tensor(quality: float | torch.Tensor, device: torch.device) -> torch.Tensor:
    """A batch's qualities as given, or one quality as a (1,) tensor on `device`."""
    return quality if isinstance(quality, torch.Tensor) else torch.tensor([quality], device=device)


class HyperpriorBase(LicModel):
    """What the shipped models share: the variable-rate GDN (or GSDN) transforms g_a, g_s with an
    optional linear path and per-quality gains, and the hyperprior networks h_a, h_s, z_density.

    The modules are registered in the order of the first lic models (g_a, g_s, h_a, h_s, the
    linear path, gain, inv_gain, z_density, then each model's own): state-dict names are the
    weights files' and training checkpoints' names, and Adam's state follows parameter order.
    """

    transform_modules = ("g_a", "g_s", "g_a_linear", "g_s_linear", "gain", "inv_gain")
    heads_on_frozen_transforms = True

    def __init__(
        self, N: int = 128, M: int = 192, lambdas: tuple[float, ...] = LAMBDAS,
        gsdn: bool = False, linear_path: bool = False,
    ) -> None:
        """`gsdn`: GSDN / IGSDN (Qian et al. 2021) in the transforms instead of GDN / IGDN.
        `linear_path`: a block-linear path beside g_a and g_s (:class:`LinearAnalysis`)."""
        super().__init__()
        self.config = {"N": N, "M": M, "lambdas": list(lambdas)}
        if gsdn:
            self.config["gsdn"] = True
        if linear_path:
            self.config["linear_path"] = True
        self.lambdas = tuple(lambdas)
        norm = GSDN if gsdn else GDN
        self.g_a = nn.Sequential(
            conv(3, N), norm(N), conv(N, N), norm(N), conv(N, N), norm(N), conv(N, M)
        )
        self.g_s = nn.Sequential(
            deconv(M, N), norm(N, inverse=True), deconv(N, N), norm(N, inverse=True),
            deconv(N, N), norm(N, inverse=True), deconv(N, 3),
        )
        self.h_a = hyper_analysis(N, M)
        self.h_s = hyper_synthesis(N, M)
        self.g_a_linear = LinearAnalysis(M) if linear_path else None
        self.g_s_linear = LinearSynthesis(M) if linear_path else None
        if linear_path:  # start as the linear codec: the non-linear synthesis adds almost nothing
            with torch.no_grad():
                self.g_s[-1].weight.mul_(LINEAR_START_SCALE)
                self.g_s[-1].bias.zero_()
        self.gain = QualityGain(len(lambdas), M, lambdas)
        self.inv_gain = QualityGain(len(lambdas), M, lambdas, inverse=True)
        self.z_density = FactorizedDensity(N)

    # --------------------------------------------------------------- transforms
    def analysis(self, x: torch.Tensor) -> torch.Tensor:
        """g_a(x), plus the linear path where the model has one."""
        y = self.g_a(x)
        return y if self.g_a_linear is None else y + self.g_a_linear(x)

    def synthesis(self, y: torch.Tensor) -> torch.Tensor:
        """g_s(y), plus the linear path where the model has one (g_s then sees y / LINEAR_SCALE,
        latents of the size it sees without the linear path)."""
        if self.g_s_linear is None:
            return self.g_s(y)
        return self.g_s(y * (1.0 / LINEAR_SCALE)) + self.g_s_linear(y)

    @torch.no_grad()
    def analyze(self, x: torch.Tensor) -> torch.Tensor:
        return run_tiled(self.analysis, x, Fraction(1, 16), ANALYSIS_TILE, ANALYSIS_HALO)

    def apply_gain(self, analysis: torch.Tensor, quality: float | torch.Tensor) -> torch.Tensor:
        return analysis * self.gain(quality_tensor(quality, analysis.device))[:, :, None, None]

    def inverse_gain(self, y_hat: torch.Tensor, quality: float | torch.Tensor) -> torch.Tensor:
        return y_hat * self.inv_gain(quality_tensor(quality, y_hat.device))[:, :, None, None]

    def synthesize_tiled(self, y_hat: torch.Tensor, quality: float) -> torch.Tensor:
        """x̂ of ŷ (before the inverse gain, on the output device), tiled and clamped to [0, 1]."""
        y_in = self.inverse_gain(y_hat, quality)
        return run_tiled(self.synthesis, y_in, 16, SYNTHESIS_TILE, SYNTHESIS_HALO).clamp_(0.0, 1.0)

    def synthesize(self, latents: dict[str, torch.Tensor], quality: float, device: torch.device) -> torch.Tensor:
        """ŷ = residual + mean (exact, float32), then the inverse gain and g_s."""
        y_hat = (latents["residual"].to(torch.float32) + latents["mean"]).to(device, memory_format=torch.channels_last)
        return self.synthesize_tiled(y_hat, quality)

    def forward(self, x: torch.Tensor, quality: torch.Tensor) -> dict:
        y = self.apply_gain(self.analysis(x), quality)
        rates = self.likelihoods(y, quality)
        return {"x_hat": self.synthesis(self.inverse_gain(rates.hats["y"], quality)), **rates.as_output()}

    def rates(self, x: torch.Tensor, quality: torch.Tensor) -> dict:
        with torch.no_grad():
            analysis = self.analysis(x)
        return self.rates_of_analysis(analysis, quality)

    def rates_of_analysis(self, analysis: torch.Tensor, quality: torch.Tensor) -> dict:
        with torch.no_grad():
            y = self.apply_gain(analysis.float(), quality)
        return self.likelihoods(y, quality).as_output()


@torch.no_grad()
def warm_start_light_h_s(model: LicModel, weights: str) -> list[str]:
    """Warm start a model with a lighter h_s (hidden width K) from a hyperprior weights file.

    Copies every same-shaped tensor; fits the hyperprior's h_s into the light one: its first
    layer, and the K hidden channels of its second layer that its last layer weighs most.
    Returns the names copied.
    """
    from ..weights_io import copy_matching, weights_state

    hyper_state = weights_state(weights)
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
