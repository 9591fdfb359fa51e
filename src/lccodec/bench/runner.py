"""The benchmark loop: every image is encoded to bytes, decoded back from those bytes, and scored.

A codec here is anything with `name`, `qualities`, `encode(image, quality)` and `decode(data)`:
encode returns either the file bytes (Pillow baselines) or an object with `.data` and
`.reconstruction` (lccodec's Encoded). For the latter the decode is compared bit for bit with
the encoder's reconstruction and every difference is counted as a mismatch.

Order is deterministic: codecs as given, qualities as given, images sorted by file name.
"""
from __future__ import annotations

import math
import statistics
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from ..errors import ImageError, ModelError
from ..imageio import IMAGE_SUFFIXES
from ..metrics import ms_ssim, ms_ssim_db, psnr
from . import BenchError
from .anchors import Curve


class Codec(Protocol):
    name: str
    qualities: Sequence[float]

    def encode(self, image: np.ndarray, quality: float) -> Any: ...
    def decode(self, data: bytes) -> np.ndarray: ...


@dataclass
class Row:
    """One image coded at one quality by one codec."""

    codec: str
    quality: float
    image: str
    width: int
    height: int
    bytes: int
    bpp: float
    psnr: float
    ms_ssim: float
    ms_ssim_db: float
    encode_s: float
    decode_s: float
    match: bool | None  # decode == encoder's reconstruction; None when the codec gives none

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Point:
    """Aggregate of one (codec, quality) over its images: means of bpp/PSNR/MS-SSIM, times."""

    codec: str
    quality: float
    images: int
    bpp: float
    psnr: float
    ms_ssim: float
    ms_ssim_db: float
    encode_s_median: float
    encode_s_mean: float
    decode_s_median: float
    decode_s_mean: float
    mismatches: int


@dataclass
class LearnedCodec:
    """An lccodec model seen through the runner's codec interface."""

    name: str
    model: Any
    qualities: Sequence[float]
    description: str = ""

    def encode(self, image: np.ndarray, quality: float) -> Any:
        return self.model.encode(image, quality)

    def decode(self, data: bytes) -> np.ndarray:
        return self.model.decode(data)


def open_learned(names: Sequence[str] | None, qualities: Sequence[float] | None,
                 device: str = "auto") -> list[LearnedCodec]:
    """Open lccodec models by name (None = every model from list_models()), in that order.

    Qualities default to 1..8 and must lie in each model's quality_range (ModelError otherwise).
    """
    import lccodec

    if not hasattr(lccodec, "list_models") or not hasattr(lccodec, "open_model"):
        raise ModelError("this lccodec build has no learned models (list_models/open_model)")
    infos = {info.name: info for info in lccodec.list_models()}
    wanted = list(infos) if names is None else list(dict.fromkeys(names))  # each model once
    qs = list(qualities) if qualities else [float(q) for q in range(1, 9)]
    codecs = []
    for name in wanted:
        if name not in infos:
            known = ", ".join(infos) or "none installed"
            raise ModelError(f"unknown model '{name}' (available: {known})")
        info = infos[name]
        lo, hi = info.quality_range
        bad = [q for q in qs if not lo <= q <= hi]
        if bad:
            raise ModelError(f"quality {bad[0]:g} is outside model {name}'s range {lo:g}..{hi:g}")
        codecs.append(LearnedCodec(name, lccodec.open_model(name, device=device), qs,
                                   getattr(info, "description", "")))
    return codecs


