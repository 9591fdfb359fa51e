"""Loading and saving images: every input normalised to 8-bit L, LA, RGB or RGBA planes.

An input's ICC profile, EXIF and XMP come with it (:mod:`lccodec.metadata`), and go into the
outputs that can hold them. All failures (missing file, not an image, truncated, too large,
unsupported) raise ImageError.
"""

from __future__ import annotations

import functools
import io
import os
import re
import struct
import warnings
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Iterable, Union

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .atomic import atomic_output
from .container import DEFAULT_MAX_PIXELS, MODES  # the format's modes and pixel limit, defined once
from .errors import ImageError, LicError
from .metadata import Metadata, read_metadata, save_options, strip_kinds

WARN_16BIT = "16-bit image reduced to 8 bits"

#: File name suffixes of the images lic reads from a folder (bench, training data).
IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm",
                            ".pgm", ".pnm"})

Source = Union[str, os.PathLike, bytes, bytearray, memoryview, BinaryIO, Image.Image, np.ndarray]

# Pillow modes converted with Image.convert(); the rest are handled explicitly below.
_CONVERT = {"1": "L", "La": "LA", "PA": "RGBA", "RGBa": "RGBA", "RGBX": "RGB",
            "CMYK": "RGB", "YCbCr": "RGB", "LAB": "RGB", "HSV": "RGB"}
# Errors Pillow (and the codecs under it) raise on bad data.
_DECODE_ERRORS = (OSError, ValueError, SyntaxError, EOFError, struct.error, zlib.error,
                  IndexError, KeyError, MemoryError, Image.DecompressionBombError)


@dataclass
class RasterImage:
    """An 8-bit image split into its colour planes and optional alpha plane."""

    pixels: np.ndarray  # HxWx3 (RGB) or HxWx1 (grayscale) uint8
    alpha: np.ndarray | None  # HxW uint8, or None
    mode: str  # "L", "LA", "RGB" or "RGBA": what decode gives back
    warnings: list[str] = field(default_factory=list)
    metadata: Metadata = field(default_factory=Metadata)  # ICC, EXIF, XMP: carried in the .lic file

    @property
    def width(self) -> int:
        return int(self.pixels.shape[1])

    @property
    def height(self) -> int:
        return int(self.pixels.shape[0])


def from_planes(pixels: np.ndarray, alpha: np.ndarray | None, mode: str) -> RasterImage:
    """Build a RasterImage from planes, checking that shapes, dtype and mode agree."""
    pixels = np.asarray(pixels)
    if pixels.ndim == 2:
        pixels = pixels[..., None]
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    channels = 1 if mode in ("L", "LA") else 3
    if pixels.dtype != np.uint8 or pixels.ndim != 3 or pixels.shape[2] != channels:
        raise ValueError(f"mode {mode} needs HxWx{channels} uint8 pixels, got {pixels.dtype} {pixels.shape}")
    if (alpha is not None) != mode.endswith("A"):
        raise ValueError(f"mode {mode} {'needs' if mode.endswith('A') else 'takes no'} alpha plane")
    if alpha is not None:
        alpha = np.ascontiguousarray(alpha)
        if alpha.dtype != np.uint8 or alpha.shape != pixels.shape[:2]:
            raise ValueError(f"alpha must be {pixels.shape[:2]} uint8, got {alpha.dtype} {alpha.shape}")
    return RasterImage(np.ascontiguousarray(pixels), alpha, mode)


def _check_size(width: int, height: int, max_pixels: int) -> None:
    if width <= 0 or height <= 0:
        raise ImageError(f"image is empty ({width}x{height} pixels)")
    if width * height > max_pixels:
        raise ImageError(f"image too large: {width}x{height} pixels exceeds the limit of {max_pixels}")


