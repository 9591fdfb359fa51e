"""Benchmark output: BD comparisons, the stdout summary table, JSON and CSV files.

Files are written atomically (:mod:`lccodec.atomic`), so a reader — or an interrupted run — only
ever sees a complete previous version or the new one.
"""
from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from ..atomic import write_text_atomic
from ..metrics import ms_ssim_db
from .anchors import Curve, json_number
from .bdrate import bd_psnr, bd_rate
from .runner import Point, Row


@dataclass
class BDResult:
    """test vs anchor: BD-rate on PSNR (%), BD-PSNR (dB), BD-rate on MS-SSIM dB (%); None = n/a."""

    test: str
    anchor: str
    bd_rate_psnr: float | None
    bd_psnr: float | None
    bd_rate_msssim: float | None


def _try(fn, *args) -> float | None:
    try:
        return fn(*args)
    except ValueError:
        return None


def bd_comparisons(run_curves: Sequence[Curve], anchors: Sequence[Curve] = ()) -> list[BDResult]:
    """Each run curve as test against every later run curve (each pair once) and every anchor."""
    out = []
    for i, test in enumerate(run_curves):
        t_db = [ms_ssim_db(v) for v in test.ms_ssim]
        for ref in [*run_curves[i + 1:], *anchors]:
            r_db = [ms_ssim_db(v) for v in ref.ms_ssim]
            ms = (_try(bd_rate, ref.bpp, r_db, test.bpp, t_db)
                  if len(r_db) == len(ref.bpp) and len(t_db) == len(test.bpp) else None)
            out.append(BDResult(test.name, ref.name,
                                _try(bd_rate, ref.bpp, ref.psnr, test.bpp, test.psnr),
                                _try(bd_psnr, ref.bpp, ref.psnr, test.bpp, test.psnr), ms))
    return out


def _fmt(v: float | None, spec: str, unit: str = "") -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "n/a"
    return f"{v:{spec}}{unit}"


def summary_table(points: Sequence[Point], bd: Sequence[BDResult] = (),
                  notes: Sequence[str] = ()) -> str:
    """The plain-text summary printed on stdout."""
    head = ("codec", "q", "n", "bpp", "PSNR", "MS-SSIM", "MS-SSIM dB", "enc s", "dec s", "mismatch")
    body = [(p.codec, f"{p.quality:g}", str(p.images), f"{p.bpp:.4f}", _fmt(p.psnr, ".2f"),
             _fmt(p.ms_ssim, ".4f"), _fmt(p.ms_ssim_db, ".2f"), f"{p.encode_s_median:.3f}",
             f"{p.decode_s_median:.3f}", str(p.mismatches) if p.mismatches == 0
             else f"{p.mismatches} !!") for p in points]
    widths = [max(len(r[i]) for r in [head, *body]) for i in range(len(head))]
    lines = ["  ".join(c.ljust(w) if i == 0 else c.rjust(w)
                       for i, (c, w) in enumerate(zip(r, widths))) for r in [head, *body]]
    lines.insert(1, "  ".join("-" * w for w in widths))
    if bd:
        lines += ["", "BD (test vs anchor; negative rate = fewer bits):"]
        nw = max(len(f"{b.test} vs {b.anchor}") for b in bd)
        for b in bd:
            lines.append(f"  {f'{b.test} vs {b.anchor}':<{nw}}  "
                         f"BD-rate PSNR {_fmt(b.bd_rate_psnr, '+.1f', ' %'):>9}  "
                         f"BD-PSNR {_fmt(b.bd_psnr, '+.2f', ' dB'):>9}  "
                         f"BD-rate MS-SSIM {_fmt(b.bd_rate_msssim, '+.1f', ' %'):>9}")
    mism = sum(p.mismatches for p in points)
    if mism:
        lines += ["", f"!! {mism} decode(s) differ from the encoder's reconstruction"]
    lines += [f"note: {n}" for n in notes]
    return "\n".join(lines) + "\n"


def _clean(d: dict[str, Any]) -> dict[str, Any]:
    return {k: json_number(v) if isinstance(v, float) else v for k, v in d.items()}


def run_document(points: Sequence[Point], rows: Sequence[Row], curves: Sequence[Curve],
                 bd: Sequence[BDResult] = (), notes: Sequence[str] = (),
                 meta: dict[str, Any] | None = None) -> dict[str, Any]:
    """The --json document: CompressAI one-curve dicts under "codecs", plus rows and BD."""
    codecs = []
    for c in curves:
        d = c.to_dict()
        pts = [p for p in points if p.codec == c.name]
        d["results"].update({
            "quality": [p.quality for p in pts],
            "ms-ssim-db": [json_number(p.ms_ssim_db) for p in pts],
            "encoding_time_median": [p.encode_s_median for p in pts],
            "decoding_time_median": [p.decode_s_median for p in pts],
            "images": [p.images for p in pts],
            "mismatches": [p.mismatches for p in pts],
        })
        codecs.append(d)
    return {
        "name": "lic bench",
        "description": (meta or {}).get("description", ""),
        "meta": meta or {},
        "notes": list(notes),
        "mismatches": sum(p.mismatches for p in points),
        "codecs": codecs,
        "bd": [_clean(vars(b)) for b in bd],
        "rows": [_clean(r.to_dict()) for r in rows],
    }


def write_json(path: str | Path, document: dict[str, Any]) -> None:
    """Write a run document (strict JSON, atomically)."""
    write_text_atomic(path, json.dumps(document, indent=1, allow_nan=False) + "\n")


CSV_COLUMNS = tuple(f.name for f in fields(Row))


def write_csv(path: str | Path, rows: Sequence[Row]) -> None:
    """Write per-image rows as CSV with a header (atomically); NaN/inf as empty cells."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(CSV_COLUMNS)
    for r in rows:
        w.writerow(["" if (isinstance(v, float) and not math.isfinite(v)) else
                    ("" if v is None else v) for v in r.to_dict().values()])
    write_text_atomic(path, buf.getvalue())
