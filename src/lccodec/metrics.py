"""Image quality metrics on 8-bit images (HxWx3, HxWx1 or HxW uint8 arrays)."""
from __future__ import annotations

import math

import numpy as np

#: MS-SSIM needs the smaller side to exceed (11 - 1) * 2**4 pixels (5 scales, 11-tap window).
MS_SSIM_MIN_SIDE = 161


def _pair(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    a = np.asarray(a)
    b = np.asarray(b)
    if a.ndim == 2:
        a = a[:, :, None]
    if b.ndim == 2:
        b = b[:, :, None]
    if a.shape != b.shape:
        raise ValueError(f"image shapes differ: {a.shape} vs {b.shape}")
    if a.ndim != 3:
        raise ValueError(f"expected an HxWxC image, got shape {a.shape}")
    return a, b


def mse(a: np.ndarray, b: np.ndarray) -> float:
    """Mean squared error over all pixels and channels."""
    a, b = _pair(a, b)
    d = a.astype(np.float64) - b.astype(np.float64)
    return float(np.mean(d * d))


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR in dB for 8-bit data: 10·log10(255² / MSE); +inf for identical images."""
    m = mse(a, b)
    return math.inf if m == 0 else 10.0 * math.log10(255.0**2 / m)


def ms_ssim(a: np.ndarray, b: np.ndarray) -> float:
    """MS-SSIM (pytorch-msssim, data range 255, default 5 scales), averaged over channels.

    Grayscale images are scored on their single channel. Returns NaN for images whose smaller
    side is below MS_SSIM_MIN_SIDE, where the 5-scale metric is undefined.
    """
    import torch
    from pytorch_msssim import ms_ssim as _ms_ssim

    a, b = _pair(a, b)
    if min(a.shape[:2]) < MS_SSIM_MIN_SIDE:
        return math.nan
    x = torch.tensor(a, dtype=torch.float32).permute(2, 0, 1)[None]
    y = torch.tensor(b, dtype=torch.float32).permute(2, 0, 1)[None]
    with torch.no_grad():
        return float(_ms_ssim(x, y, data_range=255.0))


def ms_ssim_db(value: float) -> float:
    """MS-SSIM expressed in dB: -10·log10(1 - value); +inf for 1, NaN stays NaN."""
    if math.isnan(value):
        return math.nan
    return math.inf if value >= 1.0 else -10.0 * math.log10(1.0 - value)
