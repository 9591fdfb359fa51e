"""The metadata a photo carries beside its pixels: ICC colour profile, EXIF and XMP.

Read from an input image when encoding (:func:`read_metadata`), carried in a .lic file as three
optional raw streams (format version 2, docs/format.md), checked when decoding
(:meth:`Metadata.from_streams`) and written into the outputs that can hold them
(:func:`save_options`). The pixels never depend on them: no probability does.

Each blob is kept byte for byte, with one exception: when an EXIF orientation was applied to the
pixels, the stored EXIF (and XMP's ``tiff:Orientation``) says 1. A blob that cannot be carried
(malformed, above :data:`MAX_BYTES`, XMP that is not UTF-8) is dropped with a warning.
"""
from __future__ import annotations

import re
import struct
import warnings
from collections.abc import Iterable, Mapping, MutableMapping
from dataclasses import dataclass, fields

from PIL import Image, PngImagePlugin

from .container import METADATA_STREAMS, Stream
from .errors import FormatError, LicError

KINDS = ("icc", "exif", "xmp")
LABELS = {"icc": "ICC profile", "exif": "EXIF", "xmp": "XMP"}
MAX_BYTES = 1 << 24  # per blob: 16 MiB (JPEG holds at most ~16 MB of ICC, 64 KiB of EXIF or XMP)
STREAM_KIND = {name: kind for kind, name in METADATA_STREAMS.items()}
EXIF_PREFIX = b"Exif\x00\x00"  # what JPEG's APP1 segment puts before the TIFF structure
ORIENTATION = 0x0112
_TIFF_HEADERS = (b"II*\x00", b"MM\x00*")
_ICC_HEADER = 128 + 4  # the fixed header and the tag count
_JPEG_MARKER = 65533  # bytes in one JPEG marker segment (Pillow's limit)
_PILLOW_ERRORS = (OSError, ValueError, KeyError, TypeError, IndexError, SyntaxError, struct.error)
# A TIFF input's EXIF: its EXIF and GPS IFDs and the IFD0 tags that describe the photo (the rest
# of a TIFF's IFD0 describes its own pixel layout, which a .lic file does not keep).
_EXIF_IFDS = (0x8769, 0x8825)
_DESCRIPTIVE = (0x010E, 0x010F, 0x0110, ORIENTATION, 0x011A, 0x011B, 0x0128, 0x0131, 0x0132, 0x013B, 0x8298)


@dataclass(frozen=True)
class Metadata:
    """An image's ICC profile, EXIF (its TIFF structure, no ``Exif\\0\\0``) and XMP (UTF-8); None: absent."""

    icc: bytes | None = None
    exif: bytes | None = None
    xmp: bytes | None = None

    def items(self) -> list[tuple[str, bytes]]:
        """(kind, bytes) of each blob present, in the order icc, exif, xmp."""
        return [(f.name, getattr(self, f.name)) for f in fields(self) if getattr(self, f.name) is not None]

    def __bool__(self) -> bool:
        return bool(self.items())

    def to_streams(self) -> list[Stream]:
        """The metadata streams of a .lic file: raw bytes, one symbol per byte."""
        return [Stream(STREAM_KIND[kind], data, len(data)) for kind, data in self.items()]

    @classmethod
    def from_streams(cls, streams: Mapping[int, Stream]) -> Metadata:
        """The metadata of a parsed .lic file (streams by kind); a FormatError for each defect."""
        found = {}
        for kind, name in METADATA_STREAMS.items():
            stream = streams.get(kind)
            if stream is None:
                continue
            if stream.symbols != len(stream.data):
                raise FormatError(f"corrupt: the {name} stream declares {stream.symbols} symbols "
                                  f"in {len(stream.data)} bytes (one symbol per byte)")
            why = defect(name, stream.data)
            if why:
                raise FormatError(f"corrupt: the {name} stream {why}")
            found[name] = stream.data
        return cls(**found)

    def pil_info(self) -> dict[str, bytes]:
        """As Pillow's ``Image.info`` keys (``icc_profile``, ``exif`` with its JPEG prefix, ``xmp``)."""
        info = {"icc_profile": self.icc, "exif": EXIF_PREFIX + self.exif if self.exif else None, "xmp": self.xmp}
        return {key: value for key, value in info.items() if value is not None}