def _from_array(arr: np.ndarray, max_pixels: int) -> RasterImage:
    notes = []
    if arr.dtype == np.uint16:  # like a 16-bit file: keep the top 8 bits
        arr = (arr >> 8).astype(np.uint8)
        notes.append(WARN_16BIT)
    if arr.dtype != np.uint8:
        raise ImageError(f"image arrays must be uint8 or uint16, got {arr.dtype}")
    if arr.ndim == 2:
        arr = arr[..., None]
    if arr.ndim != 3 or arr.shape[2] not in (1, 2, 3, 4):
        raise ImageError(f"image arrays must be HxW or HxWxC with C in 1..4, got shape {arr.shape}")
    _check_size(arr.shape[1], arr.shape[0], max_pixels)
    mode = {1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}[arr.shape[2]]
    alpha = arr[..., -1].copy() if mode.endswith("A") else None
    colour = arr[..., :-1] if alpha is not None else arr
    raster = from_planes(colour.copy(), alpha, mode)
    raster.warnings = notes
    return raster


def _rawmodes(im: Image.Image) -> str:
    """The decoder arguments of a not-yet-loaded image (they name the stored sample layout)."""
    return " ".join(str(t.args) for t in (getattr(im, "tile", None) or []))


def _is_16bit(im: Image.Image) -> bool:
    """Whether Pillow is about to decode samples wider than 8 bits (before im.load())."""
    return im.mode.startswith("I;16") or ";16" in _rawmodes(im)


def _to_8bit(im: Image.Image) -> Image.Image:
    """I;16*, I and F images as 8-bit L: 16-bit samples keep their top 8 bits."""
    arr = np.asarray(im)
    if im.mode == "F":
        arr = arr.astype(np.float64)
        scale = 255.0 if np.nanmax(arr, initial=0.0) <= 1.0 else 1.0
        out = np.clip(np.nan_to_num(arr * scale), 0, 255).round()
    else:
        out = np.clip(arr.astype(np.int64), 0, 0xFFFF) >> 8
    return Image.fromarray(out.astype(np.uint8))


