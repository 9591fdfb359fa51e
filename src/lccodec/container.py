"""The .lic container: a checked header, a stream table and a CRC32.

Format version 1 carries the image; version 2 is the same layout with metadata streams (ICC,
EXIF, XMP) too, and is written only when there are some, so files without metadata stay
version 1, byte for byte. See docs/format.md for the byte layout. No torch dependency.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass
from typing import Sequence

from .errors import FormatError
from .identity import BY_ID

MAGIC = b"\x89LIC"
VERSION = 1  # files without metadata streams
VERSION_METADATA = 2  # files with at least one metadata stream (icc, exif, xmp)
VERSIONS = (VERSION, VERSION_METADATA)  # the versions this lic reads and writes
DEFAULT_MAX_PIXELS = 1 << 27  # the same limit the encoder's image loader applies
MAX_SIDE = 65535 * 4
MAX_STREAMS = 16

MODES = ("L", "LA", "RGB", "RGBA")  # mode code = index

LAYER_Z = 1 << 0
LAYER_Y = 1 << 1
LAYER_Y2 = 1 << 2
LAYER_Y3 = 1 << 3
LAYER_Y4 = 1 << 4
LAYER_Z2 = 1 << 5
LAYER_NAMES = {LAYER_Z: "z", LAYER_Y: "y", LAYER_Y2: "y2", LAYER_Y3: "y3", LAYER_Y4: "y4", LAYER_Z2: "z2"}
LAYER_MEANINGS = {"z": "hyper-latent", "y": "main latent", "y2": "second latent level",
                  "y3": "third latent level", "y4": "fourth latent level", "z2": "second hyper-latent"}

STREAM_Z = 1
STREAM_Y = 2
STREAM_ESCAPE = 3
STREAM_ALPHA = 4
STREAM_Y3 = 5  # hierarchical model: the middle latent layer
STREAM_Y2 = 6  # hierarchical model: the shallow (detail) latent layer
STREAM_Z2 = 7  # coarse2fine model: the second hyper layer
STREAM_ICC = 8  # metadata (format version 2): the ICC colour profile, as found in the input
STREAM_EXIF = 9  # metadata: the EXIF TIFF structure (no "Exif\0\0" prefix)
STREAM_XMP = 10  # metadata: the XMP packet, UTF-8
METADATA_STREAMS = {STREAM_ICC: "icc", STREAM_EXIF: "exif", STREAM_XMP: "xmp"}
STREAM_NAMES = {STREAM_Z: "z", STREAM_Y: "y", STREAM_ESCAPE: "escape", STREAM_ALPHA: "alpha",
                STREAM_Y3: "y3", STREAM_Y2: "y2", STREAM_Z2: "z2", **METADATA_STREAMS}

_FIXED = struct.Struct("<4sBBHIHIIBBHH")  # offsets 0..27, up to and including the params length
_ENTRY = struct.Struct("<BII")  # stream table entry: kind, byte length, symbol count
_CRC = struct.Struct("<I")
MIN_SIZE = _FIXED.size + _CRC.size  # 32 bytes: an empty file with no params and no streams


def quality_to_q8(quality: float) -> int:
    """Quality as stored in the header: round(quality * 256), which must lie in 1..65535."""
    q8 = round(float(quality) * 256)
    if not 0 < q8 <= 0xFFFF:
        raise ValueError(f"quality {quality} is out of range (must be > 0 and < 256)")
    return q8


@dataclass(frozen=True)
class Stream:
    """One entropy-coded stream: its kind (STREAM_*), its bytes and how many symbols it holds."""

    kind: int
    data: bytes
    symbols: int


@dataclass(frozen=True)
class Header:
    """Every header field of a .lic file (the stream table excepted)."""

    model_id: int
    weights_id: int
    quality_q8: int
    width: int
    height: int
    mode: str
    layer_flags: int
    params: bytes = b""
    version: int = VERSION

    @property
    def quality(self) -> float:
        return self.quality_q8 / 256

    quality_to_q8 = staticmethod(quality_to_q8)


def format_version(streams: Sequence[Stream]) -> int:
    """The version a file of these streams has: 2 when it carries metadata, else 1."""
    return VERSION_METADATA if any(s.kind in METADATA_STREAMS for s in streams) else VERSION


def _check_range(name: str, value: int, lo: int, hi: int) -> None:
    if not isinstance(value, int) or not lo <= value <= hi:
        raise ValueError(f"{name} must be an integer in {lo}..{hi}, got {value!r}")


def pack(header: Header, streams: Sequence[Stream]) -> bytes:
    """Serialise a header and its streams (in the given order) to .lic bytes."""
    h = header
    _check_range("model_id", h.model_id, 0, 0xFFFF)
    _check_range("weights_id", h.weights_id, 0, 0xFFFFFFFF)
    _check_range("quality_q8", h.quality_q8, 1, 0xFFFF)
    _check_range("width", h.width, 1, MAX_SIDE)
    _check_range("height", h.height, 1, MAX_SIDE)
    _check_range("layer_flags", h.layer_flags, 0, 0xFFFF)
    if h.mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {h.mode!r}")
    params = bytes(h.params)
    if len(params) > 0xFFFF:
        raise ValueError(f"params are {len(params)} bytes; at most 65535 fit")
    if len(streams) > MAX_STREAMS:
        raise ValueError(f"{len(streams)} streams; at most {MAX_STREAMS} fit")
    kinds = [s.kind for s in streams]
    if len(set(kinds)) != len(kinds):
        raise ValueError(f"duplicate stream kinds in {kinds}")
    table = []
    for s in streams:
        _check_range("stream kind", s.kind, 1, 0xFF)
        _check_range("stream length", len(s.data), 0, 0xFFFFFFFF)
        _check_range("stream symbol count", s.symbols, 0, 0xFFFFFFFF)
        table.append(_ENTRY.pack(s.kind, len(s.data), s.symbols))
    if h.version != format_version(streams):
        raise ValueError(f"these streams make a format version {format_version(streams)} file, not "
                         f"{h.version} (version 2 exactly when there are metadata streams)")
    body = b"".join([
        _FIXED.pack(MAGIC, h.version, 0, h.model_id, h.weights_id, h.quality_q8, h.width, h.height,
                     MODES.index(h.mode), len(streams), h.layer_flags, len(params)),
        params, *table, *(bytes(s.data) for s in streams),
    ])
    return body + _CRC.pack(zlib.crc32(body))


def unpack(data: bytes, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> tuple[Header, list[Stream]]:
    """Parse and validate .lic bytes; every defect raises FormatError with a specific message."""
    data = bytes(data)
    if data[:4] != MAGIC[: len(data[:4])]:
        raise FormatError("not a .lic file (bad magic bytes)")
    if len(data) < MIN_SIZE:
        raise FormatError(f"truncated file: {len(data)} bytes, a .lic file has at least {MIN_SIZE}")
    (_, version, reserved, model_id, weights_id, quality_q8, width, height,
     mode_code, n, layer_flags, plen) = _FIXED.unpack_from(data)
    if version not in VERSIONS:
        raise FormatError(f"unsupported format version {version} (this lic reads versions "
                          f"{' and '.join(map(str, VERSIONS))}; a newer lic reads it)")
    if reserved != 0:
        raise FormatError(f"reserved flags are {reserved:#04x}; they must be 0 in format version {version}")
    table_end = _FIXED.size + plen + _ENTRY.size * n
    if zlib.crc32(data[:-4]) != _CRC.unpack_from(data, len(data) - 4)[0]:
        declared = table_end + _CRC.size
        if n <= MAX_STREAMS and table_end + _CRC.size <= len(data):
            declared += sum(_ENTRY.unpack_from(data, _FIXED.size + plen + _ENTRY.size * i)[1]
                            for i in range(n))
        if declared > len(data):
            raise FormatError(f"truncated file: {len(data)} bytes, its header declares at least {declared}")
        raise FormatError("corrupt: checksum mismatch")
    if n > MAX_STREAMS:
        raise FormatError(f"too many streams: {n} (at most {MAX_STREAMS})")
    if table_end + _CRC.size > len(data):
        raise FormatError("truncated file: header and stream table run past the end of the data")
    if width == 0 or height == 0:
        raise FormatError(f"invalid image size {width}x{height}: width and height must be positive")
    if width > MAX_SIDE or height > MAX_SIDE or width * height > max_pixels:
        raise FormatError(f"image size {width}x{height} exceeds the limit "
                          f"({MAX_SIDE} per side, {max_pixels} pixels)")
    if mode_code >= len(MODES):
        raise FormatError(f"unknown image mode code {mode_code} (known: 0..{len(MODES) - 1})")
    entries = [_ENTRY.unpack_from(data, _FIXED.size + plen + _ENTRY.size * i) for i in range(n)]
    kinds = [k for k, _, _ in entries]
    if 0 in kinds:
        raise FormatError("invalid stream kind 0")
    if len(set(kinds)) != n:
        raise FormatError(f"duplicate stream kinds in the stream table: {kinds}")
    metadata = [METADATA_STREAMS[k] for k in kinds if k in METADATA_STREAMS]
    if version == VERSION and metadata:
        raise FormatError(f"a {metadata[0]} stream in a format version 1 file (metadata needs version 2)")
    if version == VERSION_METADATA and not metadata:
        raise FormatError("a format version 2 file without a metadata stream (icc, exif or xmp)")
    payload = len(data) - table_end - _CRC.size
    total = sum(length for _, length, _ in entries)
    if total != payload:
        raise FormatError(f"stream lengths add up to {total} bytes but the payload holds {payload}")
    header = Header(model_id, weights_id, quality_q8, width, height, MODES[mode_code], layer_flags,
                    data[_FIXED.size:_FIXED.size + plen], version)
    streams, pos = [], table_end
    for kind, length, symbols in entries:
        streams.append(Stream(kind, data[pos:pos + length], symbols))
        pos += length
    return header, streams


def _named_params(h: Header) -> dict:
    """The model params as named fields, where the model's layout is known and fits."""
    model = BY_ID.get(h.model_id)
    layout = model.params if model else None
    return (layout.unpack(h.params) or {}) if layout else {}


