"""Global reference model with GSDN (Qian et al. 2021): local context + global reference +
hyperprior, decoded by wavefront and exact on any machine.

::

    x ─g_a (GSDN)─► ×gain(q) ─► y ─[ReferenceLatentCodec: ẑ factorized; y | (h_s(ẑ), context,
                                     best decoded match in the search window), wavefront order]─► z, y
    x̂ ◄─g_s (IGSDN)─ ×1/gain(q) ◄─ ŷ = r + μ

The progressive entropy model trains three predictions, context → +reference → +hyperprior,
with rate weights 0.3 : 0.3 : 0.4 for the first half of the planned steps and 0.1 : 0.1 : 0.8
after; only the last one codes bits. Latents: :mod:`lccodec.latents.reference`; the search:
:mod:`lccodec.exact.reference_search`. The search window is the header's model params (4 bytes).
"""
from __future__ import annotations

from pathlib import Path

import torch

from ..exact.reference_search import DEFAULT_WINDOW, Window
from ..latents.context import taps_of_full_kernel
from ..latents.hyperprior import HyperLatent
from ..latents.reference import ReferenceLatentCodec, ReferenceNetworks
from .base import LAMBDAS, HyperpriorBase

RATE_WEIGHTS_EARLY = (0.3, 0.3, 0.4)  # context, +reference, +hyperprior
RATE_WEIGHTS_LATE = (0.1, 0.1, 0.8)
SWITCH_AT = 0.5  # fraction of the planned steps


class ReferenceModel(HyperpriorBase, model="reference"):
    """Variable-rate global reference model with GSDN transforms and exact wavefront decoding."""

    def __init__(
        self,
        N: int = 128,
        M: int = 192,
        lambdas: tuple[float, ...] = LAMBDAS,
        window: tuple[int, int] = (DEFAULT_WINDOW.rows, DEFAULT_WINDOW.cols),
        linear_path: bool = False,
        hyper_residual: bool = True,
    ) -> None:
        super().__init__(N, M, lambdas, gsdn=True, linear_path=linear_path)
        del self.config["gsdn"]  # always GSDN here
        self.config["window"] = list(window)
        if not hyper_residual:  # recorded only when off: older files have the residual
            self.config["hyper_residual"] = False
        nets = ReferenceNetworks(M, hyper_residual)
        self.context_prediction, self.embed, self.transfer = nets.context_prediction, nets.embed, nets.transfer
        self.params_ctx, self.params_ref, self.params_full = nets.params_ctx, nets.params_ref, nets.params_full
        self.latent_codec = ReferenceLatentCodec(
            HyperLatent(self.h_a, self.h_s, self.z_density, N), nets, Window(*window)
        )
        self.latent_codec.rate_weights = RATE_WEIGHTS_EARLY

    @property
    def window(self) -> Window:
        """The search window the encoder uses and writes into the header."""
        return self.latent_codec.window

    @window.setter
    def window(self, window: Window) -> None:
        self.latent_codec.window = window

    @property
    def rate_weights(self) -> tuple[float, float, float]:
        return self.latent_codec.rate_weights

    def set_progress(self, fraction: float) -> None:
        """The training loop reports how far along the planned steps it is (0..1)."""
        self.latent_codec.rate_weights = RATE_WEIGHTS_EARLY if fraction < SWITCH_AT else RATE_WEIGHTS_LATE

    def warm_start(self, weights: str | Path) -> None:
        """Initialise from a hyperprior or context weights file (:func:`init_from_hyperprior`,
        :func:`init_from_context`)."""
        if self.latent_codec.nets.hyper_residual:
            init_from_hyperprior(self, weights)
        else:
            init_from_context(self, weights)


@torch.no_grad()
def init_from_hyperprior(model: ReferenceModel, weights: str | Path) -> ReferenceModel:
    """Warm start from a hyperprior (or context) weights file.

    Copies every same-shaped tensor — transforms (GDN β, γ into GSDN, whose ν = τ = 0 keep it a
    GDN), gains, h_a, h_s, z density — and a context model's context convolution (its 12 taps).
    The last layer of params_full starts at zero, so the fresh model codes exactly like the
    hyperprior, and training then learns to use context and reference.
    """
    from ..weights_io import copy_matching, weights_state

    theirs = weights_state(weights)
    overrides = {}
    ctx_w = theirs.get("context_prediction.weight")
    if ctx_w is not None and ctx_w.dim() == 4:  # an older context file's full 5×5: keep its taps
        overrides["context_prediction.weight"] = taps_of_full_kernel(ctx_w)
    copy_matching(model, theirs, overrides)
    last = model.params_full[-1]
    last.weight.zero_()  # no correction yet: (μ, σ) are the hyperprior's
    last.bias.zero_()
    model.build_tables()
    return model


@torch.no_grad()
def init_from_context(model: ReferenceModel, weights: str | Path) -> ReferenceModel:
    """Warm start a model without the hyper residual from a context weights file, exactly.

    params_full has the context model's entropy-parameter widths with M more inputs (the
    reference features) in its first layer: it takes the context model's three layers, with zero
    weights on the reference inputs, so the fresh model codes exactly like the context model, and
    training then learns to use the reference. Everything else is copied as in
    :func:`init_from_hyperprior`; params_ctx, params_ref, embed and transfer start fresh.
    """
    from ..errors import ModelError
    from ..weights_io import copy_matching, weights_state

    theirs = weights_state(weights)
    layers = [k for k in ("entropy_parameters.0.weight", "entropy_parameters.2.weight",
                          "entropy_parameters.4.weight") if k in theirs]
    if len(layers) != 3:
        raise ModelError(f"'{weights}' is not a context model's weights: a reference model without the "
                         "hyper residual warm starts from one")
    M = model.config["M"]
    first = theirs["entropy_parameters.0.weight"]  # [ctx (2M), hyper (2M)] → 10M/3
    mapped = {
        "params_full.0.weight": torch.cat([first[:, : 2 * M], first.new_zeros(first.shape[0], M, 1, 1),
                                           first[:, 2 * M :]], dim=1),
        **{f"params_full.{i}.{kind}": theirs[f"entropy_parameters.{i}.{kind}"]
           for i in (0, 2, 4) for kind in ("weight", "bias") if (i, kind) != (0, "weight")},
    }
    init_from_hyperprior(model, weights)  # transforms, hyper, context taps; then the mapped layers
    copy_matching(model, {}, {k: v.to(model.state_dict()[k].dtype) for k, v in mapped.items()})
    model.build_tables()
    return model
