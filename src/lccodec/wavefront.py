"""Wavefront coding of a latent grid under a 5×5 causal (type-A) context, exact on any machine.

A latent at (row, col) is predicted from the 12 positions of its 5×5 neighbourhood that come
before it in raster order: the two rows above (columns col−2 … col+2) and the two positions to
its left. Every one of them has a smaller ``t = 3·row + col``, so all latents with equal t are
independent: an H×W grid is decoded in ``3H + W − 3`` steps (:func:`wavefront_steps`), each step
one gather, one matmul for the masked convolution and one per 1×1 entropy-parameter layer.

:class:`ExactContext` evaluates that context path in fixed point like :mod:`lccodec.exact`:
the decoded latents enter as integers with ACT_BITS fractional bits (ŷ'·256 = r·256 + μ_int),
weights are 15-bit integers, products are summed in float64 on integer values (every partial
sum < 2^53, so any summation order gives the same exact integer) and rescaled by rounding shifts
in int64. The encoder (:func:`encode_wavefront`) and the decoder (:func:`decode_wavefront`) run
the same step function, so μ and the scale index agree bit for bit across machines; a one-shot
evaluation over a finished grid (:meth:`ExactContext.full`) gives the same integers again.

Symbol order of the stream: step t = 0, 1, …; within a step the symbols are the (position,
channel) pairs, positions by ascending row, grouped by table as in :mod:`lccodec.coding.indexed`
(table 0 first, flat order kept within a table). Escaped values follow that same order.
"""
from __future__ import annotations

import constriction
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .coding import CdfTables, EscapeReader, EscapeWriter
from .errors import FormatError
from .exact import ACT_BITS, ACT_CLAMP_BITS, _ExactLayer, _shift_round

KERNEL = 5
HALF = KERNEL // 2
#: (d_row, d_col) of the causal taps of the 5×5 mask, in the order of the gathered patches.
TAPS: tuple[tuple[int, int], ...] = tuple(
    [(dr, dc) for dr in (-2, -1) for dc in range(-2, 3)] + [(0, -2), (0, -1)]
)
LIMIT = (1 << ACT_CLAMP_BITS) - 1
RESIDUAL_LIMIT = 1 << 31  # the encoder codes residuals within ±2^31 (escapes carry them)


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


