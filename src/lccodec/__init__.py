"""lic: a learned image codec with exact, portable bitstreams.

>>> import lccodec
>>> data = lccodec.encode("photo.png", model="hyperprior", quality=4.0)   # bytes of a .lic file
>>> image = lccodec.decode(data)                                          # PIL.Image
"""
from __future__ import annotations

from dataclasses import dataclass

__version__ = "0.1.0"

from .errors import FormatError, ImageError, LicError, ModelError

_LAZY = {"Codec", "Encoded", "decode_bytes", "open_model"}  # need torch: imported on first use


def __getattr__(name: str):
    if name in _LAZY:
        from . import codec

        return getattr(codec, name)
    raise AttributeError(f"module 'lccodec' has no attribute {name!r}")


@dataclass(frozen=True)
class ModelInfo:
    """What `lic models` lists about a model."""

    name: str
    model_id: int
    description: str
    quality_range: tuple[float, float]
    weights_bytes: int
    weights_id: int | None


def list_models() -> list[ModelInfo]:
    """Every model this lic ships whose weights are present."""
    from .codec import open_model
    from .models import MODELS

    out = []
    for spec in MODELS.values():
        try:
            codec = open_model(spec.name, "cpu")
        except ModelError:
            continue
        out.append(
            ModelInfo(spec.name, spec.model_id, spec.description, codec.quality_range,
                      codec.weights_bytes, codec.weights_id)
        )
    return out


def encode(
    image: object,
    model: str = "hyperprior",
    quality: float | None = None,
    *,
    bpp: float | None = None,
    psnr: float | None = None,
    device: str = "auto",
) -> bytes:
    """Encode an image (path, bytes, PIL image or HxWxC uint8 array) to .lic bytes."""
    from .codec import open_model

    return open_model(model, device).encode(image, quality, bpp=bpp, psnr=psnr).data


def decode(data: bytes, device: str = "auto", max_pixels: int | None = None):
    """Decode .lic bytes to a PIL image in the original mode (L, LA, RGB or RGBA).

    Files declaring more than `max_pixels` (default 2^27) are refused before decoding.
    """
    from PIL import Image

    from .codec import decode_bytes

    from .container import DEFAULT_MAX_PIXELS

    header, pixels = decode_bytes(data, device, max_pixels or DEFAULT_MAX_PIXELS)
    if pixels.shape[2] == 1:
        return Image.fromarray(pixels[:, :, 0], "L")
    return Image.fromarray(pixels, header.mode)


__all__ = [
    "Codec", "Encoded", "FormatError", "ImageError", "LicError", "ModelError", "ModelInfo",
    "__version__", "decode", "encode", "list_models", "open_model",
]