def defect(kind: str, data: bytes) -> str | None:
    """Why `data` cannot be carried as `kind` (a phrase after 'it'), or None when it can."""
    if not data:
        return "is empty"
    if len(data) > MAX_BYTES:
        return f"is {len(data)} bytes, above the limit of {MAX_BYTES}"
    if kind == "icc":
        if len(data) < _ICC_HEADER or data[36:40] != b"acsp":
            return "is not an ICC profile (no 'acsp' signature in a 128-byte header)"
        declared = int.from_bytes(data[:4], "big")
        if declared != len(data):
            return f"declares {declared} bytes but holds {len(data)} (truncated or padded)"
    elif kind == "exif":
        if len(data) < 8 or data[:4] not in _TIFF_HEADERS:
            return "does not begin with a TIFF header (II*\\0 or MM\\0*)"
    elif kind == "xmp":
        try:
            data.decode("utf-8")
        except UnicodeDecodeError:
            return "is not UTF-8"
    return None


def strip_kinds(strip: bool | str | Iterable[str] | None) -> frozenset[str]:
    """The kinds `strip` names: True or 'all' every kind, False/None none, else 'icc,exif'-style names."""
    if strip is True:
        return frozenset(KINDS)
    if not strip:
        return frozenset()
    names = {n.strip().lower() for n in (strip.split(",") if isinstance(strip, str) else strip)}
    if "all" in names:
        return frozenset(KINDS)
    unknown = sorted(names - set(KINDS))
    if unknown:
        raise LicError(f"cannot strip '{unknown[0]}': the metadata kinds are {', '.join(KINDS)} (or all)")
    return frozenset(names)


# ------------------------------------------------------------------------------ reading
def _as_bytes(value: object) -> bytes | None:
    if isinstance(value, (bytes, bytearray)):
        return bytes(value)
    return value.encode("utf-8") if isinstance(value, str) else None


def _tiff_exif(im: Image.Image) -> bytes | None:
    """A TIFF input's EXIF (its EXIF and GPS IFDs and descriptive tags), or None without them."""
    source = im.getexif()
    if not any(tag in source for tag in _EXIF_IFDS):
        return None
    exif = Image.Exif()
    _copy_photo_tags(source, exif)
    return exif.tobytes()[len(EXIF_PREFIX):]


def _copy_photo_tags(source: Image.Exif, target: MutableMapping) -> None:
    """Copy `source`'s descriptive IFD0 tags and its EXIF and GPS IFDs into `target`."""
    for tag in _DESCRIPTIVE:
        if tag in source:
            target[tag] = source[tag]
    for tag in _EXIF_IFDS:
        if tag in source:
            target[tag] = source.get_ifd(tag)


def exif_upright(tiff: bytes) -> bytes | None:
    """`tiff` (an EXIF TIFF structure) with its IFD0 orientation set to 1 in place, every other byte
    kept; None when that entry cannot be read as one SHORT."""
    order = "<" if tiff[:2] == b"II" else ">"
    try:
        (ifd,) = struct.unpack_from(order + "I", tiff, 4)
        (count,) = struct.unpack_from(order + "H", tiff, ifd)
        for pos in range(ifd + 2, ifd + 2 + 12 * count, 12):
            tag, kind, n = struct.unpack_from(order + "HHI", tiff, pos)
            if tag == ORIENTATION:
                if kind != 3 or n != 1:
                    return None
                out = bytearray(tiff)
                struct.pack_into(order + "H", out, pos + 8, 1)
                return bytes(out)
    except struct.error:
        return None
    return tiff


def xmp_upright(xmp: bytes) -> bytes:
    """`xmp` with its ``tiff:Orientation`` (attribute or element) set to 1."""
    return re.sub(rb'(tiff:Orientation(?:="|>))[0-9]', rb"\g<1>1", xmp)