class ExactContext:
    """Integer evaluation of masked 5×5 conv → concat(hyper) → 1×1 stack (ReLU between)."""

    def __init__(self, context_conv: nn.Conv2d, entropy_parameters: nn.Sequential) -> None:
        masked = nn.Conv2d(context_conv.in_channels, context_conv.out_channels, KERNEL, padding=HALF)
        with torch.no_grad():
            w = context_conv.weight.detach().to(torch.float16).cpu()
            masked.weight.copy_(w * causal_mask().to(w.dtype))
            masked.bias.copy_(context_conv.bias.detach().cpu())
        self.conv = _ExactLayer(masked, ACT_BITS)
        self.channels = context_conv.in_channels
        w = self.conv.weight  # (2M, M, 5, 5), integer-valued float64
        self.ctx_matrix = torch.stack(
            [w[:, :, HALF + dr, HALF + dc].T for dr, dc in TAPS]
        ).reshape(len(TAPS) * self.channels, -1).contiguous()
        self.layers: list[tuple[_ExactLayer, torch.Tensor, bool]] = []
        convs = [m for m in entropy_parameters if isinstance(m, nn.Conv2d)]
        for m in entropy_parameters:
            if not isinstance(m, (nn.Conv2d, nn.ReLU)) or (
                isinstance(m, nn.Conv2d) and m.kernel_size != (1, 1)
            ):
                raise TypeError(f"no exact form of {m} in the entropy parameters")
        for i, m in enumerate(convs):
            layer = _ExactLayer(m, ACT_BITS)
            matrix = layer.weight[:, :, 0, 0].T.contiguous()
            self.layers.append((layer, matrix, i < len(convs) - 1))

    def _stack(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Rows of [context, hyper] (int64) -> (mean_int, scale_int) rows."""
        for layer, matrix, relu in self.layers:
            acc = (x.to(torch.float64) @ matrix).to(torch.int64) + layer.bias
            x = _shift_round(acc, layer.acc_bits - ACT_BITS).clamp_(-LIMIT, LIMIT)
            if relu:
                x = x.clamp_min_(0)
        return x.chunk(2, dim=1)

    def _context(self, acc: torch.Tensor) -> torch.Tensor:
        acc = acc.to(torch.int64) + self.conv.bias
        return _shift_round(acc, self.conv.acc_bits - ACT_BITS).clamp_(-LIMIT, LIMIT)

    def step(self, grid: torch.Tensor, taps: torch.Tensor, hyper_rows: torch.Tensor):
        """Entropy parameters of n positions.

        grid: (P, M) float64, the padded latent grid (integers, ACT_BITS fractional bits);
        taps: (n, 12) int64 rows of `grid` holding each position's causal neighbours;
        hyper_rows: (n, 2M) int64. Returns (mean_int, scale_int), each (n, M) int64.
        """
        n = taps.shape[0]
        patches = grid.index_select(0, taps.view(-1)).view(n, -1)
        ctx = self._context(patches @ self.ctx_matrix)
        return self._stack(torch.cat([ctx, hyper_rows], dim=1))

    def full(self, y_int: torch.Tensor, hyper: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """One-shot evaluation over a finished grid: y_int (1, M, H, W), hyper (1, 2M, H, W).

        Returns (mean_int, scale_int) as (1, M, H, W) int64 — the same integers as the steps.
        """
        _, m, h, w = y_int.shape
        x = y_int.to("cpu", torch.int64).clamp(-LIMIT, LIMIT).to(torch.float64)
        acc = F.conv2d(x, self.conv.weight, None, 1, HALF)
        ctx = self._context(acc.permute(0, 2, 3, 1).reshape(h * w, -1))
        rows = hyper.to("cpu", torch.int64).permute(0, 2, 3, 1).reshape(h * w, -1)
        mean, scale = self._stack(torch.cat([ctx, rows], dim=1))
        shape = lambda t: t.reshape(1, h, w, m).permute(0, 3, 1, 2).contiguous()  # noqa: E731
        return shape(mean), shape(scale)


def scale_index(scale_int: torch.Tensor, bounds: np.ndarray) -> np.ndarray:
    """First k with bounds[k] ≥ scale_int (or the last table), flat int64."""
    index = np.searchsorted(bounds, scale_int.numpy().ravel(), side="left")
    return np.minimum(index, len(bounds) - 1)


def _by_table(index: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(order, tables, counts): positions sorted by table (stable), and each used table's count."""
    order = np.argsort(index, kind="stable")
    tables, counts = np.unique(index[order], return_counts=True)
    return order, tables, counts


class _Grid:
    """The padded latent grid being filled in, and each step's positions and tap rows."""

    def __init__(self, hyper: torch.Tensor) -> None:
        _, c2, h, w = hyper.shape
        self.h, self.w, self.m = h, w, c2 // 2
        self.pw = w + 2 * HALF
        self.data = torch.zeros(((h + HALF) * self.pw, self.m), dtype=torch.float64)
        self.hyper = hyper.to("cpu", torch.int64).permute(0, 2, 3, 1).reshape(h * w, c2)
        offsets = torch.tensor([dr * self.pw + dc for dr, dc in TAPS], dtype=torch.int64)
        self.steps = []
        for pos in wavefront_steps(h, w):
            pos = torch.from_numpy(pos)
            padded = (pos // w + HALF) * self.pw + (pos % w + HALF)
            self.steps.append((pos, padded, padded[:, None] + offsets[None, :]))

    def to_image(self, rows: torch.Tensor) -> torch.Tensor:
        """(H·W, M) rows -> (1, M, H, W)."""
        return rows.view(1, self.h, self.w, self.m).permute(0, 3, 1, 2).contiguous()


def _latent_rows(r: torch.Tensor, mean_int: torch.Tensor) -> torch.Tensor:
    """ŷ'·2^ACT_BITS = r·2^ACT_BITS + μ_int, clamped, as float64 grid rows."""
    r = r.clamp(-RESIDUAL_LIMIT, RESIDUAL_LIMIT)
    return ((r << ACT_BITS) + mean_int).clamp_(-LIMIT, LIMIT).to(torch.float64)


def encode_wavefront(
    y: torch.Tensor,
    hyper: torch.Tensor,
    context: ExactContext,
    bounds: np.ndarray,
    tables: CdfTables,
    escapes: EscapeWriter,
) -> tuple[bytes, int, torch.Tensor, torch.Tensor]:
    """Quantize and code y' (1, M, H, W) float in wavefront order.

    Returns (stream bytes, symbol count, residual r, mean_int), the last two (1, M, H, W) int64:
    ŷ' = r + mean_int / 2^ACT_BITS is what the decoder reconstructs.
    """
    grid = _Grid(hyper)
    y_rows = y.detach().to("cpu", torch.float32).permute(0, 2, 3, 1).reshape(grid.h * grid.w, grid.m)
    residual = torch.zeros((grid.h * grid.w, grid.m), dtype=torch.int64)
    means = torch.zeros_like(residual)
    coded = []
    for pos, padded, taps in grid.steps:
        mean_int, scale_int = context.step(grid.data, taps, grid.hyper[pos])
        mu = mean_int.to(torch.float32) / float(1 << ACT_BITS)
        r = torch.round(y_rows[pos] - mu).clamp_(-RESIDUAL_LIMIT, RESIDUAL_LIMIT).to(torch.int64)
        grid.data.index_copy_(0, padded, _latent_rows(r, mean_int))
        residual[pos], means[pos] = r, mean_int
        coded.append((r.numpy().ravel(), scale_index(scale_int, bounds)))

    plan = []
    for values, index in coded:  # escapes in decode order
        order, used, counts = _by_table(index)
        values, index = values[order], index[order]
        bins = values - tables.lo[index]
        esc_bin = tables.bins[index] - 1
        escaped = (bins < 0) | (bins >= esc_bin)
        escapes.write(values[escaped].tolist())
        plan.append((np.where(escaped, esc_bin, bins).astype(np.int32), used, counts))
    coder = constriction.stream.stack.AnsCoder()
    for bins, used, counts in reversed(plan):
        ends = np.cumsum(counts)
        for k, end, n in zip(used[::-1], ends[::-1], counts[::-1]):
            coder.encode_reverse(bins[end - n : end], tables.model(int(k)))
    words = coder.get_compressed().astype("<u4", copy=False)
    return words.tobytes(), int(residual.numel()), grid.to_image(residual), grid.to_image(means)


def decode_wavefront(
    data: bytes,
    hyper: torch.Tensor,
    context: ExactContext,
    bounds: np.ndarray,
    tables: CdfTables,
    escapes: EscapeReader,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Inverse of :func:`encode_wavefront`: (residual, mean_int, scale index), (1, M, H, W) int64.

    A stream that is not a whole number of words, ends early or leaves words unused is a
    FormatError.
    """
    if len(data) % 4:
        raise FormatError("corrupt: entropy-coded stream is not a whole number of words")
    grid = _Grid(hyper)
    residual = torch.zeros((grid.h * grid.w, grid.m), dtype=torch.int64)
    means = torch.zeros_like(residual)
    indices = torch.zeros_like(residual)
    words = np.frombuffer(data, dtype="<u4").astype(np.uint32)
    try:
        coder = constriction.stream.stack.AnsCoder(words)
        for pos, padded, taps in grid.steps:
            mean_int, scale_int = context.step(grid.data, taps, grid.hyper[pos])
            index = scale_index(scale_int, bounds)
            order, used, counts = _by_table(index)
            bins = np.concatenate(
                [np.asarray(coder.decode(tables.model(int(k)), int(n)), dtype=np.int64)
                 for k, n in zip(used, counts)]
            )
            sorted_index = index[order]
            values = bins + tables.lo[sorted_index]
            esc = np.flatnonzero(bins == tables.bins[sorted_index] - 1)
            if esc.size:
                values[esc] = escapes.read(esc.size)
            flat = np.empty_like(values)
            flat[order] = values
            r = torch.from_numpy(flat).view(-1, grid.m)
            grid.data.index_copy_(0, padded, _latent_rows(r, mean_int))
            residual[pos], means[pos] = r, mean_int
            indices[pos] = torch.from_numpy(index).view(-1, grid.m)
        if not coder.is_empty():
            raise FormatError("corrupt: the y stream holds more data than its symbols")
    except FormatError:
        raise
    except Exception as exc:  # constriction raises on malformed word sequences
        raise FormatError(f"corrupt: entropy-coded stream cannot be decoded ({exc})") from None
    return grid.to_image(residual), grid.to_image(means), grid.to_image(indices)
