"""Fixed-point networks that every entropy path uses, evaluated exactly on any machine.

Whatever decides a symbol's probability must come out bit-identical in encoder and decoder,
whatever the CPU, GPU, thread count or memory layout. Float convolutions do not give that.
:class:`FixedPointLayer` turns one trained Conv2d / ConvTranspose2d into integer arithmetic:

* weights are rounded to ``W_int = round(W * 2^f)`` (|W_int| < 2^15, f per layer, from the
  fp16 weights: the rounding is itself exact), biases to the accumulator's scale;
* activations are integers with ACT_BITS fractional bits, clamped to ±(2^ACT_CLAMP_BITS − 1);
* products are summed in float64 on integer values. With |x| < 2^24, |W| < 2^15 and a fan-in
  below 2^13, every partial sum stays below 2^52 < 2^53, so the float64 result is the exact
  integer whatever the summation order;
* the accumulator is rescaled by a rounding arithmetic shift (ties up) in int64.

One quantisation, two evaluators of it, for two shapes of work:

* :class:`ExactNet` — a stack over whole latent grids (h_s, c3, c2, h_s2): torch convolutions
  on integer-valued float64 tensors;
* :class:`ExactMatrix` — one layer as a matrix over a few rows (the positions of one wavefront
  step): numpy float64 matmuls, where a torch call's fixed cost would dominate.

Both give the same integers for the same layer and input (tests/test_exact.py).
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

ACT_BITS = 8
ACT_CLAMP_BITS = 24
LIMIT = (1 << ACT_CLAMP_BITS) - 1  # activations are clamped to ±LIMIT
WEIGHT_BITS = 15
MAX_FAN_IN = 1 << 13


def shift_round(x: torch.Tensor, shift: int) -> torch.Tensor:
    """round(x / 2^shift) for int64 x (ties toward +inf); shift may be negative."""
    if shift <= 0:
        return x << (-shift)
    return (x + (1 << (shift - 1))) >> shift


def shift_round_rows(acc: np.ndarray, bias: np.ndarray, shift: int, relu: bool) -> np.ndarray:
    """int64(acc) + bias, rounding shift right by `shift` (ties up), clamp (and ReLU): the numpy
    twin of :func:`shift_round` plus the clamp, for :class:`ExactMatrix`."""
    x = acc.astype(np.int64) + bias
    if shift > 0:
        x = (x + (1 << (shift - 1))) >> shift
    else:
        x = x << -shift
    return np.clip(x, 0 if relu else -LIMIT, LIMIT, out=x)


class FixedPointLayer:
    """One Conv2d / ConvTranspose2d in fixed point: integer weights (float64), int64 bias."""

    def __init__(self, layer: nn.Module, in_bits: int) -> None:
        """`in_bits`: fractional bits of the input (0 for quantised latents, ACT_BITS after a
        fixed-point layer or for decoded latents r·2^ACT_BITS + μ_int)."""
        w = layer.weight.detach().to(torch.float16).to(torch.float64).cpu()
        b = layer.bias.detach().to(torch.float16).to(torch.float64).cpu()
        max_abs = float(w.abs().max())
        exp = math.frexp(max_abs)[1] if max_abs > 0 else 0  # max_abs < 2^exp
        self.weight_bits = WEIGHT_BITS - exp
        self.in_bits = in_bits
        self.acc_bits = in_bits + self.weight_bits
        self.weight = torch.round(w * 2.0**self.weight_bits)
        self.bias = torch.round(b * 2.0**self.acc_bits).to(torch.int64)
        self.transposed = isinstance(layer, nn.ConvTranspose2d)
        self.stride = layer.stride
        self.padding = layer.padding
        self.output_padding = getattr(layer, "output_padding", (0, 0))
        k = w.shape[2] * w.shape[3]
        fan_in = (w.shape[0] if self.transposed else w.shape[1]) * k
        if fan_in >= MAX_FAN_IN:
            raise ValueError(f"fan-in {fan_in} too large for exact evaluation")

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        xf = x.to(torch.float64)
        if self.transposed:
            acc = F.conv_transpose2d(
                xf, self.weight, None, self.stride, self.padding, self.output_padding
            )
        else:
            acc = F.conv2d(xf, self.weight, None, self.stride, self.padding)
        acc = acc.to(torch.int64) + self.bias.view(1, -1, 1, 1)
        return shift_round(acc, self.acc_bits - ACT_BITS)


class ExactNet:
    """Integer evaluation of a float nn.Sequential of Conv2d / ConvTranspose2d / ReLU.

    Call it with an integer tensor carrying `in_bits` fractional bits (0: e.g. the quantized z;
    ACT_BITS: a decoded latent r·2^ACT_BITS + μ_int); it returns an int64 tensor with ACT_BITS
    fractional bits. Runs on the CPU.
    """

    def __init__(self, net: nn.Sequential, in_bits: int = 0) -> None:
        self.steps: list[FixedPointLayer | str] = []
        bits = in_bits
        for layer in net:
            if isinstance(layer, (nn.Conv2d, nn.ConvTranspose2d)):
                self.steps.append(FixedPointLayer(layer, bits))
                bits = ACT_BITS
            elif isinstance(layer, nn.ReLU):
                self.steps.append("relu")
            else:
                raise TypeError(f"no exact form of {type(layer).__name__}")

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        x = x.detach().to("cpu", torch.int64).clamp(-LIMIT, LIMIT).contiguous()
        for step in self.steps:
            if step == "relu":
                x = x.clamp_min(0)
            else:
                x = step(x).clamp(-LIMIT, LIMIT)
        return x


class ExactMatrix:
    """One fixed-point layer as a matrix: rows (n, fan_in) with ACT_BITS fractional bits ->
    rows (n, cout) with ACT_BITS fractional bits, exact (float64 products of integers)."""

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor, relu: bool) -> None:
        """weight (cout, fan_in) and bias (cout,) float; fan_in rows are tap-major for taps."""
        layer = nn.Conv2d(weight.shape[1], weight.shape[0], 1)
        with torch.no_grad():
            layer.weight.copy_(weight.detach().reshape(layer.weight.shape))
            layer.bias.copy_(bias.detach())
        fixed = FixedPointLayer(layer, ACT_BITS)
        self.matrix = np.ascontiguousarray(fixed.weight[:, :, 0, 0].numpy().T)
        self.bias, self.shift, self.relu = fixed.bias.numpy(), fixed.acc_bits - ACT_BITS, relu

    def __call__(self, rows: np.ndarray, extra_acc: np.ndarray | float = 0.0) -> np.ndarray:
        """int64 rows out. Rows may hold only the first inputs; `extra_acc` then carries the
        accumulator of the rest (see :meth:`partial`)."""
        acc = rows.astype(np.float64) @ self.matrix[: rows.shape[1]] + extra_acc
        return shift_round_rows(acc, self.bias, self.shift, self.relu)

    def partial(self, rows: np.ndarray, start: int, stop: int | None) -> np.ndarray:
        """The accumulator of input rows start..stop alone (float64), e.g. the hyper part."""
        return rows.astype(np.float64) @ self.matrix[start:stop]


def tap_matrix(weight: torch.Tensor, taps: tuple[tuple[int, int], ...], kernel: int) -> torch.Tensor:
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
