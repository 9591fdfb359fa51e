"""Wavefront coding of a latent grid under a 5×5 causal (type-A) context, exact on any machine.

A latent at (row, col) is predicted from the 12 positions of its 5×5 neighbourhood that come
before it in raster order: the two rows above (columns col−2 … col+2) and the two positions to
its left. Every one of them has a smaller ``t = 3·row + col``, so all latents with equal t are
independent: an H×W grid is decoded in ``3H + W − 3`` steps (:func:`wavefront_steps`).

This module is the scheduler: it walks the steps and codes each step's symbols with
:mod:`lccodec.coding.indexed` (one group per step). What the symbols' μ and σ are comes from a
:class:`Predictor`, the fixed-point form of a model's context path (the context and reference
latent codecs, :mod:`lccodec.latents`). The encoder (:func:`encode_wavefront`) and the decoder
(:func:`decode_wavefront`) run the same steps in the same order with the same predictor, so μ and
the scale index agree bit for bit across machines.

Decoded latents enter the grid as integers with ACT_BITS fractional bits, ŷ'·256 = r·256 + μ_int
(:func:`latent_rows`).

Symbol order of the stream: step t = 0, 1, …; within a step the symbols are the (position,
channel) pairs, positions by ascending row, grouped by table as in :mod:`lccodec.coding.indexed`
(table 0 first, flat order kept within a table). Escaped values follow that same order.
"""
from __future__ import annotations

from typing import Protocol

import numpy as np
import torch
from threadpoolctl import threadpool_limits

from ..coding import EscapeReader, EscapeWriter, GaussianTables, IndexedDecoder, IndexedEncoder
from .fixed_point import ACT_BITS, LIMIT

KERNEL = 5
HALF = KERNEL // 2
#: (d_row, d_col) of the causal taps of the 5×5 mask, in the order of the gathered patches.
TAPS: tuple[tuple[int, int], ...] = tuple(
    [(dr, dc) for dr in (-2, -1) for dc in range(-2, 3)] + [(0, -2), (0, -1)]
)
RESIDUAL_LIMIT = 1 << 31  # the encoder codes residuals within ±2^31 (escapes carry them)
#: SINGLE_THREAD_NOTE: a step's matrices are small (a few dozen rows), so BLAS threads buy
#: little and, on a busy machine, each threaded call can stall for milliseconds waiting for a
#: descheduled worker; the step loops therefore run BLAS on one thread.


def causal_mask() -> torch.Tensor:
    """The 5×5 type-A mask: 1 at :data:`TAPS`, 0 elsewhere (centre included)."""
    mask = torch.zeros(KERNEL, KERNEL)
    for dr, dc in TAPS:
        mask[HALF + dr, HALF + dc] = 1.0
    return mask


def wavefront_steps(height: int, width: int) -> list[np.ndarray]:
    """Flat positions (row·width + col) of each step t = 3·row + col, rows ascending."""
    rows, cols = np.divmod(np.arange(height * width), width)
    t = 3 * rows + cols
    order = np.lexsort((rows, t))
    counts = np.bincount(t, minlength=3 * (height - 1) + width)
    return np.split(order, np.cumsum(counts)[:-1])


