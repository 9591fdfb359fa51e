"""Integer frequency tables: the only thing that decides a symbol's probability at run time.

A :class:`CdfTables` holds K tables. Table k codes the integers ``lo[k] .. lo[k] + n[k] - 2``
as bins ``0 .. n[k] - 2``; its last bin ``n[k] - 1`` is the escape symbol for values outside
that range (the value itself then goes to the escape stream). Counts are positive integers, built
once at export time from the trained float model and stored with the weights, so encoder and
decoder see the same numbers on every machine.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

COUNT_TOTAL = 1 << 20  # resolution of the stored counts (constriction requantizes to 2^24)
TAIL_MASS = 1e-9


@dataclass
class CdfTables:
    """K integer frequency tables, stored flat: counts[offsets[k]:offsets[k+1]] is table k."""

    counts: np.ndarray  # int32, flat
    offsets: np.ndarray  # int64, K + 1
    lo: np.ndarray  # int64, K: the value coded by bin 0 of each table
    _models: dict[int, object] = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        self.counts = np.ascontiguousarray(self.counts, dtype=np.int32)
        self.offsets = np.ascontiguousarray(self.offsets, dtype=np.int64)
        self.lo = np.ascontiguousarray(self.lo, dtype=np.int64)
        sizes = np.diff(self.offsets)
        if (
            self.offsets.ndim != 1
            or len(self.lo) != len(self.offsets) - 1
            or self.offsets[0] != 0
            or self.offsets[-1] != len(self.counts)
            or (sizes < 2).any()
            or (self.counts <= 0).any()
        ):
            raise ValueError("inconsistent CDF tables")

    @property
    def size(self) -> int:
        return len(self.lo)

    @property
    def bins(self) -> np.ndarray:
        """Number of bins of each table, escape bin included."""
        return np.diff(self.offsets)

    def model(self, k: int):
        """constriction model of table k (cached)."""
        m = self._models.get(k)
        if m is None:
            import constriction  # imported on first use: training machines need not have it

            freqs = self.counts[self.offsets[k] : self.offsets[k + 1]].astype(np.float64)
            m = constriction.stream.model.Categorical(freqs, perfect=False)
            self._models[k] = m
        return m

    def as_arrays(self, prefix: str) -> dict[str, np.ndarray]:
        return {f"{prefix}.counts": self.counts, f"{prefix}.offsets": self.offsets, f"{prefix}.lo": self.lo}

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray], prefix: str) -> "CdfTables":
        return cls(arrays[f"{prefix}.counts"], arrays[f"{prefix}.offsets"], arrays[f"{prefix}.lo"])


@dataclass
class GaussianTables:
    """The residual tables of the Gaussian conditional and the scale bounds that choose one.

    ``bounds[k]`` is table k's scale σ_k × 2^8, rounded (ascending): a symbol whose predicted
    scale is σ_int (8 fractional bits) is coded with the first table k with bounds[k] ≥ σ_int,
    or with the last table.
    """

    tables: CdfTables
    bounds: np.ndarray  # int64, one per table

    def __post_init__(self) -> None:
        self.bounds = np.asarray(self.bounds, dtype=np.int64)

    def index(self, scale_int: np.ndarray) -> np.ndarray:
        """The table index of every predicted scale (any shape), flat int64."""
        index = np.searchsorted(self.bounds, np.asarray(scale_int).ravel(), side="left")
        return np.minimum(index, len(self.bounds) - 1)


def _counts_from_pmf(pmf: np.ndarray, escape_mass: float) -> np.ndarray:
    """Positive integer counts for pmf + one escape bin, summing to about COUNT_TOTAL."""
    p = np.append(np.clip(pmf, 0.0, None), max(escape_mass, 0.0))
    p = p / p.sum()
    return np.maximum(1, np.round(p * COUNT_TOTAL)).astype(np.int32)


def _stack(tables: list[tuple[int, np.ndarray]]) -> CdfTables:
    sizes = [len(c) for _, c in tables]
    offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
    return CdfTables(
        np.concatenate([c for _, c in tables]), offsets, np.array([lo for lo, _ in tables])
    )


def build_gaussian_tables(scales: np.ndarray, tail_sigmas: float = 7.0) -> CdfTables:
    """Tables of the residual round(y - mu) under N(0, s) for each scale s (export time)."""
    out = []
    for s in np.asarray(scales, dtype=np.float64):
        t = int(math.ceil(tail_sigmas * s)) + 1
        v = np.arange(-t, t + 1, dtype=np.float64)
        cdf = lambda x: 0.5 * np.vectorize(math.erfc)(-x / (s * math.sqrt(2.0)))  # noqa: E731
        pmf = cdf(v + 0.5) - cdf(v - 0.5)
        tail = 2.0 * 0.5 * math.erfc((t + 0.5) / (s * math.sqrt(2.0)))
        out.append((-t, _counts_from_pmf(pmf, tail)))
    return _stack(out)


def build_factorized_tables(pmf_grid: np.ndarray, grid_lo: int) -> CdfTables:
    """Per-channel tables from probabilities of the integers grid_lo.. (export time).

    Each channel's table is trimmed to the range holding all but TAIL_MASS of its mass; what
    falls outside is escaped.
    """
    out = []
    for p in np.asarray(pmf_grid, dtype=np.float64):
        p = p / max(p.sum(), 1e-300)
        cum = np.cumsum(p)
        first = int(np.searchsorted(cum, TAIL_MASS))
        last = int(np.searchsorted(cum, 1.0 - TAIL_MASS))
        last = min(max(last, first), len(p) - 1)
        kept = p[first : last + 1]
        out.append((grid_lo + first, _counts_from_pmf(kept, 1.0 - kept.sum())))
    return _stack(out)
