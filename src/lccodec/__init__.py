"""lic: a learned image codec with exact, portable bitstreams.

>>> import lccodec
>>> data = lccodec.encode("photo.png", model="hyperprior", quality=4.0)   # bytes of a .lic file
>>> image = lccodec.decode(data)                # PIL.Image (a path to a .lic file works too)

``open_model(name)`` gives a :class:`Codec` (one model on one device) whose ``encode`` returns an
:class:`Encoded` (bytes, reconstruction, bpp, PSNR, metadata); ``Codec``, ``Encoded`` and
``open_model`` need torch and are imported on first use. An image's ICC profile, EXIF and XMP are
kept (:class:`Metadata`; ``strip=`` drops them): the decoded image has them in ``image.info``.
What an encode changed or dropped (16-bit input reduced, malformed metadata dropped, a missed
rate target) is reported as a :class:`LicWarning`.
"""
from __future__ import annotations

import numbers
import os
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

from .default_model import DEFAULT_MODEL
from .errors import FormatError, ImageError, LicError, LicWarning, ModelError

if TYPE_CHECKING:
    from PIL import Image

    from .codec import Codec, Encoded, decode_bytes, open_model
    from .metadata import Metadata

# imported on first use: the codec needs torch, the metadata Pillow
_LAZY = {"Codec": "codec", "Encoded": "codec", "decode_bytes": "codec", "open_model": "codec",
         "Metadata": "metadata"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module 'lccodec' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})  # so help(lccodec) and completion list the lazy names


@dataclass(frozen=True)
class ModelInfo:
    """What `lic models` lists about a model."""

    name: str
    model_id: int
    description: str
    quality_range: tuple[float, float]
    weights_bytes: int
    weights_id: int | None
    weights_sha256: str | None = None  # the SHA-256 of the weights file (lccodec.weights_io)
    weights_legacy_id: bool = False  # weights_id is the file's legacy CRC32, not from its SHA-256


def list_models() -> list[ModelInfo]:
    """Every model this lic ships whose weights are present, from the weights files' metadata
    alone (no torch, nothing verified: a model's weights are verified when it is opened)."""
    from .identity import IDENTITIES
    from .weights_io import SHARED_FIELD, installed_weights, read_metadata, stored_bytes

    out = []
    for ident in IDENTITIES:
        try:
            path = installed_weights(ident.name)
            meta = read_metadata(path)
        except ModelError:
            continue
        levels = len(meta["config"].get("lambdas") or ()) or 8  # every model's own ladder has 8
        sha, weights_id = meta.get("weights_sha256"), meta.get("weights_id")
        valid_id = isinstance(weights_id, str) and len(weights_id) == 8 and weights_id.isalnum()
        out.append(ModelInfo(ident.name, ident.model_id, ident.description, (1.0, float(levels)),
                             stored_bytes(path, meta.get(SHARED_FIELD)),
                             int(weights_id, 16) if valid_id else None, sha, sha is None))
    return out

def _pixel_limit(max_pixels: int | None) -> int:
    """`max_pixels` (a positive integer), or the default limit 2^27 for None."""
    from .container import DEFAULT_MAX_PIXELS

    if max_pixels is None:
        return DEFAULT_MAX_PIXELS
    if isinstance(max_pixels, bool) or not isinstance(max_pixels, numbers.Integral) or max_pixels < 1:
        raise LicError(f"max_pixels must be a positive integer, got {max_pixels!r}")
    return int(max_pixels)



def encode(
    image: object,
    model: str | None = None,
    quality: float | None = None,
    *,
    bpp: float | None = None,
    psnr: float | None = None,
    size: int | None = None,
    device: str = "auto",
    strip: bool | str | Iterable[str] = False,
    weights: str | os.PathLike | None = None,
    max_pixels: int | None = None,
) -> bytes:
    """Encode an image (path, bytes, PIL image or HxWxC uint8/uint16 array) to .lic bytes.

    Give at most one of `quality`, `bpp`, `psnr` and `size` (bytes). `model` None: the model of
    `weights` if given, else DEFAULT_MODEL. `weights`: a weights file to encode with instead of
    the shipped one (decode its files with the same file). The image's ICC profile, EXIF and
    XMP are kept; `strip` drops them: True (or 'all') every kind, or those named ('icc,exif').
    Images of more than `max_pixels` (default 2^27) are refused from their header, before their
    pixels are read or a model is loaded.
    """
    from .codec import open_model
    from .imageio import load_image

    raster = load_image(image, max_pixels=_pixel_limit(max_pixels), strip=strip)
    return open_model(model, device, weights).encode(raster, quality, bpp=bpp, psnr=psnr, size=size).data


def decode(data: bytes | str | os.PathLike, device: str = "auto", max_pixels: int | None = None,
           weights: str | os.PathLike | None = None) -> Image.Image:
    """Decode a .lic file (its bytes or its path) to a PIL image in the original mode
    (L, LA, RGB or RGBA), with the file's metadata in ``image.info`` (``icc_profile``, ``exif``,
    ``xmp``, as Pillow's own readers give them: pass them to ``image.save`` to keep them).

    Files declaring more than `max_pixels` (default 2^27) are refused before decoding.
    `weights`: the weights file to decode with instead of the shipped one (a file made with an
    older release: docs/weights.md).
    """
    from PIL import Image

    from .codec import decode_bytes

    limit = _pixel_limit(max_pixels)
    if isinstance(data, (str, os.PathLike)):
        from .files import read_file

        data = read_file(data)
    header, pixels, metadata = decode_bytes(data, device, limit, weights)
    image = Image.fromarray(pixels[:, :, 0], "L") if pixels.shape[2] == 1 else Image.fromarray(pixels, header.mode)
    image.info.update(metadata.pil_info())
    return image


__all__ = [
    "DEFAULT_MODEL", "Codec", "Encoded", "FormatError", "ImageError", "LicError", "LicWarning", "Metadata", "ModelError", "ModelInfo",
    "__version__", "decode", "encode", "list_models", "open_model",
]
