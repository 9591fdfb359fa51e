"""The streams a .lic file carries beside the latent streams: escape, alpha and metadata.

* ``escape`` — values no table could code, as zigzag LEB128 varints in decode order
  (:mod:`lccodec.coding.escape`); every file has one (empty when nothing was escaped). Its symbol
  count is the number of values; the latent decoders must read exactly those, to the last byte.
* ``alpha`` — for LA and RGBA files only: the alpha plane (W·H symbols) as an 8-bit grayscale
  PNG, read strictly: the signature, IHDR (W×H, bit depth 8, grayscale, no interlace), one or
  more IDAT, IEND, and nothing else; every chunk's CRC; one complete zlib stream holding exactly
  H rows of 1 + W bytes with filter types 0..4, and no data after it.
* ``icc``, ``exif``, ``xmp`` — format version 2 only: raw metadata, one symbol per byte, each
  checked by :meth:`lccodec.metadata.Metadata.from_streams`; no probability depends on them.

Each defect is a FormatError (docs/format.md, "How a decoder must refuse").
"""
from __future__ import annotations

import io
import struct
import zlib

import numpy as np
from PIL import Image

from .coding import EscapeReader
from .container import STREAM_ALPHA, STREAM_ESCAPE, Header, Stream
from .errors import FormatError, StreamError
from .metadata import Metadata

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_CHUNK = struct.Struct(">I4s")
_IHDR = struct.Struct(">IIBBBBB")


def has_alpha(mode: str) -> bool:
    return mode in ("LA", "RGBA")


def check_side_streams(header: Header, streams: dict[int, Stream]) -> None:
    """Before decoding: the escape stream is there and could hold its count; alpha is there
    exactly for LA/RGBA, with W·H symbols; the metadata streams are well formed."""
    escape = streams.get(STREAM_ESCAPE)
    if escape is None:
        raise FormatError("corrupt: the escape stream is missing")
    if escape.symbols > len(escape.data):  # every value takes at least one byte
        raise FormatError(f"corrupt: the escape stream declares {escape.symbols} values in {len(escape.data)} bytes")
    alpha = streams.get(STREAM_ALPHA)
    if not has_alpha(header.mode):
        if alpha is not None:
            raise FormatError(f"corrupt: an alpha stream in a file of mode {header.mode}")
    elif alpha is None:
        raise FormatError("corrupt: alpha stream is missing")
    elif alpha.symbols != header.width * header.height:
        raise FormatError(f"corrupt: the alpha stream declares {alpha.symbols} symbols, "
                          f"not {header.width}x{header.height}")
    Metadata.from_streams(streams)


def check_escapes_used(escapes: EscapeReader, stream: Stream) -> None:
    """After decoding: the latent decoders read exactly the declared values, and every byte."""
    if escapes.count != stream.symbols:
        raise StreamError("corrupt: escape count does not match")
    if not escapes.exhausted:
        raise StreamError("corrupt: the escape stream holds more data than its values")


def alpha_to_png(alpha: np.ndarray) -> bytes:
    """The alpha stream of an H×W uint8 plane."""
    buf = io.BytesIO()
    Image.fromarray(alpha, "L").save(buf, format="PNG", compress_level=9)
    return buf.getvalue()


def alpha_from_png(data: bytes, width: int, height: int) -> np.ndarray:
    """The H×W uint8 alpha plane of a strictly valid alpha stream."""
    _check_png(data, width, height)
    try:  # the structure is checked: Pillow only unfilters the rows
        with Image.open(io.BytesIO(data), formats=["PNG"]) as im:
            return np.asarray(im)
    except Exception:
        raise FormatError("corrupt: alpha plane cannot be decoded") from None


def _check_png(data: bytes, width: int, height: int) -> None:
    """The alpha PNG's structure, chunk by chunk, and its image data's zlib stream."""
    if not data.startswith(PNG_SIGNATURE):
        raise FormatError("corrupt: the alpha stream is not a PNG")
    pos, kinds, idat = len(PNG_SIGNATURE), [], []
    while pos < len(data):
        if pos + _CHUNK.size + 4 > len(data):
            raise FormatError("corrupt: the alpha PNG is truncated")
        length, kind = _CHUNK.unpack_from(data, pos)
        end = pos + _CHUNK.size + length
        if end + 4 > len(data):
            raise FormatError("corrupt: the alpha PNG is truncated")
        body = data[pos + _CHUNK.size:end]
        if zlib.crc32(kind + body) != struct.unpack_from(">I", data, end)[0]:
            raise FormatError(f"corrupt: alpha PNG chunk {kind!r} has a bad CRC")
        allowed = (b"IHDR",) if not kinds else (b"IDAT", b"IEND") if idat else (b"IDAT",)
        if kind not in allowed:
            raise FormatError(f"corrupt: unexpected alpha PNG chunk {kind!r} (IHDR, IDAT…, IEND only)")
        if kind == b"IHDR":
            if length != _IHDR.size or _IHDR.unpack(body) != (width, height, 8, 0, 0, 0, 0):
                raise FormatError("corrupt: the alpha PNG is not an 8-bit grayscale image of the image's size")
        elif kind == b"IDAT":
            idat.append(body)
        kinds.append(kind)
        pos = end + 4
        if kind == b"IEND":
            if length:
                raise FormatError("corrupt: the alpha PNG's IEND chunk is not empty")
            break
    if not kinds or kinds[-1] != b"IEND":
        raise FormatError("corrupt: the alpha PNG has no IEND chunk")
    if pos != len(data):
        raise FormatError(f"corrupt: {len(data) - pos} bytes follow the alpha PNG's IEND chunk")
    rows = height * (width + 1)
    inflate = zlib.decompressobj()
    try:
        raw = inflate.decompress(b"".join(idat), rows + 1)
    except zlib.error:
        raise FormatError("corrupt: the alpha PNG's image data cannot be inflated") from None
    if len(raw) != rows or not inflate.eof or inflate.unused_data or inflate.unconsumed_tail:
        raise FormatError("corrupt: the alpha PNG's image data is not exactly the image's rows")
    if max(raw[:: width + 1]) > 4:
        raise FormatError("corrupt: the alpha PNG has an unknown row filter")