def list_images(folder: str | Path, limit: int | None = None) -> list[Path]:
    """Image files directly in folder, sorted by name; the first `limit` when given."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ImageError(f"{folder} is not a folder")
    files = sorted((p for p in folder.iterdir()
                    if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES), key=lambda p: p.name)
    if limit is not None:
        files = files[:limit]
    if not files:
        raise ImageError(f"no images in {folder}")
    return files


def load_rgb(path: Path) -> np.ndarray:
    """An image file as HxWx3 uint8 RGB (grayscale repeated to 3 channels, alpha dropped)."""
    try:
        from ..imageio import load_image
    except ImportError:  # imageio not available yet: Pillow directly
        load_image = None
    if load_image is not None:
        pixels = np.asarray(load_image(path).pixels)
        return np.repeat(pixels, 3, axis=2) if pixels.shape[2] == 1 else pixels[:, :, :3]
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            return np.asarray(im.convert("RGB"))
    except (OSError, UnidentifiedImageError) as e:
        raise ImageError(f"cannot read image {path}: {e}") from None


def code_one(codec: Codec, image: np.ndarray, quality: float, image_name: str) -> Row:
    """Encode to bytes, decode those bytes, check and score: one Row."""
    t0 = time.perf_counter()
    out = codec.encode(image, quality)
    t1 = time.perf_counter()
    if isinstance(out, (bytes, bytearray)):
        data, recon = bytes(out), None
    else:
        data, recon = bytes(out.data), np.asarray(out.reconstruction)
    t2 = time.perf_counter()
    decoded = np.asarray(codec.decode(data))
    t3 = time.perf_counter()
    if decoded.shape != image.shape or decoded.dtype != np.uint8:
        raise BenchError(f"{codec.name} q={quality:g} decoded {image_name} to "
                         f"{decoded.shape} {decoded.dtype}, expected {image.shape} uint8")
    match = None if recon is None else bool(
        recon.shape == decoded.shape and np.array_equal(recon, decoded))
    h, w = image.shape[:2]
    ms = ms_ssim(image, decoded)
    return Row(codec=codec.name, quality=float(quality), image=image_name, width=w, height=h,
               bytes=len(data), bpp=len(data) * 8 / (w * h), psnr=psnr(image, decoded),
               ms_ssim=ms, ms_ssim_db=ms_ssim_db(ms), encode_s=t1 - t0, decode_s=t3 - t2,
               match=match)


def run_benchmark(codecs: Sequence[Codec], images: Sequence[tuple[str, np.ndarray]], *,
                  on_row: Callable[[Row], None] | None = None,
                  on_group: Callable[[], None] | None = None,
                  progress: bool | None = True) -> list[Row]:
    """Run every codec at each of its qualities on every image; rows in deterministic order.

    on_row is called after each row, on_group after each (codec, quality) — for incremental
    output. A tqdm bar goes to stderr when progress is true (None: when stderr is a terminal).
    """
    from tqdm import tqdm

    total = sum(len(c.qualities) for c in codecs) * len(images)
    rows: list[Row] = []
    disable = None if progress is None else not progress
    with tqdm(total=total, file=sys.stderr, disable=disable, unit="img", dynamic_ncols=True) as bar:
        for codec in codecs:
            for q in codec.qualities:
                bar.set_description(f"{codec.name} q={q:g}")
                for name, image in images:
                    row = code_one(codec, image, q, name)
                    rows.append(row)
                    if on_row:
                        on_row(row)
                    bar.update(1)
                if on_group:
                    on_group()
    return rows


def _nanmean(values: Iterable[float]) -> float:
    vals = [v for v in values if not math.isnan(v)]
    return math.fsum(vals) / len(vals) if vals else math.nan


def aggregate(rows: Sequence[Row]) -> list[Point]:
    """Per-(codec, quality) aggregates in first-seen order (PSNR averaged over images)."""
    groups: dict[tuple[str, float], list[Row]] = {}
    for r in rows:
        groups.setdefault((r.codec, r.quality), []).append(r)
    points = []
    for (codec, q), rs in groups.items():
        enc = [r.encode_s for r in rs]
        dec = [r.decode_s for r in rs]
        points.append(Point(
            codec=codec, quality=q, images=len(rs), bpp=_nanmean(r.bpp for r in rs),
            psnr=_nanmean(r.psnr for r in rs), ms_ssim=_nanmean(r.ms_ssim for r in rs),
            ms_ssim_db=_nanmean(r.ms_ssim_db for r in rs),
            encode_s_median=statistics.median(enc), encode_s_mean=statistics.fmean(enc),
            decode_s_median=statistics.median(dec), decode_s_mean=statistics.fmean(dec),
            mismatches=sum(r.match is False for r in rs)))
    return points


def points_to_curves(points: Sequence[Point],
                     descriptions: dict[str, str] | None = None) -> list[Curve]:
    """One Curve per codec (CompressAI layout: mean times), in first-seen order."""
    curves: dict[str, Curve] = {}
    for p in points:
        c = curves.setdefault(p.codec, Curve(p.codec, [], [], [], [], [],
                                             (descriptions or {}).get(p.codec, "")))
        c.bpp.append(p.bpp)
        c.psnr.append(p.psnr)
        c.ms_ssim.append(p.ms_ssim)
        c.encoding_time.append(p.encode_s_mean)
        c.decoding_time.append(p.decode_s_mean)
    return list(curves.values())
