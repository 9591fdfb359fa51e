"""Latent codecs: each way of coding a model's latents, with the same verbs (:mod:`.base`).

* :mod:`.factorized` — a latent with one learned table per channel (ẑ).
* :mod:`.gaussian` — a latent as residuals under a Gaussian from a fixed-point net (y | μ, σ).
* :mod:`.hyperprior` — side information ẑ → μ, σ of y (hyperprior).
* :mod:`.context` — hyperprior + masked-convolution context, wavefront coded (context).
* :mod:`.reference` — context + global reference + hyperprior, wavefront coded (reference).
* :mod:`.hierarchical` — layers y4 / y3 / y2, each conditioned on the deeper (hierarchical).
* :mod:`.two_level_hyper` — a hyperprior whose hyper-latent has its own hyper (coarse2fine).
"""
from .base import CodedLatents, LatentCodec, LatentLikelihoods

__all__ = ["CodedLatents", "LatentCodec", "LatentLikelihoods"]
