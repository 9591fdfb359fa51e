"""Traditional codecs through Pillow, each a small object with the same verbs as a learned codec.

    codec.name, codec.qualities
    codec.encode(rgb: HxWx3 uint8, quality) -> bytes      (a complete, standalone file)
    codec.decode(data: bytes) -> HxWx3 uint8

JPEG comes as two curves (4:4:4 and 4:2:0 chroma), AVIF uses Pillow's own plugin (4:4:4),
JPEG XL needs an optional plugin (`pip install pillow-jxl-plugin`, module `pillow_jxl`).
"""
from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from PIL import Image, features

from . import BenchError

#: Default quality sweep (Pillow's 0–100 scale), low to high.
DEFAULT_SWEEP: tuple[int, ...] = (5, 10, 20, 30, 40, 50, 60, 70, 80, 90, 95)

#: Names accepted by --codec, and the curves each one expands to.
CODEC_GROUPS: dict[str, tuple[str, ...]] = {
    "jpeg": ("jpeg-444", "jpeg-420"),
    "jpeg-444": ("jpeg-444",),
    "jpeg-420": ("jpeg-420",),
    "webp": ("webp",),
    "avif": ("avif",),
    "jxl": ("jxl",),
}


@dataclass
class PillowCodec:
    """A Pillow image format at a sweep of quality settings."""

    name: str
    format: str
    options: dict[str, Any] = field(default_factory=dict)
    qualities: Sequence[float] = DEFAULT_SWEEP
    description: str = ""

    def encode(self, image: np.ndarray, quality: float) -> bytes:
        """Encode an HxWx3 uint8 image at a Pillow quality (0–100) to file bytes."""
        buf = io.BytesIO()
        Image.fromarray(np.ascontiguousarray(image), "RGB").save(
            buf, format=self.format, quality=int(round(quality)), **self.options)
        return buf.getvalue()

    def decode(self, data: bytes) -> np.ndarray:
        """Decode file bytes to an HxWx3 uint8 array."""
        with Image.open(io.BytesIO(data)) as im:
            return np.asarray(im.convert("RGB"))


def _jxl_available() -> bool:
    try:
        import pillow_jxl  # noqa: F401  (registers the JXL format with Pillow)
    except ImportError:
        return False
    return "JXL" in Image.SAVE


def _make(name: str) -> PillowCodec | None:
    if name == "jpeg-444":
        return PillowCodec(name, "JPEG", {"subsampling": 0, "optimize": True},
                           description="JPEG (libjpeg via Pillow), 4:4:4, optimized Huffman")
    if name == "jpeg-420":
        return PillowCodec(name, "JPEG", {"subsampling": 2, "optimize": True},
                           description="JPEG (libjpeg via Pillow), 4:2:0, optimized Huffman")
    if name == "webp":
        if not features.check("webp"):
            return None
        return PillowCodec(name, "WEBP", {"method": 6}, description="WebP lossy (libwebp), method 6")
    if name == "avif":
        if not features.check("avif"):
            return None
        return PillowCodec(name, "AVIF", {"subsampling": "4:4:4"},
                           description="AVIF (libavif via Pillow), 4:4:4, default speed")
    if name == "jxl":
        if not _jxl_available():
            return None
        return PillowCodec(name, "JXL", {}, description="JPEG XL (pillow_jxl plugin)")
    raise AssertionError(name)


def get_baselines(names: Sequence[str]) -> tuple[list[PillowCodec], list[str]]:
    """Codecs for --codec names (jpeg, jpeg-444, jpeg-420, webp, avif, jxl), in the given order.

    Returns (codecs, notes): a note for each codec skipped because its Pillow support is absent.
    Unknown names raise BenchError.
    """
    codecs: list[PillowCodec] = []
    notes: list[str] = []
    seen: set[str] = set()
    for raw in names:
        key = raw.strip().lower()
        if key not in CODEC_GROUPS:
            known = ", ".join(CODEC_GROUPS)
            raise BenchError(f"unknown codec '{raw}' (choose from: {known}, none)")
        for name in CODEC_GROUPS[key]:
            if name in seen:
                continue
            seen.add(name)
            codec = _make(name)
            if codec is None:
                hint = " (install pillow-jxl-plugin)" if name == "jxl" else ""
                notes.append(f"skipped {name}: not supported by this Pillow{hint}")
            else:
                codecs.append(codec)
    return codecs, notes