def read_metadata(im: Image.Image, strip: frozenset[str] = frozenset(),
                  upright: bool = False) -> tuple[Metadata, list[str]]:
    """The metadata of an opened image, less the kinds in `strip`, and a warning for each blob dropped.

    `upright`: the EXIF orientation is being applied to the pixels, so the kept EXIF and XMP say 1.
    """
    found = {"icc": _as_bytes(im.info.get("icc_profile")), "xmp": _as_bytes(im.info.get("xmp"))}
    kept, notes = {}, []
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # Pillow warns of corrupt EXIF: dropped as unreadable
            found["exif"] = _tiff_exif(im) if im.format == "TIFF" else _as_bytes(im.info.get("exif"))
    except (*_PILLOW_ERRORS, UserWarning):
        found["exif"] = None
        if "exif" not in strip:
            notes.append("EXIF dropped: Pillow cannot read it (--strip exif silences this)")
    if found["exif"] and found["exif"].startswith(EXIF_PREFIX):
        found["exif"] = found["exif"][len(EXIF_PREFIX):]
    for kind in KINDS:
        data = found[kind]
        if not data or kind in strip:
            continue
        why = defect(kind, data)
        if why is None and upright and kind == "exif":
            data = exif_upright(data)
            why = None if data else "has an orientation entry that cannot be set to 1"
        elif why is None and upright and kind == "xmp":
            data = xmp_upright(data)
        if why:
            notes.append(f"{LABELS[kind]} dropped: it {why} (--strip {kind} silences this)")
        else:
            kept[kind] = data
    return Metadata(**kept), notes


# ------------------------------------------------------------------------------ writing
def _tiff_tags(metadata: Metadata) -> tuple[bytes, list[str]]:
    """The EXIF's descriptive tags and IFDs, and the XMP as tag 700, for Pillow's TIFF writer
    (which merges them into the TIFF's own IFD0); a warning when Pillow finds the EXIF corrupt."""
    tags, notes = Image.Exif(), []
    if metadata.exif:
        source = Image.Exif()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            source.load(metadata.exif)
            _copy_photo_tags(source, tags)
        if caught:
            notes.append("EXIF not written in full: Pillow reads it as corrupt")
    if metadata.xmp:
        tags[700] = metadata.xmp
    return tags.tobytes(), notes


def save_options(metadata: Metadata, fmt: str) -> tuple[dict, list[str]]:
    """Keyword arguments for ``Image.save(format=fmt)`` that write `metadata`, and a warning for
    each blob the format (as Pillow writes it) cannot hold."""
    info, notes = metadata.pil_info(), []
    if fmt in ("WEBP", "AVIF"):
        return info, notes
    if fmt == "PNG":
        options = {k: v for k, v in info.items() if k != "xmp"}
        if metadata.xmp:
            options["pnginfo"] = PngImagePlugin.PngInfo()
            options["pnginfo"].add_itxt("XML:com.adobe.xmp", metadata.xmp.decode("utf-8"))
        return options, notes
    if fmt == "JPEG":
        limits = {"exif": _JPEG_MARKER, "xmp": _JPEG_MARKER - 29, "icc_profile": 255 * (_JPEG_MARKER - 14)}
        for key, kind in (("icc_profile", "icc"), ("exif", "exif"), ("xmp", "xmp")):
            if key in info and len(info[key]) > limits[key]:
                del info[key]
                notes.append(f"{LABELS[kind]} not written: it is larger than a JPEG file can hold")
        return info, notes
    if fmt == "TIFF":
        options = {"icc_profile": metadata.icc} if metadata.icc else {}
        try:
            if metadata.exif or metadata.xmp:
                options["exif"], notes = _tiff_tags(metadata)
        except _PILLOW_ERRORS:
            notes.append("EXIF and XMP not written: Pillow cannot turn this EXIF into TIFF tags")
        return options, notes
    if metadata:
        kinds = [LABELS[kind] for kind, _ in metadata.items()]
        listed = ", ".join(kinds[:-1]) + " and " + kinds[-1] if len(kinds) > 1 else kinds[0]
        notes.append(f"{listed} not written: lic cannot put {'them' if len(kinds) > 1 else 'it'} in {fmt} files")
    return {}, notes
