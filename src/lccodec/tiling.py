"""Running a convolutional transform tile by tile, so memory does not grow with image area.

Each tile is extended by a halo wider than the transform's receptive field, run on its own and
cropped back, so the result equals the whole-image computation up to float rounding. Encoder
and decoder use the same tiling, so a decode still equals the encoder's reconstruction exactly
on the same machine. Tiling never touches the exact entropy path.
"""
from __future__ import annotations

from collections.abc import Callable
from fractions import Fraction

import torch


def run_tiled(
    fn: Callable[[torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    factor: Fraction | int,
    tile: int,
    halo: int,
) -> torch.Tensor:
    """fn(x) for a (1, C, H, W) tensor, computed on tiles of `tile`² input pixels.

    `factor` is the transform's output/input size ratio (1/16 for an analysis, 16 for a
    synthesis); `tile` and `halo` must be multiples of its denominator.
    """
    factor = Fraction(factor)
    h, w = x.shape[-2:]
    if h <= tile + halo and w <= tile + halo:
        return fn(x)
    out = None
    for i in range(0, h, tile):
        for j in range(0, w, tile):
            i0, j0 = max(0, i - halo), max(0, j - halo)
            i1, j1 = min(h, i + tile + halo), min(w, j + tile + halo)
            part = fn(x[..., i0:i1, j0:j1])
            if out is None:
                out = part.new_empty((*part.shape[:-2], int(h * factor), int(w * factor)))
            ti, tj = min(tile, h - i), min(tile, w - j)
            oi, oj = int((i - i0) * factor), int((j - j0) * factor)
            out[..., int(i * factor): int((i + ti) * factor), int(j * factor): int((j + tj) * factor)] = (
                part[..., oi: oi + int(ti * factor), oj: oj + int(tj * factor)]
            )
            del part
    return out
