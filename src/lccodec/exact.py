"""Fixed-point networks that every entropy path uses, evaluated exactly on any machine.

Whatever decides a symbol's probability must come out bit-identical in encoder and decoder,
whatever the CPU, GPU, thread count or memory layout. Float convolutions do not give that.
:class:`ExactNet` turns a trained float stack of Conv2d / ConvTranspose2d / ReLU into integer
arithmetic:

* weights are rounded to ``W_int = round(W * 2^f)`` (|W_int| < 2^15, f per layer, from the
  fp16 weights: the rounding is itself exact), biases to the accumulator's scale;
* activations are integers with ACT_BITS fractional bits, clamped to ±2^ACT_CLAMP_BITS;
* each convolution runs in float64 on integer-valued tensors. With |x| ≤ 2^24, |W| < 2^15 and a
  fan-in below 2^13, every partial sum stays below 2^52 < 2^53, so the float64 result is the
  exact integer whatever the summation order;
* the accumulator is rescaled by a rounding arithmetic shift in int64.

The output is int64 with ACT_BITS fractional bits.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

ACT_BITS = 8
ACT_CLAMP_BITS = 24
WEIGHT_BITS = 15
MAX_FAN_IN = 1 << 13


def _shift_round(x: torch.Tensor, shift: int) -> torch.Tensor:
    """round(x / 2^shift) for int64 x (ties toward +inf); shift may be negative."""
    if shift <= 0:
        return x << (-shift)
    return (x + (1 << (shift - 1))) >> shift


class _ExactLayer:
    def __init__(self, layer: nn.Module, in_bits: int) -> None:
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
        return _shift_round(acc, self.acc_bits - ACT_BITS)


class ExactNet:
    """Integer evaluation of a float nn.Sequential of Conv2d / ConvTranspose2d / ReLU.

    Call it with an integer tensor (no fractional bits, e.g. the quantized z); it returns an
    int64 tensor with ACT_BITS fractional bits. Runs on the CPU.
    """

    def __init__(self, net: nn.Sequential) -> None:
        self.steps: list[object] = []
        bits = 0
        for layer in net:
            if isinstance(layer, (nn.Conv2d, nn.ConvTranspose2d)):
                step = _ExactLayer(layer, bits)
                self.steps.append(step)
                bits = ACT_BITS
            elif isinstance(layer, nn.ReLU):
                self.steps.append("relu")
            else:
                raise TypeError(f"no exact form of {type(layer).__name__}")

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        limit = (1 << ACT_CLAMP_BITS) - 1
        x = x.detach().to("cpu", torch.int64).clamp(-limit, limit).contiguous()
        for step in self.steps:
            if step == "relu":
                x = x.clamp_min(0)
            else:
                x = step(x).clamp(-limit, limit)
        return x
