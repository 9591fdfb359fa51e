"""The global reference search (Qian et al. 2021): exact on any machine, and its training twin.

For a target latent the decoder compares its *query* — the similarity embedding e of its four
causal neighbours (left, top-left, top, top-right) — with the same query of every candidate:
an already-decoded position inside the search window. The best candidate b gives the relevant
latents (b's centre and its left/top neighbours), transferred by a masked convolution and
weighted by the similarity S and the confidence U of b::

    ref(a) = S(a, b) · U(b) · transfer(ŷ' around b)

Exactness (every machine picks the same b and the same weights):

* e = clamp(round(P·ŷ'), ±127) per position, with P a fixed-point 1×1 projection (EMBED
  channels), so a query is an integer vector of D = 4·EMBED entries with |entry| ≤ 127 and every
  dot product and squared norm is an integer below 2^21: float32 products are exact.
* The best candidate maximises ``score = ⌊dot·|dot|·2^20 / |k|²⌋`` (int64; the cosine ordering,
  since the target's own norm is common) over candidates with dot > 0 and |k|² > 0; ties go to the
  first candidate in raster order. No candidate: no reference (ref = 0).
* S8 = ⌊256·cos⌋ = isqrt(⌊dot²·2^16 / (|q|²·|k|²)⌋), computed in integers.
* U8(b) = the context-only model's probability of ŷ'_b, averaged over channels, from an integer
  table indexed by (its scale index, |ŷ' − μ_ctx| in quarter steps): see :func:`confidence_table`.

"Already decoded" is the wavefront order of :mod:`lccodec.exact.wavefront`: b is a candidate of a iff
t_b < t_a (t = 3·row + col) and b lies in a's window (rows r_a − R … , columns c_a ± C). Training
(:func:`candidate_mask`) uses the same rule. The window is recorded in the file header.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import FormatError
from ..identity import identity
from .fixed_point import ACT_BITS

QUERY_TAPS: tuple[tuple[int, int], ...] = ((-1, -1), (-1, 0), (-1, 1), (0, -1))
RELEVANT_TAPS: tuple[tuple[int, int], ...] = ((-1, -1), (-1, 0), (-1, 1), (0, -1), (0, 0))
EMBED = 32  # channels of the similarity embedding
EMBED_LIMIT = 127
SCORE_BITS = 20
CONF_BUCKETS = 64  # |ŷ' − μ| in quarter steps, 0 … 15.75 and beyond
CONF_STEP_BITS = 2
CONF_BITS = 16  # table entries are probabilities × 2^16
GROUP = 8  # targets of one step searched together (consecutive rows)
MAX_WINDOW = 128  # the largest rows / cols a decoder accepts: bounds the work a file can ask for
_PARAMS = identity("reference").params  # the window's layout in the header params
assert _PARAMS is not None


@dataclass(frozen=True)
class Window:
    """The search window: `rows` latent rows above the target, `cols` columns either side
    (each 1 … MAX_WINDOW). Stored in the header params as two u16."""

    rows: int
    cols: int

    def pack(self) -> bytes:
        return _PARAMS.pack(self.rows, self.cols)

    @classmethod
    def unpack(cls, params: bytes) -> "Window":
        fields = _PARAMS.unpack(params)
        if fields is None:
            raise FormatError(f"corrupt: reference model params are {len(params)} bytes, not {_PARAMS.size}")
        rows, cols = fields.values()
        if not (1 <= rows <= MAX_WINDOW and 1 <= cols <= MAX_WINDOW):
            raise FormatError(f"corrupt: reference search window {rows}x{cols} is outside 1..{MAX_WINDOW}")
        return cls(rows, cols)


#: 32 latent rows (512 px) above, 64 columns (1024 px) either side: all of a 768×512 image.
DEFAULT_WINDOW = Window(32, 64)


# --------------------------------------------------------------------------- exact side
def confidence_table(levels: np.ndarray) -> np.ndarray:
    """(len(levels), CONF_BUCKETS) int64: round(2^16 · P(bin at deviation d | N(0, σ_k))),
    d = the bucket centre in units of ŷ', P the mass of the unit-wide bin."""
    from math import erf, sqrt

    step = 1.0 / (1 << CONF_STEP_BITS)
    out = np.zeros((len(levels), CONF_BUCKETS), dtype=np.int64)
    for k, sigma in enumerate(levels):
        for j in range(CONF_BUCKETS):
            d = (j + 0.5) * step
            p = 0.5 * (erf((d + 0.5) / (sigma * sqrt(2))) - erf((d - 0.5) / (sigma * sqrt(2))))
            out[k, j] = round(p * (1 << CONF_BITS))
    return out


