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
the same step function — a *predictor* with ``start(grid, hyper)`` returning a stepper with
``predict(pos, padded, taps) -> (mean_int, scale_int)`` and ``commit(pos, padded, rows)`` (called
once the step's latents are in the grid; the reference model keeps its search state there) —
so μ and the scale index agree bit for bit across machines; a one-shot evaluation over a
finished grid (:meth:`ExactContext.full`) gives the same integers again.

Symbol order of the stream: step t = 0, 1, …; within a step the symbols are the (position,
channel) pairs, positions by ascending row, grouped by table as in :mod:`lccodec.coding.indexed`
(table 0 first, flat order kept within a table). Escaped values follow that same order.
"""
from __future__ import annotations

import constriction
import numpy as np
import torch
import torch.nn.functional as F
from threadpoolctl import threadpool_limits
from torch import nn

from .coding import CdfTables, EscapeReader, EscapeWriter
from .errors import FormatError
from .exact import ACT_BITS, ACT_CLAMP_BITS, _ExactLayer

KERNEL = 5
HALF = KERNEL // 2
#: (d_row, d_col) of the causal taps of the 5×5 mask, in the order of the gathered patches.
TAPS: tuple[tuple[int, int], ...] = tuple(
    [(dr, dc) for dr in (-2, -1) for dc in range(-2, 3)] + [(0, -2), (0, -1)]
)
LIMIT = (1 << ACT_CLAMP_BITS) - 1
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


def _rescale(acc: np.ndarray, bias: np.ndarray, shift: int, relu: bool) -> np.ndarray:
    """int64(acc) + bias, rounding shift right by `shift` (ties up), clamp (and ReLU)."""
    x = acc.astype(np.int64) + bias
    if shift > 0:
        x = (x + (1 << (shift - 1))) >> shift
    else:
        x = x << -shift
    return np.clip(x, 0 if relu else -LIMIT, LIMIT, out=x)


class ExactMatrix:
    """One fixed-point layer as a matrix: rows (n, fan_in) with ACT_BITS fractional bits ->
    rows (n, cout) with ACT_BITS fractional bits, exact (float64 products of integers)."""

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor, relu: bool) -> None:
        """weight (cout, fan_in) and bias (cout,) float; fan_in rows are tap-major for taps."""
        layer = nn.Conv2d(weight.shape[1], weight.shape[0], 1)
        with torch.no_grad():
            layer.weight.copy_(weight.detach().reshape(layer.weight.shape))
            layer.bias.copy_(bias.detach())
        exact = _ExactLayer(layer, ACT_BITS)
        self.matrix = np.ascontiguousarray(exact.weight[:, :, 0, 0].numpy().T)
        self.bias, self.shift, self.relu = exact.bias.numpy(), exact.acc_bits - ACT_BITS, relu

    def __call__(self, rows: np.ndarray, extra_acc: np.ndarray | float = 0.0) -> np.ndarray:
        """int64 rows out. Rows may hold only the first inputs; `extra_acc` then carries the
        accumulator of the rest (see :meth:`partial`)."""
        acc = rows.astype(np.float64) @ self.matrix[: rows.shape[1]] + extra_acc
        return _rescale(acc, self.bias, self.shift, self.relu)

    def partial(self, rows: np.ndarray, start: int, stop: int) -> np.ndarray:
        """The accumulator of input rows start..stop alone (float64), e.g. the hyper part."""
        return rows.astype(np.float64) @ self.matrix[start:stop]


def tap_matrix(weight: torch.Tensor, taps: tuple[tuple[int, int], ...], kernel: int = KERNEL) -> torch.Tensor:
    """(cout, cin, k, k) kernel -> (cout, len(taps)·cin), tap-major (the gathered patch layout)."""
    half = kernel // 2
    cols = [weight[:, :, half + dr, half + dc] for dr, dc in taps]
    return torch.stack(cols, dim=1).reshape(weight.shape[0], -1)


def exact_stack(net: nn.Sequential) -> list[ExactMatrix]:
    """A stack of 1×1 Conv2d with ReLU between, as exact matrices."""
    for mod in net:
        if not isinstance(mod, (nn.Conv2d, nn.ReLU)) or (
            isinstance(mod, nn.Conv2d) and mod.kernel_size != (1, 1)
        ):
            raise TypeError(f"no exact form of {mod} in an entropy-parameter stack")
    convs = [mod for mod in net if isinstance(mod, nn.Conv2d)]
    return [
        ExactMatrix(mod.weight.flatten(1), mod.bias, relu=i < len(convs) - 1)
        for i, mod in enumerate(convs)
    ]


def run_stack(layers: list[ExactMatrix], rows: np.ndarray, first_extra: np.ndarray | float = 0.0) -> np.ndarray:
    """Evaluate exact layers in turn; `first_extra` joins the first accumulator."""
    x = layers[0](rows, first_extra)
    for layer in layers[1:]:
        x = layer(x)
    return x


class ExactContext:
    """Integer evaluation of masked 5×5 conv → concat(hyper) → 1×1 stack (ReLU between).

    Matrices are float64 numpy arrays of integers; products run through BLAS (exact, see the
    module docstring), which is fast for the few rows of one wavefront step.
    """

    def __init__(self, context_conv: nn.Conv2d, entropy_parameters: nn.Sequential) -> None:
        w = context_conv.weight.detach().to(torch.float16).cpu().float() * causal_mask()
        self.channels = m = context_conv.in_channels
        self.ctx = ExactMatrix(tap_matrix(w, TAPS), context_conv.bias.detach().cpu(), relu=False)
        masked = nn.Conv2d(m, context_conv.out_channels, KERNEL, padding=HALF)
        with torch.no_grad():
            masked.weight.copy_(w)
            masked.bias.copy_(context_conv.bias.detach().cpu())
        self.conv_weight = _ExactLayer(masked, ACT_BITS).weight  # (2M, M, 5, 5) for one-shot use
        self.layers = exact_stack(entropy_parameters)
        self.ctx_width = 2 * m  # rows of the first matrix that read the context; the rest, hyper

    def start(self, grid: "_Grid", hyper: torch.Tensor) -> "_ContextStepper":
        """The per-image stepper over `grid` with hyper features (1, 2M, H, W)."""
        return _ContextStepper(self, grid, hyper)

    def _stack(self, ctx: np.ndarray, hyper_acc: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Context rows (int64) and their hyper accumulator -> (mean_int, scale_int) rows."""
        x = run_stack(self.layers, ctx, hyper_acc)
        return x[:, : self.channels], x[:, self.channels :]

    def full(self, y_int: torch.Tensor, hyper: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """One-shot evaluation over a finished grid: y_int (1, M, H, W), hyper (1, 2M, H, W).

        A float64 convolution and unsplit matrices, yet the same integers as the steps.
        Returns (mean_int, scale_int) as (1, M, H, W) int64.
        """
        _, m, h, w = y_int.shape
        x = y_int.to("cpu", torch.int64).clamp(-LIMIT, LIMIT).to(torch.float64)
        acc = F.conv2d(x, self.conv_weight, None, 1, HALF)
        acc = acc.permute(0, 2, 3, 1).reshape(h * w, -1).numpy()
        ctx = _rescale(acc, self.ctx.bias, self.ctx.shift, False)
        rows = hyper.to("cpu", torch.int64).permute(0, 2, 3, 1).reshape(h * w, -1).numpy()
        x = run_stack(self.layers, np.concatenate([ctx, rows], axis=1))
        out = torch.from_numpy(x).reshape(1, h, w, 2 * m).permute(0, 3, 1, 2).contiguous()
        return out[:, :m].contiguous(), out[:, m:].contiguous()


def hyper_rows(hyper: torch.Tensor) -> np.ndarray:
    """(1, C, H, W) integer features -> (H·W, C) int64 rows."""
    c = hyper.shape[1]
    return hyper.to("cpu", torch.int64).permute(0, 2, 3, 1).reshape(-1, c).numpy()


class _ContextStepper:
    """ExactContext over one image: one predict per wavefront step."""

    def __init__(self, context: ExactContext, grid: "_Grid", hyper: torch.Tensor) -> None:
        self.context, self.grid = context, grid
        self.hyper_acc = context.layers[0].partial(hyper_rows(hyper), context.ctx_width, None)

    def predict(self, pos: np.ndarray, padded: np.ndarray, taps: np.ndarray):
        """(mean_int, scale_int), (n, M) int64, of the n positions of one step."""
        patches = self.grid.data[taps.ravel()].reshape(taps.shape[0], -1)
        ctx = self.context.ctx(patches)
        return self.context._stack(ctx, self.hyper_acc[pos])

    def commit(self, pos: np.ndarray, padded: np.ndarray, rows: np.ndarray) -> None:
        """Called once the step's latents (ŷ'·2^ACT_BITS rows) are in the grid."""


def scale_index(scale_int: np.ndarray, bounds: np.ndarray) -> np.ndarray:
    """First k with bounds[k] ≥ scale_int (or the last table), flat int64."""
    index = np.searchsorted(bounds, np.asarray(scale_int).ravel(), side="left")
    return np.minimum(index, len(bounds) - 1)


def _by_table(index: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(order, tables, counts): positions sorted by table (stable), and each used table's count."""
    order = np.argsort(index, kind="stable")
    tables, counts = np.unique(index[order], return_counts=True)
    return order, tables, counts


class _Grid:
    """The padded latent grid being filled in, and each step's positions and tap rows."""

    def __init__(self, height: int, width: int, channels: int) -> None:
        self.h, self.w, self.m = height, width, channels
        self.pw = pw = width + 2 * HALF
        self.data = np.zeros(((height + HALF) * pw, channels), dtype=np.float64)
        offsets = np.array([dr * pw + dc for dr, dc in TAPS], dtype=np.int64)
        self.steps = []
        for pos in wavefront_steps(height, width):
            padded = (pos // width + HALF) * pw + (pos % width + HALF)
            self.steps.append((pos, padded, padded[:, None] + offsets[None, :]))

    def padded_index(self, pos: np.ndarray) -> np.ndarray:
        """Rows of `data` of the flat positions `pos`."""
        return (pos // self.w + HALF) * self.pw + (pos % self.w + HALF)

    def to_image(self, rows: np.ndarray) -> torch.Tensor:
        """(H·W, M) rows -> (1, M, H, W) tensor."""
        return torch.from_numpy(rows).view(1, self.h, self.w, -1).permute(0, 3, 1, 2).contiguous()


def _latent_rows(r: np.ndarray, mean_int: np.ndarray) -> np.ndarray:
    """ŷ'·2^ACT_BITS = r·2^ACT_BITS + μ_int, clamped, as float64 grid rows."""
    r = np.clip(r, -RESIDUAL_LIMIT, RESIDUAL_LIMIT)
    return np.clip((r << ACT_BITS) + mean_int, -LIMIT, LIMIT).astype(np.float64)


def _decode_step(coder, index: np.ndarray, tables: CdfTables, escapes: EscapeReader) -> np.ndarray:
    """One step's values (flat, in step order), decoded table by table, escapes resolved."""
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
    out = np.empty_like(values)
    out[order] = values
    return out


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
    grid = _Grid(y.shape[2], y.shape[3], y.shape[1])
    stepper = context.start(grid, hyper)
    y_rows = y.detach().to("cpu", torch.float32).permute(0, 2, 3, 1).reshape(-1, grid.m).numpy()
    residual = np.zeros((grid.h * grid.w, grid.m), dtype=np.int64)
    means = np.zeros_like(residual)
    coded = []
    with threadpool_limits(limits=1, user_api="blas"):  # see SINGLE_THREAD_NOTE
        for pos, padded, taps in grid.steps:
            mean_int, scale_int = stepper.predict(pos, padded, taps)
            mu = mean_int.astype(np.float32) / np.float32(1 << ACT_BITS)
            r = np.clip(np.round(y_rows[pos] - mu), -RESIDUAL_LIMIT, RESIDUAL_LIMIT).astype(np.int64)
            grid.data[padded] = _latent_rows(r, mean_int)
            stepper.commit(pos, padded, grid.data[padded])
            residual[pos], means[pos] = r, mean_int
            coded.append((r.ravel(), scale_index(scale_int, bounds)))

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
    return words.tobytes(), int(residual.size), grid.to_image(residual), grid.to_image(means)


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
    _, c2, h, w = hyper.shape
    grid = _Grid(h, w, context.channels)
    stepper = context.start(grid, hyper)
    residual = np.zeros((grid.h * grid.w, grid.m), dtype=np.int64)
    means = np.zeros_like(residual)
    indices = np.zeros_like(residual)
    words = np.frombuffer(data, dtype="<u4").astype(np.uint32)
    with threadpool_limits(limits=1, user_api="blas"):  # see SINGLE_THREAD_NOTE
        try:
            coder = constriction.stream.stack.AnsCoder(words)
            for pos, padded, taps in grid.steps:
                mean_int, scale_int = stepper.predict(pos, padded, taps)
                index = scale_index(scale_int, bounds)
                r = _decode_step(coder, index, tables, escapes).reshape(-1, grid.m)
                grid.data[padded] = _latent_rows(r, mean_int)
                stepper.commit(pos, padded, grid.data[padded])
                residual[pos], means[pos], indices[pos] = r, mean_int, index.reshape(-1, grid.m)
            if not coder.is_empty():
                raise FormatError("corrupt: the y stream holds more data than its symbols")
        except FormatError:
            raise
        except Exception as exc:  # constriction raises on malformed word sequences
            raise FormatError(f"corrupt: entropy-coded stream cannot be decoded ({exc})") from None
    return grid.to_image(residual), grid.to_image(means), grid.to_image(indices)
