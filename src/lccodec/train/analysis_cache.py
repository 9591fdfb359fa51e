"""The frozen analysis of every training image, computed once, sampled as latent crops.

Heads-only training (``--heads-only``) teaches the entropy model on frozen transforms: the only
thing it needs from an image is its analysis g_a(x) (before the quality gain), and that never
changes. ``--cache-analysis`` computes it once per image at the start of the run (tiled, as the
codec does, so it is the analysis a whole image gets at encode time) and samples random crops of
it; a step then runs the entropy model alone.

Augmentation: each image is analysed at the scales of `CACHE_SCALES` (a downscaled copy, as
the pixel sampler's 0.6–1.0 rescale does), and as itself and mirrored left to right
(`CACHE_MIRROR`: the image is flipped before the analysis, since a flipped latent is not the
latent of the flipped image). The entropy model over-fits a small cache: a context model's
24k heads-only steps on the unmirrored cache coded Kodak worse than its first 1.3k. Crops are
`crop / 16` latents square, at any latent position.
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import LicError

CACHE_SCALES = (1.0, 0.7)
CACHE_MIRROR = True
LATENT_STRIDE = 16


class AnalysisCache:
    """Analyses of held images (bf16, (M, h, w) each) and deterministic random crops of them."""

    def __init__(self, latents: list[torch.Tensor], seed: int = 0) -> None:
        if not latents:
            raise LicError("no training images")
        self.latents = latents
        self.seed = seed

    @classmethod
    def build(cls, analyze: Callable[[torch.Tensor], torch.Tensor], images: list[torch.Tensor],
              min_side: int, seed: int = 0, scales: tuple[float, ...] = CACHE_SCALES,
              mirror: bool = CACHE_MIRROR) -> AnalysisCache:
        """Analyse each uint8 (3, H, W) image at each scale whose result holds a crop of
        `min_side` pixels (images are cut to a multiple of 16 first), and (`mirror`) its mirror
        image at the same scales."""
        latents = []
        with torch.no_grad():
            for img in images:
                x = img.unsqueeze(0).float().div_(255.0)
                for scale in scales:
                    h, w = (int(s * scale) // LATENT_STRIDE * LATENT_STRIDE for s in x.shape[2:])
                    if min(h, w) < min_side:
                        continue
                    xs = x if scale == 1.0 else F.interpolate(x, scale_factor=scale, mode="bilinear",
                                                             antialias=True, align_corners=False)
                    xs = xs[:, :, :h, :w].clamp(0.0, 1.0)
                    for view in (xs, xs.flip(3)) if mirror else (xs,):
                        view = view.contiguous(memory_format=torch.channels_last)
                        latents.append(analyze(view)[0].to(torch.bfloat16).contiguous())
        if not latents:
            raise LicError(f"no training image holds a crop of {min_side} pixels")
        return cls(latents, seed)

    @property
    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in self.latents)

    def batch(self, step: int, size: int, side: int) -> torch.Tensor:
        """Batch number `step`: float32 (size, M, side, side) latent crops."""
        rng = np.random.default_rng([self.seed, step, 2])
        crops = []
        for _ in range(size):
            t = self.latents[int(rng.integers(len(self.latents)))]
            top = int(rng.integers(t.shape[1] - side + 1))
            left = int(rng.integers(t.shape[2] - side + 1))
            crops.append(t[:, top : top + side, left : left + side])
        return torch.stack(crops).float()
