"""Differentiable probability models used in training, and their integer tables for coding.

* :class:`FactorizedDensity` — the non-parametric per-channel density of Ballé et al. 2018,
  used for the top latent (z).
* :func:`gaussian_likelihood` — the Gaussian conditional used for y given mean and scale.
* :func:`scale_levels` — the fixed table of scales that y's scale index refers to.

At export time both become integer frequency tables (:mod:`lccodec.coding.tables`); at run
time no float in this module decides a probability.
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

LIKELIHOOD_BOUND = 1e-9
SCALE_MIN = 0.11
SCALE_MAX = 256.0
SCALE_LEVELS = 64


def scale_levels(
    count: int = SCALE_LEVELS, lo: float = SCALE_MIN, hi: float = SCALE_MAX
) -> np.ndarray:
    """Log-spaced scales of the Gaussian tables (float64), as in Ballé/Minnen."""
    return np.exp(np.linspace(math.log(lo), math.log(hi), count))


def _std_normal_cdf(x: torch.Tensor) -> torch.Tensor:
    return 0.5 * torch.erfc(-x * (2**-0.5))


def gaussian_likelihood(y: torch.Tensor, mean: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """P(round bin of y) under N(mean, scale), for (noisy or rounded) y."""
    scale = scale.clamp_min(SCALE_MIN)
    v = (y - mean).abs()  # symmetric: evaluate in the upper tail for accuracy
    upper = _std_normal_cdf((0.5 - v) / scale)
    lower = _std_normal_cdf((-0.5 - v) / scale)
    return (upper - lower).clamp_min(LIKELIHOOD_BOUND)


class FactorizedDensity(nn.Module):
    """Ballé's univariate non-parametric density, one per channel (filters 3, 3, 3)."""

    def __init__(self, channels: int, filters: tuple[int, ...] = (3, 3, 3), init_scale: float = 10.0):
        super().__init__()
        self.channels = channels
        dims = (1, *filters, 1)
        scale = init_scale ** (1.0 / (len(filters) + 1))
        self.matrices = nn.ParameterList()
        self.biases = nn.ParameterList()
        self.factors = nn.ParameterList()
        for i in range(len(filters) + 1):
            init = math.log(math.expm1(1.0 / scale / dims[i + 1]))
            self.matrices.append(nn.Parameter(torch.full((channels, dims[i + 1], dims[i]), init)))
            self.biases.append(nn.Parameter(torch.rand(channels, dims[i + 1], 1) - 0.5))
            if i < len(filters):
                self.factors.append(nn.Parameter(torch.zeros(channels, dims[i + 1], 1)))

    def _logits_cdf(self, x: torch.Tensor) -> torch.Tensor:
        """Logit of the CDF at x, x of shape (channels, 1, n)."""
        for i, matrix in enumerate(self.matrices):
            x = torch.matmul(F.softplus(matrix), x) + self.biases[i]
            if i < len(self.factors):
                x = x + torch.tanh(self.factors[i]) * torch.tanh(x)
        return x

    def likelihood(self, z: torch.Tensor) -> torch.Tensor:
        """P(bin of z) for z of shape (B, C, H, W) (noisy in training, integers when coding)."""
        b, c, h, w = z.shape
        v = z.permute(1, 0, 2, 3).reshape(c, 1, -1).float()
        lower = self._logits_cdf(v - 0.5)
        upper = self._logits_cdf(v + 0.5)
        sign = -torch.sign(lower + upper).detach()
        p = (torch.sigmoid(sign * upper) - torch.sigmoid(sign * lower)).abs()
        p = p.reshape(c, b, h, w).permute(1, 0, 2, 3)
        return p.clamp_min(LIKELIHOOD_BOUND).to(z.dtype)

    @torch.no_grad()
    def pmf_grid(self, lo: int, hi: int) -> np.ndarray:
        """Probabilities of the integers lo..hi for every channel: (channels, hi - lo + 1) float64."""
        grid = torch.arange(lo, hi + 1, dtype=torch.float32).view(1, 1, -1).repeat(self.channels, 1, 1)
        lower = torch.sigmoid(self._logits_cdf(grid - 0.5).double())
        upper = torch.sigmoid(self._logits_cdf(grid + 0.5).double())
        return (upper - lower).abs().squeeze(1).cpu().numpy()