def describe(header: Header, streams: Sequence[Stream]) -> dict:
    """Every field as a JSON-serialisable dict, for `lic info`."""
    h = header
    total = MIN_SIZE + len(h.params) + _ENTRY.size * len(streams) + sum(len(s.data) for s in streams)
    return {
        "format_version": h.version,
        "model_id": h.model_id,
        "model": BY_ID[h.model_id].name if h.model_id in BY_ID else f"unknown ({h.model_id})",
        "weights_id": h.weights_id,
        "weights_id_hex": f"{h.weights_id:08x}",
        "quality": h.quality,
        "quality_q8": h.quality_q8,
        "width": h.width,
        "height": h.height,
        "mode": h.mode,
        "layer_flags": h.layer_flags,
        "layers": [LAYER_NAMES.get(1 << b, f"bit{b}") for b in range(16) if h.layer_flags >> b & 1],
        "params": h.params.hex(),
        **_named_params(h),
        "streams": [{"kind": s.kind, "name": STREAM_NAMES.get(s.kind, f"kind{s.kind}"),
                     "bytes": len(s.data), "symbols": s.symbols} for s in streams],
        "metadata": [{"kind": METADATA_STREAMS[s.kind], "bytes": len(s.data)}
                     for s in streams if s.kind in METADATA_STREAMS],
        "total_bytes": total,
        "bpp": total * 8 / (h.width * h.height),
    }
