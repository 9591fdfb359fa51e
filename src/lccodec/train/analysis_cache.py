"""The frozen analysis of every training image, computed once, sampled as latent crops.

Heads-only training (``--heads-only``) teaches the entropy model on frozen transforms: the only
thing it needs from an image is its analysis g_a(x) (before the quality gain), and that never
changes. ``--cache-analysis`` computes it once per image at the start of the run (tiled, as the
codec does, so it is the analysis a whole image gets at encode time) and samples random crops of
it; a step then runs the entropy model alone.

Augmentation: each image is analysed at the scales of `CACHE_SCALES` (a downscaled copy, as
the pixel sampler's 0.6–1.0 rescale does), and in `CACHE_VIEWS` views: itself, mirrored left to
right, and (4 views) also upside down, and both (the image is flipped before the analysis, since
a flipped latent is not the latent of the flipped image). The entropy model over-fits a small
cache: a context model's 24k heads-only steps on the unmirrored cache coded Kodak worse than its
first 1.3k. (At 320² crops the 0.7 copy of most training photos is too small, so there 4 views
are the way to a larger cache.) Crops are
`crop / 16` latents square, at any latent position.
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import LicError

CACHE_SCALES = (1.0, 0.7)
CACHE_VIEWS = 2
#: the flips (dims of a (1, 3, H, W) image) of each view, by number of views
VIEWS = {1: ((),), 2: ((), (3,)), 4: ((), (3,), (2,), (2, 3))}
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
              views: int = CACHE_VIEWS) -> AnalysisCache:
        """Analyse each uint8 (3, H, W) image at each scale whose result holds a crop of
        `min_side` pixels (images are cut to a multiple of 16 first), in `views` views (1: as it is;
        2: also its mirror image; 4: also upside down, and both)."""
        if views not in VIEWS:
            raise LicError(f"the analysis cache takes 1, 2 or 4 views, not {views}")
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
                    for dims in VIEWS[views]:
                        view = (xs.flip(dims) if dims else xs).contiguous(memory_format=torch.channels_last)
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