class Grid:
    """The padded latent grid being filled in, and each step's positions and tap rows.

    ``data`` holds one row of M channels per position of the grid padded by HALF on the left,
    right and top (zeros), as float64 integers with ACT_BITS fractional bits.
    """

    def __init__(self, height: int, width: int, channels: int) -> None:
        self.h, self.w, self.m = height, width, channels
        self.pw = pw = width + 2 * HALF
        self.data = np.zeros(((height + HALF) * pw, channels), dtype=np.float64)
        offsets = np.array([dr * pw + dc for dr, dc in TAPS], dtype=np.int64)
        #: per step: (flat positions, their rows in `data`, the rows of their TAPS)
        self.steps: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        for pos in wavefront_steps(height, width):
            padded = (pos // width + HALF) * pw + (pos % width + HALF)
            self.steps.append((pos, padded, padded[:, None] + offsets[None, :]))

    def padded_index(self, pos: np.ndarray) -> np.ndarray:
        """Rows of `data` of the flat positions `pos`."""
        return (pos // self.w + HALF) * self.pw + (pos % self.w + HALF)

    def to_image(self, rows: np.ndarray) -> torch.Tensor:
        """(H·W, M) rows -> (1, M, H, W) tensor."""
        return torch.from_numpy(rows).view(1, self.h, self.w, -1).permute(0, 3, 1, 2).contiguous()


class Stepper(Protocol):
    """A predictor's state over one image, called once per step in wavefront order."""

    def predict(self, pos: np.ndarray, padded: np.ndarray, taps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(mean_int, scale_int), (n, M) int64 with ACT_BITS fractional bits, of the n positions
        of one step (`pos` flat, `padded` their grid rows, `taps` the rows of their TAPS)."""
        ...

    def commit(self, pos: np.ndarray, padded: np.ndarray, rows: np.ndarray) -> None:
        """Called once the step's latents (`rows`, ŷ'·2^ACT_BITS) are in the grid."""
        ...


class Predictor(Protocol):
    """The fixed-point context path of a model: starts a :class:`Stepper` per image."""

    def start(self, grid: Grid, hyper: torch.Tensor) -> Stepper:
        """The stepper over `grid`, given the hyper features (1, 2M, H, W) int64."""
        ...


def hyper_rows(hyper: torch.Tensor) -> np.ndarray:
    """(1, C, H, W) integer features -> (H·W, C) int64 rows."""
    c = hyper.shape[1]
    return hyper.to("cpu", torch.int64).permute(0, 2, 3, 1).reshape(-1, c).numpy()


def latent_rows(r: np.ndarray, mean_int: np.ndarray) -> np.ndarray:
    """ŷ'·2^ACT_BITS = r·2^ACT_BITS + μ_int, clamped, as float64 grid rows."""
    r = np.clip(r, -RESIDUAL_LIMIT, RESIDUAL_LIMIT)
    return np.clip((r << ACT_BITS) + mean_int, -LIMIT, LIMIT).astype(np.float64)


def encode_wavefront(
    y: torch.Tensor,
    hyper: torch.Tensor,
    predictor: Predictor,
    gaussian: GaussianTables,
    escapes: EscapeWriter,
) -> tuple[bytes, int, torch.Tensor, torch.Tensor]:
    """Quantize and code y' (1, M, H, W) float in wavefront order.

    Returns (stream bytes, symbol count, residual r, mean_int), the last two (1, M, H, W) int64:
    ŷ' = r + mean_int / 2^ACT_BITS is what the decoder reconstructs.
    """
    grid = Grid(y.shape[2], y.shape[3], y.shape[1])
    stepper = predictor.start(grid, hyper)
    y_rows = y.detach().to("cpu", torch.float32).permute(0, 2, 3, 1).reshape(-1, grid.m).numpy()
    residual = np.zeros((grid.h * grid.w, grid.m), dtype=np.int64)
    means = np.zeros_like(residual)
    encoder = IndexedEncoder(gaussian.tables, escapes)
    with threadpool_limits(limits=1, user_api="blas"):  # see SINGLE_THREAD_NOTE
        for pos, padded, taps in grid.steps:
            mean_int, scale_int = stepper.predict(pos, padded, taps)
            mu = mean_int.astype(np.float32) / np.float32(1 << ACT_BITS)
            r = np.clip(np.round(y_rows[pos] - mu), -RESIDUAL_LIMIT, RESIDUAL_LIMIT).astype(np.int64)
            grid.data[padded] = latent_rows(r, mean_int)
            stepper.commit(pos, padded, grid.data[padded])
            residual[pos], means[pos] = r, mean_int
            encoder.add(r, gaussian.index(scale_int))
    return encoder.finish(), encoder.count, grid.to_image(residual), grid.to_image(means)


def decode_wavefront(
    data: bytes,
    hyper: torch.Tensor,
    predictor: Predictor,
    channels: int,
    gaussian: GaussianTables,
    escapes: EscapeReader,
    what: str = "y",
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Inverse of :func:`encode_wavefront`: (residual, mean_int, scale index), (1, M, H, W) int64.

    A stream that is not a whole number of words, ends early or leaves words unused is a
    FormatError.
    """
    _, _, h, w = hyper.shape
    decoder = IndexedDecoder(data, gaussian.tables, escapes, what)
    grid = Grid(h, w, channels)
    stepper = predictor.start(grid, hyper)
    residual = np.zeros((grid.h * grid.w, grid.m), dtype=np.int64)
    means = np.zeros_like(residual)
    indices = np.zeros_like(residual)
    with threadpool_limits(limits=1, user_api="blas"):  # see SINGLE_THREAD_NOTE
        for pos, padded, taps in grid.steps:
            mean_int, scale_int = stepper.predict(pos, padded, taps)
            index = gaussian.index(scale_int)
            r = decoder.decode(index).reshape(-1, grid.m)
            grid.data[padded] = latent_rows(r, mean_int)
            stepper.commit(pos, padded, grid.data[padded])
            residual[pos], means[pos], indices[pos] = r, mean_int, index.reshape(-1, grid.m)
    decoder.finish()
    return grid.to_image(residual), grid.to_image(means), grid.to_image(indices)