def _orientation(im: Image.Image) -> int:
    """The EXIF (or XMP) orientation of an opened image; 1 when its EXIF cannot be read (the
    metadata reader then drops that EXIF with a warning)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Pillow's "Corrupt EXIF data": the reader decides
            return int(im.getexif().get(0x0112, 1))
    except _DECODE_ERRORS + (TypeError,):
        return 1


def _normalise(im: Image.Image, max_pixels: int, strip: frozenset[str] = frozenset()) -> RasterImage:
    """Check size, pick frame 0, decode, read the metadata (less the kinds in `strip`), rotate
    per EXIF and reduce to L/LA/RGB/RGBA. The warnings name what was changed or dropped."""
    _check_size(im.width, im.height, max_pixels)
    notes = []
    frames = getattr(im, "n_frames", 1)
    if frames > 1:
        notes.append(f"animated image: only the first of {frames} frames is used")
        im.seek(0)
    wide = _is_16bit(im)
    la16 = "LA;16" in _rawmodes(im)  # Pillow opens 16-bit LA as RGBA
    im.load()
    upright = _orientation(im) != 1  # applied to the pixels
    metadata, dropped = read_metadata(im, strip, upright)
    notes += dropped
    if upright:
        im = ImageOps.exif_transpose(im)
    if im.mode in ("I", "F") or im.mode.startswith("I;16"):
        wide = wide or im.mode != "F"
        if im.mode == "F":
            notes.append("32-bit float image reduced to 8 bits")
        im = _to_8bit(im)
    elif la16 and im.mode == "RGBA":
        im = Image.merge("LA", (im.getchannel("R"), im.getchannel("A")))
    elif im.mode == "P":
        transparent = "transparency" in im.info or (im.palette is not None and im.palette.mode == "RGBA")
        im = im.convert("RGBA" if transparent else "RGB")
    elif im.mode in _CONVERT:
        im = im.convert(_CONVERT[im.mode])
    elif im.mode not in MODES:
        try:
            im = im.convert("RGBA" if "A" in im.mode else "RGB")
        except ValueError as exc:
            raise ImageError(f"unsupported image mode {im.mode}") from exc
    if wide:
        notes.insert(0, WARN_16BIT)
    raster = _from_array(np.array(im), max_pixels)
    raster.warnings, raster.metadata = notes, metadata
    return raster


def _bomb_message(exc: Exception) -> str:
    found = re.findall(r"\d+", str(exc))
    if len(found) >= 2:
        return f"image too large: {found[0]} pixels exceeds the limit of {found[1]}"
    return f"image too large: {exc}"


def load_image(source: Source | RasterImage, *, max_pixels: int = DEFAULT_MAX_PIXELS,
               strip: bool | str | Iterable[str] = False) -> RasterImage:
    """Load an image from a path, bytes, binary file, PIL image or uint8/uint16 array (a
    RasterImage comes back as it is, less the metadata kinds `strip` names). Images of more than
    `max_pixels` are refused from their header, before their pixels are decoded.

    Its ICC profile, EXIF and XMP are kept in ``.metadata``; `strip` drops them: True (or 'all')
    every kind, or the kinds named ('icc,exif', ['xmp']).
    """
    strip = strip_kinds(strip)
    if isinstance(source, RasterImage):
        _check_size(source.width, source.height, max_pixels)
        if strip:
            source.metadata = Metadata(**{k: None if k in strip else v for k, v in vars(source.metadata).items()})
        return source
    if isinstance(source, np.ndarray):
        return _from_array(source, max_pixels)
    if isinstance(source, (str, os.PathLike)):
        label, fp = os.fspath(source), os.fspath(source)
    elif isinstance(source, (bytes, bytearray, memoryview)):
        label, fp = "<bytes>", io.BytesIO(bytes(source))
    elif isinstance(source, Image.Image):
        label, fp = getattr(source, "filename", "") or "<image>", None
    elif hasattr(source, "read"):
        label, fp = str(getattr(source, "name", "<stream>")), source
    else:
        raise ImageError(f"cannot load an image from an object of type {type(source).__name__}")
    try:
        with warnings.catch_warnings():
            # Our own max_pixels check is the limit; Pillow's hard error still applies above it.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            if fp is None:
                return _normalise(source, max_pixels, strip)
            with Image.open(fp) as im:
                return _normalise(im, max_pixels, strip)
    except LicError:
        raise
    except FileNotFoundError as exc:
        raise ImageError(f"no such file: '{label}'") from exc
    except IsADirectoryError as exc:
        raise ImageError(f"'{label}' is a directory, not an image") from exc
    except PermissionError as exc:
        raise ImageError(f"cannot read '{label}': permission denied") from exc
    except UnidentifiedImageError as exc:
        raise ImageError(f"'{label}' is not an image Pillow can read") from exc
    except Image.DecompressionBombError as exc:
        raise ImageError(_bomb_message(exc)) from exc
    except MemoryError as exc:
        raise ImageError(f"cannot read image '{label}': not enough memory") from exc
    except _DECODE_ERRORS as exc:
        if isinstance(exc, EOFError) or "truncated" in str(exc).lower():
            raise ImageError(f"cannot read image '{label}': truncated file") from exc
        raise ImageError(f"cannot read image '{label}': {exc}") from exc


def to_pil(img: RasterImage) -> Image.Image:
    """The RasterImage as a PIL image in its own mode."""
    planes = [img.pixels[..., :1] if img.mode in ("L", "LA") else img.pixels[..., :3]]
    if img.alpha is not None:
        planes.append(img.alpha[..., None])
    arr = np.concatenate(planes, axis=2) if len(planes) > 1 else planes[0]
    pil = Image.fromarray(np.ascontiguousarray(arr[..., 0] if arr.shape[2] == 1 else arr))
    if pil.mode != img.mode:
        raise ValueError(f"planes {img.pixels.shape} do not match mode {img.mode}")
    return pil


def image_format(fmt: str) -> str:
    """Pillow's name of an output format given as a name or an extension ('jpg' -> 'JPEG')."""
    Image.init()
    name = fmt.strip().lstrip(".").upper()
    if name not in Image.SAVE:
        name = Image.registered_extensions().get("." + name.lower(), "")
    if name not in Image.SAVE:
        raise ImageError(f"unknown image format '{fmt}' (try png, jpeg, webp, bmp, tiff, ppm)")
    return name


