"""The exact wing: everything that decides a symbol's probability, bit-identical on any machine.

* :mod:`.fixed_point` — the fixed-point engine: trained float layers as integer arithmetic
  (:class:`ExactNet` over whole grids, :class:`ExactMatrix` over a wavefront step's rows).
* :mod:`.wavefront` — the wavefront scheduler: step order, the latent grid, the
  :class:`~.wavefront.Predictor` / :class:`~.wavefront.Stepper` protocol, and the step-by-step
  coding loops.
* :mod:`.reference_search` — the reference model's global search (and its training twin).

The latent codecs (:mod:`lccodec.latents`) build their fixed-point paths from these parts.
"""
from .fixed_point import ACT_BITS, ACT_CLAMP_BITS, LIMIT, ExactMatrix, ExactNet, FixedPointLayer

__all__ = ["ACT_BITS", "ACT_CLAMP_BITS", "LIMIT", "ExactMatrix", "ExactNet", "FixedPointLayer"]
