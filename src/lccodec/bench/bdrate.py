"""Bjøntegaard delta rate and delta PSNR (VCEG-M33, cubic polynomial fit).

Why our own ~20 lines instead of the `bjontegaard` package (1.3.0): that package imports
matplotlib and scipy at import time (matplotlib is only an optional extra here, scipy is not a
dependency at all), and its "cubic" method is this same numpy polyfit/polyint computation
(from Google's compare-codecs). The classic cubic fit is also what the figures in
shared/anchors/README.md and most learned-compression papers quote, so we implement exactly that:

  BD-rate: fit ln(rate) as a cubic in the distortion metric for each curve, integrate both
  fits over the overlapping metric range, and return exp(mean difference) - 1 in percent
  (negative = the test codec needs fewer bits for the same quality).
  BD-PSNR: fit the metric as a cubic in ln(rate), integrate over the overlapping log-rate range,
  return the mean difference (positive = the test codec is better).

Curves need at least 4 points (a cubic) and an overlapping range; otherwise ValueError.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def _clean(rate: Sequence[float], dist: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    r = np.asarray(rate, dtype=np.float64)
    d = np.asarray(dist, dtype=np.float64)
    if r.shape != d.shape or r.ndim != 1:
        raise ValueError("rate and distortion lists must have the same length")
    keep = np.isfinite(r) & np.isfinite(d) & (r > 0)
    r, d = r[keep], d[keep]
    if len(r) < 4:
        raise ValueError(f"need at least 4 finite rate-distortion points, got {len(r)}")
    return np.log(r), d


def _mean_over(coeffs: np.ndarray, lo: float, hi: float) -> float:
    integral = np.polyint(coeffs)
    return float((np.polyval(integral, hi) - np.polyval(integral, lo)) / (hi - lo))


def _overlap(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    lo, hi = max(a.min(), b.min()), min(a.max(), b.max())
    if not hi > lo:
        raise ValueError("the two curves do not overlap")
    return float(lo), float(hi)


def _quality_at(log_rate: np.ndarray, dist: np.ndarray, rate: float) -> float:
    """The curve's quality at `rate`, interpolated between its points (ends held)."""
    order = np.argsort(log_rate)
    return float(np.interp(np.log(rate), log_rate[order], dist[order]))


def bd_rate(anchor_rate: Sequence[float], anchor_dist: Sequence[float],
            test_rate: Sequence[float], test_dist: Sequence[float], min_rate: float | None = None) -> float:
    """Average rate difference of test vs anchor in percent at equal quality (cubic fit).

    `min_rate` keeps the part of the overlap where both curves spend at least that rate (for
    example the points above 1 bpp): the fits stay those of all points, the integration starts
    at the higher of the two curves' qualities at `min_rate`.
    """
    la, da = _clean(anchor_rate, anchor_dist)
    lt, dt = _clean(test_rate, test_dist)
    lo, hi = _overlap(da, dt)
    if min_rate is not None:
        lo = max(lo, _quality_at(la, da, min_rate), _quality_at(lt, dt, min_rate))
        if not hi > lo:
            raise ValueError(f"the two curves do not overlap above {min_rate:g}")
    diff = _mean_over(np.polyfit(dt, lt, 3), lo, hi) - _mean_over(np.polyfit(da, la, 3), lo, hi)
    return float((np.exp(diff) - 1.0) * 100.0)


def bd_psnr(anchor_rate: Sequence[float], anchor_dist: Sequence[float],
            test_rate: Sequence[float], test_dist: Sequence[float]) -> float:
    """Average quality difference of test vs anchor (in the metric's unit) at equal rate."""
    la, da = _clean(anchor_rate, anchor_dist)
    lt, dt = _clean(test_rate, test_dist)
    lo, hi = _overlap(la, lt)
    return _mean_over(np.polyfit(lt, dt, 3), lo, hi) - _mean_over(np.polyfit(la, da, 3), lo, hi)