def format_suffix(fmt: str) -> str:
    """The file suffix for an output format: '.' + the given name when it is one, else Pillow's."""
    name = image_format(fmt)
    own = "." + fmt.strip().lstrip(".").lower()
    exts = Image.registered_extensions()
    return own if exts.get(own) == name else next(e for e, f in exts.items() if f == name)


def output_format(dest: str | os.PathLike, fmt: str | None = None) -> str:
    """The format an image saved to `dest` gets: `fmt`, else from the extension (none: PNG).

    An extension Pillow cannot write is refused rather than silently written as PNG.
    """
    if fmt:
        return image_format(fmt)
    suffix = Path(dest).suffix
    if not suffix:
        return "PNG"
    Image.init()
    name = Image.registered_extensions().get(suffix.lower())
    if name not in Image.SAVE:
        raise ImageError(f"cannot tell an image format from '{dest}': no writable format has "
                         f"the extension '{suffix}' (name one, e.g. --format png)")
    return name


@functools.lru_cache(maxsize=None)
def _writes(fmt: str, mode: str) -> bool:
    """Whether Pillow writes `mode` images as `fmt` (tried on one pixel)."""
    try:
        Image.new(mode, (1, 1)).save(io.BytesIO(), format=fmt)
    except (OSError, ValueError, KeyError, TypeError):
        return False
    return True


def output_mode(mode: str, fmt: str) -> tuple[str, str | None]:
    """The mode an image of `mode` is written in as `fmt`, and a warning when its alpha is flattened.

    A format without alpha (JPEG, PPM…) gets an LA or RGBA image composited onto white; one that
    cannot hold the colours either is refused (ImageError), before any decoding work.
    """
    if _writes(fmt, mode):
        return mode, None
    flat = mode[:-1] if mode in ("LA", "RGBA") else mode
    if flat != mode and _writes(fmt, flat):
        return flat, (f"{fmt} has no alpha channel: the {mode} image is flattened onto white "
                      "(.png, .webp and .tiff keep alpha)")
    raise ImageError(f"{fmt} files cannot hold {mode} images")


def flatten(pil: Image.Image) -> Image.Image:
    """An LA or RGBA image composited onto white, as L or RGB."""
    rgba = pil.convert("RGBA")
    white = Image.new("RGBA", pil.size, (255, 255, 255, 255))
    return Image.alpha_composite(white, rgba).convert(pil.mode[:-1])


def save_image(img: RasterImage | Image.Image, dest: str | os.PathLike | BinaryIO,
               format: str | None = None, metadata: Metadata | None = None) -> list[str]:
    """Save to a path (atomically) or a binary stream; format from `format`, else the extension.

    `metadata` is written where the format can hold it; alpha is flattened where it cannot
    (:func:`output_mode`). Returns a warning for each thing left out. An extension Pillow does
    not know gives PNG here; `lic decode` refuses it (:func:`output_format`).
    """
    pil = to_pil(img) if isinstance(img, RasterImage) else img
    is_path = isinstance(dest, (str, os.PathLike))
    if format:
        fmt = image_format(format)
    else:
        Image.init()
        fmt = Image.registered_extensions().get(Path(dest).suffix.lower(), "PNG") if is_path else "PNG"
    label = os.fspath(dest) if is_path else str(getattr(dest, "name", "<stream>"))
    try:
        mode, flattened = output_mode(pil.mode, fmt)
    except ImageError as exc:
        raise ImageError(f"cannot write '{label}': {exc}") from None
    try:
        options, notes = save_options(metadata or Metadata(), fmt)
        if mode != pil.mode:
            pil, notes = flatten(pil), [flattened, *notes]
        if is_path:
            with atomic_output(dest) as f:
                pil.save(f, format=fmt, **options)
        else:
            pil.save(dest, format=fmt, **options)
    except LicError:
        raise
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ImageError(f"cannot save an image of mode {pil.mode} as {fmt} to '{label}': {exc}") from exc
    return notes
