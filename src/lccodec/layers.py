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

    def norm(self, x: torch.Tensor) -> torch.Tensor:
        """beta_i + sum_j gamma_ij x_j^2 (clamped away from 0)."""
        beta = F.softplus(self.beta_raw) + 1e-6
        gamma = F.softplus(self.gamma_raw)
        c = gamma.shape[0]
        return F.conv2d(x * x, gamma.view(c, c, 1, 1).to(x.dtype), beta.to(x.dtype)).clamp_min(1e-10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        norm = self.norm(x)
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


class GSDN(GDN):
    """Generalized subtractive and divisive normalization (Qian et al. 2021).

    Analysis: ``w_i = (u_i − (ν_i + Σ_j τ_ij u_j)) / sqrt(β_i + Σ_j γ_ij u_j²)``; the inverse
    (IGSDN, synthesis): ``û_i = ŵ_i · sqrt(β̂_i + Σ_j γ̂_ij ŵ_j²) + (ν̂_i + Σ_j τ̂_ij ŵ_j)``.
    ν and τ start at zero, so a fresh GSDN equals GDN and can take a GDN's trained β, γ.
    """

    def __init__(self, channels: int, inverse: bool = False) -> None:
        super().__init__(channels, inverse)
        self.nu = nn.Parameter(torch.zeros(channels))
        self.tau = nn.Parameter(torch.zeros(channels, channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c = self.tau.shape[0]
        shift = F.conv2d(x, self.tau.view(c, c, 1, 1).to(x.dtype), self.nu.to(x.dtype))
        norm = self.norm(x)
        if self.inverse:
            return x * torch.sqrt(norm) + shift
        return (x - shift) * torch.rsqrt(norm)


class TapConv(nn.Module):
    """A k×k convolution whose kernel is non-zero only at `taps`, (d_row, d_col) offsets from
    the centre; only those taps are stored (a masked convolution without the zeros)."""

    def __init__(self, cin: int, cout: int, taps: tuple[tuple[int, int], ...], kernel: int = 5) -> None:
        super().__init__()
        self.taps, self.kernel = tuple(taps), kernel
        bound = 1.0 / math.sqrt(cin * len(self.taps))
        self.weight = nn.Parameter(torch.empty(cout, cin, len(self.taps)).uniform_(-bound, bound))
        self.bias = nn.Parameter(torch.empty(cout).uniform_(-bound, bound))

    def full_weight(self) -> torch.Tensor:
        """The (cout, cin, k, k) kernel, zero outside the taps."""
        cout, cin, _ = self.weight.shape
        half = self.kernel // 2
        flat = torch.tensor([(half + dr) * self.kernel + half + dc for dr, dc in self.taps],
                            device=self.weight.device)
        full = self.weight.new_zeros(cout, cin, self.kernel * self.kernel)
        full = full.index_copy(2, flat, self.weight)
        return full.view(cout, cin, self.kernel, self.kernel)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.full_weight().to(x.dtype), self.bias.to(x.dtype), padding=self.kernel // 2)


# Orthonormal colour transform (luma-like, two colour differences) used by the linear path.
_COLOUR = torch.tensor([[1.0, 1.0, 1.0], [1.0, 0.0, -1.0], [1.0, -2.0, 1.0]])
_COLOUR = _COLOUR / _COLOUR.norm(dim=1, keepdim=True)


def _haar_matrix(n: int) -> torch.Tensor:
    """The n×n orthonormal Haar matrix (n a power of 2), rows ordered coarse to fine."""
    h = torch.ones(1, 1)
    while h.shape[0] < n:
        k = h.shape[0]
        h = torch.cat([torch.kron(h, torch.tensor([[1.0, 1.0]])),
                       torch.kron(torch.eye(k), torch.tensor([[1.0, -1.0]]))]) / math.sqrt(2.0)
    return h


def haar_lowpass_basis(block: int = 16, keep: int = 8) -> torch.Tensor:
    """(3·keep², 3, block, block): an orthonormal basis of the colour images that are constant
    on (block/keep)² pixel cells of a block² block: the keep² coarsest 2-D Haar functions per
    channel of an orthonormal colour transform (what a block/keep-times downsampled image holds)."""
    rows = _haar_matrix(keep).repeat_interleave(block // keep, dim=1) / math.sqrt(block // keep)
    spatial = torch.einsum("ik,jl->ijkl", rows, rows).reshape(keep * keep, block, block)
    return torch.einsum("cd,nkl->cndkl", _COLOUR, spatial).reshape(3 * keep * keep, 3, block, block)


LINEAR_SCALE = 6.0  # the linear path's latent units per orthonormal Haar coefficient


class LinearAnalysis(nn.Conv2d):
    """A linear path beside the analysis transform (after AuxT, Li et al. 2025): a block-wise
    (stride = block) linear map of the image to the latent, LINEAR_SCALE × a weight that starts
    as the Haar low-pass basis, so that at step 0 the latent already codes a coarse image.

    The scale is a constant outside the weight, so Adam moves the weight in the units of the
    basis (the same relative step as any other layer); trained with the rest."""

    def __init__(self, channels: int, block: int = 16) -> None:
        super().__init__(3, channels, block, stride=block)
        with torch.no_grad():
            self.weight.zero_()
            self.bias.zero_()
            basis = haar_lowpass_basis(block)
            n = min(channels, basis.shape[0])
            self.weight[:n] = basis[:n]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # the same map as the strided convolution, as pixel-unshuffle and a 1×1 convolution
        # (a matrix product): oneDNN's block×block, stride-block kernels are several times slower
        w = self.weight.reshape(self.out_channels, -1, 1, 1).to(x.dtype)
        y = F.conv2d(F.pixel_unshuffle(x, self.stride[0]), w, self.bias.to(x.dtype))
        return y * LINEAR_SCALE


class LinearSynthesis(nn.ConvTranspose2d):
    """The synthesis side of the linear path: a weight that starts as the transpose of
    :class:`LinearAnalysis`'s (its inverse on the kept coefficients), applied to y / LINEAR_SCALE."""

    def __init__(self, channels: int, block: int = 16) -> None:
        super().__init__(channels, 3, block, stride=block)
        with torch.no_grad():
            self.weight.zero_()
            self.bias.zero_()
            basis = haar_lowpass_basis(block)
            n = min(channels, basis.shape[0])
            self.weight[:n] = basis[:n]

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        # the transposed convolution as a 1×1 transposed convolution and pixel-shuffle (see
        # LinearAnalysis.forward)
        w = self.weight.reshape(self.in_channels, -1, 1, 1).to(y.dtype)
        x = F.pixel_shuffle(F.conv_transpose2d(y * (1.0 / LINEAR_SCALE), w), self.stride[0])
        return x + self.bias.to(x.dtype).view(1, -1, 1, 1)
