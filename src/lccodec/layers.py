"""Neural-network building blocks shared by the models: GDN/IGDN, convolutions, quality gains."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def conv(cin: int, cout: int, kernel: int = 5, stride: int = 2) -> nn.Conv2d:
    """A 'same' convolution that downsamples by `stride`."""
    return nn.Conv2d(cin, cout, kernel, stride=stride, padding=kernel // 2)


def deconv(cin: int, cout: int, kernel: int = 5, stride: int = 2) -> nn.ConvTranspose2d:
    """A transposed convolution that upsamples by `stride` exactly."""
    return nn.ConvTranspose2d(
        cin, cout, kernel, stride=stride, padding=kernel // 2, output_padding=stride - 1
    )


def _inv_softplus(x: float) -> float:
    return x + math.log(-math.expm1(-x))


class GDN(nn.Module):
    """Generalized divisive normalization (Ballé et al. 2016).

    ``y_i = x_i / sqrt(beta_i + sum_j gamma_ij x_j^2)``; with ``inverse=True`` the IGDN of the
    synthesis transform multiplies instead. beta and gamma are kept positive by a softplus.
    """

    def __init__(self, channels: int, inverse: bool = False) -> None:
        super().__init__()
        self.inverse = inverse
        self.beta_raw = nn.Parameter(torch.full((channels,), _inv_softplus(1.0)))
        gamma = torch.full((channels, channels), _inv_softplus(1e-4))
        gamma.diagonal().fill_(_inv_softplus(0.1))
        self.gamma_raw = nn.Parameter(gamma)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        beta = F.softplus(self.beta_raw) + 1e-6
        gamma = F.softplus(self.gamma_raw)
        c = gamma.shape[0]
        norm = F.conv2d(x * x, gamma.view(c, c, 1, 1).to(x.dtype), beta.to(x.dtype))
        norm = norm.clamp_min(1e-10)
        return x * torch.sqrt(norm) if self.inverse else x * torch.rsqrt(norm)


class QualityGain(nn.Module):
    """Per-channel gain vectors, one per trained quality level (Cui et al. 2021).

    A fractional quality interpolates geometrically between the two neighbouring levels, so one
    set of weights covers a continuous quality range. Level ``i`` is quality ``i + 1``.
    """

    def __init__(
        self, levels: int, channels: int, lambdas: tuple[float, ...] | None = None, inverse: bool = False
    ) -> None:
        """With `lambdas`, start from the ladder gain ∝ sqrt(λ) (its inverse for `inverse`), so
        training separates the rates from the first step instead of learning them slowly."""
        super().__init__()
        init = torch.zeros(levels, channels)
        if lambdas is not None:
            log_l = torch.log(torch.tensor(lambdas, dtype=torch.float32))
            ladder = 0.5 * (log_l - log_l.mean())
            init += (-ladder if inverse else ladder)[:, None]
        self.log_gain = nn.Parameter(init)

    @property
    def levels(self) -> int:
        return self.log_gain.shape[0]

    def forward(self, quality: float | torch.Tensor) -> torch.Tensor:
        """Gains for `quality` in [1, levels]: a (channels,) vector, or (B, channels) for a tensor."""
        q = torch.as_tensor(quality, dtype=torch.float32, device=self.log_gain.device)
        pos = (q - 1.0).clamp(0.0, self.levels - 1.0)
        lo = pos.floor().long().clamp(max=self.levels - 2)
        t = (pos - lo.float()).unsqueeze(-1)
        log_g = self.log_gain.float()
        return torch.exp(log_g[lo] * (1.0 - t) + log_g[lo + 1] * t)
