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
    """test vs anchor: BD-rate on PSNR (%), BD-PSNR (dB), BD-rate on MS-SSIM dB (%); None = n/a.

    `why` says why the PSNR figures are n/a (too few points, no overlap); empty otherwise.
    """

    test: str
    anchor: str
    bd_rate_psnr: float | None
    bd_psnr: float | None
    bd_rate_msssim: float | None
    why: str = ""


def _try(fn, *args) -> float | None:
    try:
        return fn(*args)
    except ValueError:
        return None


def _same_curve(a: Curve, b: Curve) -> bool:
    """The same codec's curve twice (e.g. a baseline run again and found in an anchor file)."""
    return a is b or (a.name == b.name and a.bpp == b.bpp and a.psnr == b.psnr)


def bd_unavailable(test: Curve, ref: Curve) -> str:
    """Why BD-rate/BD-PSNR cannot be computed for these two curves; empty when it can."""
    for c in (test, ref):
        n = sum(1 for b, d in zip(c.bpp, c.psnr) if math.isfinite(b) and math.isfinite(d) and b > 0)
        if n < 4:
            return f"{c.name} has {n} rate-distortion point(s); BD fits a cubic and needs at least 4"
    try:
        bd_rate(ref.bpp, ref.psnr, test.bpp, test.psnr)
    except ValueError as exc:
        return str(exc)
    return ""


def bd_comparisons(run_curves: Sequence[Curve], anchors: Sequence[Curve] = ()) -> list[BDResult]:
    """Each run curve as test against every later run curve (each pair once) and every anchor;
    never a curve against itself. An anchor named like the test is labelled '(anchor)'."""
    out = []
    for i, test in enumerate(run_curves):
        t_db = [ms_ssim_db(v) for v in test.ms_ssim]
        for ref in [*run_curves[i + 1:], *anchors]:
            if _same_curve(test, ref):
                continue
            r_db = [ms_ssim_db(v) for v in ref.ms_ssim]
            ms = (_try(bd_rate, ref.bpp, r_db, test.bpp, t_db)
                  if len(r_db) == len(ref.bpp) and len(t_db) == len(test.bpp) else None)
            label = f"{ref.name} (anchor)" if ref.name == test.name else ref.name
            out.append(BDResult(test.name, label,
                                _try(bd_rate, ref.bpp, ref.psnr, test.bpp, test.psnr),
                                _try(bd_psnr, ref.bpp, ref.psnr, test.bpp, test.psnr), ms,
                                bd_unavailable(test, ref)))
    return out


def environment(device: str) -> dict[str, Any]:
    """What a run depends on: lic, torch, Pillow and codec library versions, the device used."""
    from importlib import metadata

    import numpy
    import PIL
    import torch
    from PIL import features

    from .. import __version__
    from ..device import resolve_device

    try:
        jxl = metadata.version("pillow-jxl-plugin")
    except metadata.PackageNotFoundError:
        jxl = None
    versions = {"lic": __version__, "torch": torch.__version__, "Pillow": PIL.__version__,
                "numpy": numpy.__version__, "libjpeg": features.version("jpg"),
                "libwebp": features.version("webp"), "libavif": features.version("avif"),
                "pillow-jxl-plugin": jxl}
    used = resolve_device(device)
    name = torch.cuda.get_device_name(used) if used.type == "cuda" else "cpu"
    return {"versions": versions, "device": str(used), "device_name": name,
            "threads": torch.get_num_threads()}


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
                         f"BD-rate MS-SSIM {_fmt(b.bd_rate_msssim, '+.1f', ' %'):>9}"
                         + (f"  (n/a: {b.why})" if b.why else ""))
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