def confidence(rows: np.ndarray, mean_int: np.ndarray, index: np.ndarray, table: np.ndarray) -> np.ndarray:
    """U8 of n positions: rows, mean_int (n, M) with ACT_BITS fractional bits, index (n, M) the
    context-only scale index. Returns (n,) int64 in 0..256 (probability × 2^8)."""
    dev = np.abs(rows.astype(np.int64) - mean_int) >> (ACT_BITS - CONF_STEP_BITS)
    p = table[index, np.minimum(dev, CONF_BUCKETS - 1)].sum(axis=1)
    return (p // rows.shape[1]) >> (CONF_BITS - 8)


def _isqrt(x: np.ndarray) -> np.ndarray:
    """⌊√x⌋ of non-negative int64 (x < 2^52), exact: float estimate, then integer correction."""
    s = np.sqrt(x.astype(np.float64)).astype(np.int64)
    s -= (s * s > x).astype(np.int64)
    s += ((s + 1) * (s + 1) <= x).astype(np.int64)
    return s


class ExactSearch:
    """The reference search of one image: keys of decoded positions, and per-step queries."""

    def __init__(self, height: int, width: int, window: Window) -> None:
        self.h, self.w, self.window = height, width, window
        n = height * width
        self.keys = np.zeros((n, len(QUERY_TAPS) * EMBED), dtype=np.float32)
        self.norms = np.zeros(n, dtype=np.int64)
        rows, cols = np.divmod(np.arange(n), width)
        self.rows, self.cols, self.t = rows, cols, 3 * rows + cols

    def add(self, pos: np.ndarray, queries: np.ndarray) -> None:
        """Record the queries of positions `pos` as their keys (after their step)."""
        self.keys[pos] = queries
        self.norms[pos] = np.square(queries.astype(np.int64)).sum(axis=1)

    def find(self, pos: np.ndarray, queries: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Best candidate (flat index, −1 for none) and S8 of each target of one step.

        `pos` are the step's targets, rows ascending; queries (n, D) float32 integers.
        """
        best = np.full(len(pos), -1, dtype=np.int64)
        s8 = np.zeros(len(pos), dtype=np.int64)
        qnorm = np.square(queries.astype(np.int64)).sum(axis=1)
        R, C = self.window.rows, self.window.cols
        for start in range(0, len(pos), GROUP):
            sel = slice(start, start + GROUP)
            tp = pos[sel]
            ra, ca, t = self.rows[tp], self.cols[tp], int(self.t[tp[0]])
            r_lo = max(0, int(ra.min()) - R)
            r_hi = min(self.h - 1, (t - 1) // 3)
            c_lo, c_hi = max(0, int(ca.min()) - C), min(self.w - 1, int(ca.max()) + C)
            if r_hi < r_lo or t == 0:
                continue
            cand = (np.arange(r_lo, r_hi + 1)[:, None] * self.w + np.arange(c_lo, c_hi + 1)[None, :]).ravel()
            dots = (queries[sel] @ self.keys[cand].T).astype(np.int64)
            nb = self.norms[cand]
            valid = (
                (self.t[cand][None, :] < t)
                & (self.rows[cand][None, :] >= ra[:, None] - R)
                & (np.abs(self.cols[cand][None, :] - ca[:, None]) <= C)
                & (nb[None, :] > 0)
                & (dots > 0)
            )
            score = np.where(valid, (dots * dots << SCORE_BITS) // np.maximum(nb, 1)[None, :], -1)
            k = np.argmax(score, axis=1)
            rows = np.arange(len(tp))
            found = score[rows, k] >= 0
            d = dots[rows, k]
            denom = np.maximum(qnorm[sel] * nb[k], 1)
            s = np.minimum(_isqrt((d * d << 16) // denom), 256)
            best[sel] = np.where(found, cand[k], -1)
            s8[sel] = np.where(found, s, 0)
        return best, s8


def embed_rows(acc_int: np.ndarray) -> np.ndarray:
    """Projection output (ACT_BITS fractional bits) -> e = clamp(round(·), ±127) as float32."""
    e = (acc_int + (1 << (ACT_BITS - 1))) >> ACT_BITS
    return np.clip(e, -EMBED_LIMIT, EMBED_LIMIT).astype(np.float32)


# ------------------------------------------------------------------------ training side
def causal_positions(height: int, width: int, device: torch.device) -> tuple[torch.Tensor, ...]:
    rows = torch.arange(height, device=device).repeat_interleave(width)
    cols = torch.arange(width, device=device).repeat(height)
    return rows, cols, 3 * rows + cols


def candidate_mask(height: int, width: int, window: Window, device: torch.device) -> torch.Tensor:
    """(H·W, H·W) bool, [a, b] = b is a candidate of a: the decoder's rule (t_b < t_a, window)."""
    rows, cols, t = causal_positions(height, width, device)
    return (
        (t[None, :] < t[:, None])
        & (rows[None, :] >= rows[:, None] - window.rows)
        & ((cols[None, :] - cols[:, None]).abs() <= window.cols)
    )


def shifted(x: torch.Tensor, taps: tuple[tuple[int, int], ...]) -> torch.Tensor:
    """(B, C, H, W) -> (B, len(taps)·C, H, W): out[a] = x[a + tap], zero outside (tap-major)."""
    h, w = x.shape[2:]
    pad = F.pad(x, (1, 1, 1, 1))
    return torch.cat([pad[:, :, 1 + dr : 1 + dr + h, 1 + dc : 1 + dc + w] for dr, dc in taps], dim=1)


def train_search(e: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Differentiable twin of :class:`ExactSearch`: e (B, EMBED, H, W) float embedding.

    Returns best (B, H·W) long (any index where there is no candidate) and S (B, H·W) =
    max(0, cos) of the best candidate (0 without one); S carries gradients, the choice does not.
    """
    q = shifted(e, QUERY_TAPS).flatten(2)  # (B, D, HW)
    qn = q / q.norm(dim=1, keepdim=True).clamp_min(1e-6)
    cos = torch.bmm(qn.transpose(1, 2), qn)  # (B, HW_a, HW_b)
    masked = cos.detach().masked_fill(~mask, -2.0)
    best = masked.argmax(dim=2)
    s = cos.gather(2, best.unsqueeze(2)).squeeze(2)
    has = mask.any(dim=1)[None, :]
    return best, torch.where(has, s.clamp_min(0.0), torch.zeros_like(s))
