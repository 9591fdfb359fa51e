"""Rate–distortion curves and the CompressAI result layout they are stored in.

One curve per file (CompressAI's `compressai.utils.eval_model` output and the files in
shared/anchors/kodak/):
    {"name": ..., "description": ..., "results": {"bpp": [...], "psnr-rgb": [...],
     "ms-ssim-rgb": [...], "encoding_time": [...], "decoding_time": [...]}}
`load_curves` also reads the two multi-curve layouts seen in practice: a `lic bench --json` run
file ({"codecs": [<one-curve dicts>], "rows": [...]}) and a mapping name -> {"bpp", "psnr-rgb"}
(like shared/anchors/kodak/sota-2022-2025.json).
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..atomic import write_text_atomic
from . import BenchError

#: CompressAI result keys, in the order they are written.
RESULT_KEYS = ("bpp", "psnr-rgb", "ms-ssim-rgb", "encoding_time", "decoding_time")


@dataclass
class Curve:
    """One codec's RD curve: parallel lists, one entry per quality point (NaN where unknown)."""

    name: str
    bpp: list[float]
    psnr: list[float]
    ms_ssim: list[float] = field(default_factory=list)
    encoding_time: list[float] = field(default_factory=list)
    decoding_time: list[float] = field(default_factory=list)
    description: str = ""
    is_anchor: bool = False

    def results(self) -> dict[str, list[float | None]]:
        """The CompressAI `results` mapping (non-finite values written as null)."""
        cols = (self.bpp, self.psnr, self.ms_ssim, self.encoding_time, self.decoding_time)
        return {k: [json_number(v) for v in col] for k, col in zip(RESULT_KEYS, cols) if col}

    def to_dict(self) -> dict[str, Any]:
        """The CompressAI one-curve dict."""
        return {"name": self.name, "description": self.description, "results": self.results()}


def json_number(value: float | None) -> float | None:
    """A float for strict JSON: NaN and ±inf become None."""
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def _floats(values: Any, what: str) -> list[float]:
    if not isinstance(values, list):
        raise ValueError(f"{what} is not a list")
    return [math.nan if v is None else float(v) for v in values]


def curve_from_dict(d: dict[str, Any], default_name: str) -> Curve:
    """Build a Curve from a CompressAI one-curve dict or a bare {"bpp", "psnr-rgb"} dict."""
    res = d.get("results", d)
    if not isinstance(res, dict) or "bpp" not in res or "psnr-rgb" not in res:
        raise ValueError("no results with 'bpp' and 'psnr-rgb'")
    bpp = _floats(res["bpp"], "bpp")
    cols = {k: _floats(res.get(k, []), k) for k in RESULT_KEYS[1:]}
    for k, col in cols.items():
        if col and len(col) != len(bpp):
            raise ValueError(f"'{k}' has {len(col)} values but 'bpp' has {len(bpp)}")
    if not cols["psnr-rgb"]:
        raise ValueError("'psnr-rgb' is empty")
    return Curve(name=str(d.get("name") or default_name), bpp=bpp, psnr=cols["psnr-rgb"],
                 ms_ssim=cols["ms-ssim-rgb"], encoding_time=cols["encoding_time"],
                 decoding_time=cols["decoding_time"], description=str(d.get("description", "")))


def load_curves(path: str | Path) -> list[Curve]:
    """Read every curve in a result file; BenchError with one clear message when it cannot."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise BenchError(f"cannot read anchor {path}: {e.strerror or e}") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise BenchError(f"anchor {path} is not valid JSON: {e}") from None
    try:
        if not isinstance(data, dict):
            raise ValueError("top level is not an object")
        if "results" in data:
            curves = [curve_from_dict(data, path.stem)]
        elif isinstance(data.get("codecs"), list):
            curves = [curve_from_dict(c, f"{path.stem}-{i}") for i, c in enumerate(data["codecs"])]
        else:
            curves = [curve_from_dict(v, k) for k, v in data.items()
                      if isinstance(v, dict) and "bpp" in v]
        if not curves:
            raise ValueError("no curves found")
    except (ValueError, TypeError) as e:
        raise BenchError(f"anchor {path} is not in CompressAI result layout: {e}") from None
    for c in curves:
        c.is_anchor = True
    return curves


def save_curve(path: str | Path, curve: Curve) -> None:
    """Write one curve as a CompressAI result file (atomically)."""
    write_text_atomic(path, json.dumps(curve.to_dict(), indent=2) + "\n")
