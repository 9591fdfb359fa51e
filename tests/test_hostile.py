"""Hostile and unusual images, end to end: encode (library and CLI) then decode.

tests/test_imageio.py checks the loader on its own; these go through the whole codec.
"""
from __future__ import annotations

import io
import struct
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import lccodec
from lccodec.errors import ImageError

from conftest import photo_like, run_cli as _run


def _chunk(tag: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))


def crafted_png(width: int, height: int, raw: bytes = b"") -> bytes:
    """An 8-bit RGB PNG whose IHDR (valid CRC) claims width x height, with little or no data."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", zlib.compress(raw))
            + _chunk(b"IEND", b""))


def _save(im: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    im.save(buf, format=fmt, **kw)
    return buf.getvalue()


def _round_trip(data_or_image, quality: float = 3.0) -> Image.Image:
    lic = lccodec.encode(data_or_image, quality=quality, device="cpu")
    return lccodec.decode(lic, device="cpu")




def _one_error_line(code: int, err: str, fragment: str) -> None:
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert code != 0 and len(lines) == 1, err
    assert lines[0].startswith("lic: error: ") and fragment in lines[0], err
    assert "internal error" not in err and "Traceback" not in err


def _cli_encode(data: bytes, tmp_path: Path, capsys, name: str = "in.png") -> tuple[int, str, Path]:
    src, out = tmp_path / name, tmp_path / (name + ".lic")
    src.write_bytes(data)
    code, _, err = _run(["encode", str(src), str(out), "--quality", "2", "--device", "cpu"], capsys)
    return code, err, out


# ----------------------------------------------------------------------------- refused
@pytest.mark.parametrize("width,height", [(100000, 100000), (20000, 20000), (12000, 12000)])
def test_decompression_bomb_refused_quickly(codec, width, height, tmp_path, capsys):
    """The header alone decides: no pixel buffer is allocated (the model is loaded beforehand)."""
    bomb = crafted_png(width, height)
    start = time.perf_counter()
    with pytest.raises(ImageError, match="image too large"):
        lccodec.encode(bomb, device="cpu")
    assert time.perf_counter() - start < 1.0
    code, err, out = _cli_encode(bomb, tmp_path, capsys)
    _one_error_line(code, err, "image too large")
    assert not out.exists()


def test_empty_images_refused(tmp_path, capsys):
    for data in (crafted_png(0, 0), crafted_png(0, 16), crafted_png(16, 0)):
        with pytest.raises(ImageError):
            lccodec.encode(data, device="cpu")
        code, err, out = _cli_encode(data, tmp_path, capsys)
        _one_error_line(code, err, "")
        assert not out.exists()
    with pytest.raises(ImageError, match="empty"):
        lccodec.encode(np.zeros((0, 0, 3), np.uint8), device="cpu")


@pytest.mark.parametrize("fmt,cut", [("PNG", 0.5), ("PNG", 0.1), ("JPEG", 0.5), ("JPEG", 0.9)])
def test_truncated_files_refused(fmt, cut, tmp_path, capsys):
    data = _save(Image.fromarray(photo_like(120, 160, seed=3)), fmt)
    data = data[: int(len(data) * cut)]
    with pytest.raises(ImageError, match="truncated"):
        lccodec.encode(data, device="cpu")
    code, err, out = _cli_encode(data, tmp_path, capsys, "in." + fmt.lower())
    _one_error_line(code, err, "truncated")
    assert not out.exists()


# ----------------------------------------------------------------------------- extreme shapes
@pytest.mark.parametrize("height,width", [(1, 1), (1, 10000), (10000, 1), (1, 65), (65, 3)])
def test_extreme_shapes_round_trip(codec, height, width):
    image = photo_like(height, width, seed=height + width)
    enc = codec.encode(image, 4.0)
    assert enc.reconstruction.shape == (height, width, 3)
    out = lccodec.decode(enc.data, device="cpu")
    assert out.size == (width, height) and out.mode == "RGB"
    assert np.array_equal(np.asarray(out), enc.reconstruction)


# ----------------------------------------------------------------------------- modes and formats
def test_cmyk_jpeg(tmp_path, capsys):
    data = _save(Image.fromarray(photo_like(40, 56)).convert("CMYK"), "JPEG", quality=95)
    assert Image.open(io.BytesIO(data)).mode == "CMYK"
    out = _round_trip(data)
    assert out.size == (56, 40) and out.mode == "RGB"
    code, err, lic = _cli_encode(data, tmp_path, capsys, "cmyk.jpg")
    assert code == 0 and err == "" and lccodec.decode(lic.read_bytes(), device="cpu").mode == "RGB"


@pytest.mark.parametrize("transparent", [False, True])
def test_palette_png(transparent):
    im = Image.fromarray(photo_like(30, 44, seed=4)).quantize(16)
    kw = {"transparency": 0} if transparent else {}
    data = _save(im, "PNG", **kw)
    out = _round_trip(data)
    assert out.size == (44, 30)
    if transparent:
        expected = np.asarray(Image.open(io.BytesIO(data)).convert("RGBA"))[..., 3]
        assert out.mode == "RGBA" and 0 in expected and 255 in expected
        assert np.array_equal(np.asarray(out)[..., 3], expected)  # alpha is lossless
    else:
        assert out.mode == "RGB"


def test_la_png_keeps_lossless_alpha():
    gray = photo_like(26, 38, seed=5)[..., 0]
    alpha = np.tile(np.linspace(0, 255, 38).astype(np.uint8), (26, 1))
    im = Image.merge("LA", (Image.fromarray(gray), Image.fromarray(alpha)))
    out = _round_trip(_save(im, "PNG"))
    assert out.mode == "LA" and out.size == (38, 26)
    assert np.array_equal(np.asarray(out)[..., 1], alpha)


def test_16bit_grayscale_png_warns_through_cli(tmp_path, capsys):
    ramp = (np.arange(32 * 48, dtype=np.uint32).reshape(32, 48) * 40).astype(np.uint16)
    data = _save(Image.fromarray(ramp), "PNG")
    assert Image.open(io.BytesIO(data)).mode.startswith("I;16")
    code, err, lic = _cli_encode(data, tmp_path, capsys, "deep.png")
    assert code == 0
    assert err.strip().splitlines() == ["lic: warning: 16-bit image reduced to 8 bits"]
    png = tmp_path / "deep.out.png"
    assert _run(["decode", str(lic), str(png), "--device", "cpu"], capsys)[0] == 0
    with Image.open(png) as im:
        assert im.mode == "L" and im.size == (48, 32)


def test_exif_rotated_jpeg_decodes_at_rotated_size():
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise on display
    data = _save(Image.fromarray(photo_like(24, 40)), "JPEG", exif=exif.tobytes())
    assert Image.open(io.BytesIO(data)).size == (40, 24)
    out = _round_trip(data)
    assert out.size == (24, 40)


def test_animated_gif_uses_first_frame_and_warns(codec, tmp_path, capsys):
    frames = [Image.new("RGB", (32, 24), colour) for colour in ((230, 20, 20), (20, 20, 230), (20, 230, 20))]
    buf = io.BytesIO()
    frames[0].save(buf, format="GIF", save_all=True, append_images=frames[1:], duration=50)
    data = buf.getvalue()
    enc = codec.encode(data, 5.0)
    assert any("first of 3 frames" in w for w in enc.warnings)
    decoded = np.asarray(lccodec.decode(enc.data, device="cpu")).astype(int)
    assert decoded.shape == (24, 32, 3)
    assert np.array_equal(decoded, enc.reconstruction)
    # first frame is red: the coded colour must be nearer red than blue or green
    mean = decoded.reshape(-1, 3).mean(axis=0)
    assert mean[0] > mean[1] and mean[0] > mean[2], mean
    code, err, _ = _cli_encode(data, tmp_path, capsys, "anim.gif")
    assert code == 0
    assert err.strip().splitlines() == ["lic: warning: animated image: only the first of 3 frames is used"]


# ----------------------------------------------------------------------------- broken metadata
def _png_with(chunk: bytes, width: int = 16, height: int = 12) -> bytes:
    """An 8-bit RGB PNG with `chunk` (a whole chunk) before its image data."""
    rows = b"".join(b"\x00" + bytes(range(3 * width)) for _ in range(height))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + chunk + _chunk(b"IDAT", zlib.compress(rows))
            + _chunk(b"IEND", b""))


BROKEN_METADATA = {
    "iccp-not-zlib.png": _png_with(_chunk(b"iCCP", b"ICC Profile\x00\x00not zlib at all")),
    "exif-ifd-past-end.png": _png_with(_chunk(b"eXIf", b"MM\x00*\x00\x00\xff\xff")),
    "exif-not-tiff.jpg": _save(Image.fromarray(photo_like(12, 16)), "JPEG", exif=b"Exif\x00\x00garbage!"),
    "icc-one-fragment-of-two.jpg": _save(Image.fromarray(photo_like(12, 16)), "JPEG",
                                         extra=b"\xff\xe2\x00\x14ICC_PROFILE\x00\x01\x02abcd"),
    "xmp-not-utf8.webp": _save(Image.fromarray(photo_like(12, 16)), "WEBP", xmp=b"<x>\xff\xfe</x>"),
}


@pytest.mark.parametrize("name", sorted(BROKEN_METADATA))
def test_broken_metadata_never_stops_an_encode_or_a_decode(name, tmp_path, capsys):
    """Metadata Pillow cannot read, or that breaks a .lic rule, is dropped (at most one warning
    line): the image still encodes and decodes, into every output format that takes metadata."""
    code, err, out = _cli_encode(BROKEN_METADATA[name], tmp_path, capsys, name)
    lines = err.strip().splitlines()
    assert code == 0 and len(lines) <= 1 and all(ln.startswith("lic: warning: ") for ln in lines), err
    for ext in ("png", "jpg", "webp", "tiff"):
        code, _, err = _run(["decode", str(out), str(tmp_path / f"out.{ext}")], capsys)
        assert code == 0 and "error" not in err, (ext, err)
