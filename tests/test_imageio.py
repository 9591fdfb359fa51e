import io
import os
import struct
import zlib

import numpy as np
import pytest
from PIL import Image, ImageFile

from lccodec.errors import ImageError
from lccodec.imageio import RasterImage, from_planes, load_image, save_image, to_pil

RNG = np.random.default_rng(7)
RGB = RNG.integers(0, 256, (12, 16, 3), dtype=np.uint8)
GRAY = RNG.integers(0, 256, (12, 16), dtype=np.uint8)
ALPHA = RNG.integers(0, 256, (12, 16), dtype=np.uint8)


def _encode(im: Image.Image, fmt: str = "PNG", **kw) -> bytes:
    buf = io.BytesIO()
    im.save(buf, format=fmt, **kw)
    return buf.getvalue()


def _png(width, height, bit_depth, colour_type, samples: np.ndarray | None = None) -> bytes:
    """A PNG written by hand (Pillow cannot write every bit depth / colour type)."""
    def chunk(tag, data):
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))
    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, 0)
    raw = b"" if samples is None else b"".join(b"\x00" + row.tobytes() for row in samples)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw))
            + chunk(b"IEND", b""))


def test_load_truncated_images_stays_false():
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False


def test_rgb_png_from_every_source(tmp_path):
    data = _encode(Image.fromarray(RGB))
    path = tmp_path / "x.png"
    path.write_bytes(data)
    for source in (path, str(path), data, io.BytesIO(data), Image.open(io.BytesIO(data)), RGB):
        img = load_image(source)
        assert img.mode == "RGB" and img.alpha is None and img.warnings == []
        assert (img.width, img.height) == (16, 12)
        np.testing.assert_array_equal(img.pixels, RGB)


@pytest.mark.parametrize("arr,mode", [(GRAY, "L"), (GRAY[..., None], "L"),
                                      (np.dstack([GRAY, ALPHA]), "LA"), (RGB, "RGB"),
                                      (np.dstack([RGB, ALPHA]), "RGBA")])
def test_arrays(arr, mode):
    img = load_image(arr)
    assert img.mode == mode
    assert img.pixels.shape == (12, 16, 1 if mode.startswith("L") else 3)
    if mode.endswith("A"):
        np.testing.assert_array_equal(img.alpha, ALPHA)
    else:
        assert img.alpha is None


def test_bad_arrays():
    with pytest.raises(ImageError, match="uint8"):
        load_image(RGB.astype(np.float32))
    with pytest.raises(ImageError, match="shape"):
        load_image(np.zeros((4, 4, 5), np.uint8))
    with pytest.raises(ImageError, match="empty"):
        load_image(np.zeros((0, 4, 3), np.uint8))


@pytest.mark.parametrize("pil_mode,mode", [("L", "L"), ("LA", "LA"), ("RGB", "RGB"), ("RGBA", "RGBA"),
                                           ("1", "L"), ("CMYK", "RGB"), ("YCbCr", "RGB"),
                                           ("HSV", "RGB"), ("LAB", "RGB"), ("PA", "RGBA"),
                                           ("RGBa", "RGBA"), ("La", "LA"), ("RGBX", "RGB")])
def test_mode_conversions(pil_mode, mode):
    im = Image.fromarray(RGB).convert(pil_mode) if pil_mode not in ("PA", "La") else Image.new(pil_mode, (16, 12))
    img = load_image(im)
    assert img.mode == mode
    assert img.pixels.dtype == np.uint8 and img.pixels.shape[:2] == (12, 16)
    assert (img.alpha is not None) == mode.endswith("A")


def test_palette_without_and_with_transparency():
    pal = Image.fromarray(RGB).quantize(16)
    assert load_image(_encode(pal)).mode == "RGB"
    pal.info["transparency"] = 3
    img = load_image(_encode(pal, transparency=3))
    assert img.mode == "RGBA"
    idx = np.asarray(pal)
    np.testing.assert_array_equal(img.alpha == 0, idx == 3)


def test_exif_rotation():
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise for display
    data = _encode(Image.fromarray(RGB), "JPEG", exif=exif, quality=95)
    img = load_image(data)
    assert (img.width, img.height) == (12, 16)
    plain = load_image(_encode(Image.fromarray(RGB), "JPEG", quality=95))
    assert (plain.width, plain.height) == (16, 12)
    np.testing.assert_array_equal(img.pixels, np.rot90(plain.pixels, k=-1))


def test_16bit_gray_png():
    samples = (np.arange(12 * 16, dtype=np.uint32).reshape(12, 16) * 300).astype(">u2")
    img = load_image(_png(16, 12, 16, 0, samples))
    assert img.mode == "L"
    assert img.warnings == ["16-bit image reduced to 8 bits"]
    np.testing.assert_array_equal(img.pixels[..., 0], samples.astype(np.uint32) >> 8)


def test_16bit_gray_from_pillow_and_32bit_modes():
    a16 = (GRAY.astype(np.uint16) << 8) | 0x7F
    img = load_image(_encode(Image.fromarray(a16)))
    assert img.mode == "L" and "16-bit image reduced to 8 bits" in img.warnings
    np.testing.assert_array_equal(img.pixels[..., 0], GRAY)
    img = load_image(Image.fromarray(a16.astype(np.int32)))  # mode "I"
    np.testing.assert_array_equal(img.pixels[..., 0], GRAY)
    img = load_image(Image.fromarray(GRAY.astype(np.float32) / 255))  # mode "F"
    assert img.mode == "L" and img.warnings
    np.testing.assert_array_equal(img.pixels[..., 0], GRAY)


@pytest.mark.parametrize("colour_type,channels,mode", [(2, 3, "RGB"), (6, 4, "RGBA"), (4, 2, "LA")])
def test_16bit_colour_png(colour_type, channels, mode):
    samples = RNG.integers(0, 65536, (12, 16 * channels), dtype=np.uint32).astype(">u2")
    img = load_image(_png(16, 12, 16, colour_type, samples))
    assert img.mode == mode
    assert img.warnings == ["16-bit image reduced to 8 bits"]
    top = (samples.astype(np.uint32) >> 8).reshape(12, 16, channels)
    np.testing.assert_array_equal(img.pixels, top[..., : channels - (mode.endswith("A"))])
    if mode.endswith("A"):
        np.testing.assert_array_equal(img.alpha, top[..., -1])


def test_animated_gif_first_frame():
    frames = [Image.fromarray(np.full((8, 8, 3), v, np.uint8)) for v in (0, 128, 255)]
    data = _encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=50)
    img = load_image(data)
    assert img.mode == "RGB"
    assert img.warnings == ["animated image: only the first of 3 frames is used"]
    assert (img.pixels == 0).all()


def test_bomb_refused_by_header_before_decoding():
    data = _png(60000, 60000, 8, 0)  # header claims 3.6 gigapixels, no pixel data
    with pytest.raises(ImageError, match="image too large"):
        load_image(data)
    data = _png(10000, 10000, 8, 0)  # above Pillow's warning level, below max_pixels
    with pytest.raises(ImageError, match="image too large: 10000x10000 pixels exceeds the limit of 1000"):
        load_image(data, max_pixels=1000)
    with pytest.raises(ImageError, match="exceeds the limit of 100"):
        load_image(RGB, max_pixels=100)


def test_truncated_png_and_jpeg(tmp_path):
    png = _encode(Image.fromarray(RGB))
    jpg = _encode(Image.fromarray(RGB), "JPEG")
    for name, data in (("x.png", png[: len(png) // 2]), ("x.jpg", jpg[: len(jpg) // 2])):
        path = tmp_path / name
        path.write_bytes(data)
        with pytest.raises(ImageError, match=rf"cannot read image '.*{name}': truncated file"):
            load_image(path)
    # Every cut into the pixel data fails cleanly. (Pillow accepts a PNG whose last 20 bytes --
    # zlib checksum, IDAT CRC, IEND -- are missing: the pixels are complete by then.)
    for cut in range(0, len(png) - 20):
        with pytest.raises(ImageError):
            load_image(png[:cut])


def test_not_an_image(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("hello")
    with pytest.raises(ImageError, match=r"'.*notes\.txt' is not an image Pillow can read"):
        load_image(path)
    with pytest.raises(ImageError, match="not an image"):
        load_image(b"")


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(ImageError, match=r"no such file: '.*nope\.png'"):
        load_image(tmp_path / "nope.png")
    with pytest.raises(ImageError, match="is a directory"):
        load_image(tmp_path)


@pytest.mark.parametrize("ext,fmt", [(".png", "PNG"), (".tif", "TIFF"), ("", "PNG"), (".unknownext", "PNG")])
def test_save_round_trip(tmp_path, ext, fmt):
    img = load_image(np.dstack([RGB, ALPHA]))
    path = tmp_path / f"out{ext}"
    save_image(img, path)
    with Image.open(path) as im:
        assert im.format == fmt
    back = load_image(path)
    assert back.mode == "RGBA"
    np.testing.assert_array_equal(back.pixels, RGB)
    np.testing.assert_array_equal(back.alpha, ALPHA)
    assert sorted(os.listdir(tmp_path)) == [path.name]


def test_save_explicit_format(tmp_path):
    path = tmp_path / "out.png"
    save_image(load_image(RGB), path, format="jpeg")
    with Image.open(path) as im:
        assert im.format == "JPEG"


@pytest.mark.parametrize("mode", ["L", "LA", "RGB", "RGBA"])
def test_to_pil_and_stream_save(mode):
    src = {"L": GRAY, "LA": np.dstack([GRAY, ALPHA]), "RGB": RGB, "RGBA": np.dstack([RGB, ALPHA])}[mode]
    img = load_image(src)
    assert to_pil(img).mode == mode
    buf = io.BytesIO()
    save_image(img, buf)
    back = load_image(buf.getvalue())
    assert back.mode == mode
    np.testing.assert_array_equal(back.pixels, img.pixels)


def test_failed_save_leaves_nothing_behind(tmp_path):
    img = load_image(np.zeros((1, 16400, 3), np.uint8))  # wider than WebP allows: fails while saving
    path = tmp_path / "out.webp"
    with pytest.raises(ImageError, match="cannot save an image of mode RGB as WEBP .*16383"):
        save_image(img, path)
    assert os.listdir(tmp_path) == []
    path.write_bytes(b"keep")
    with pytest.raises(ImageError):
        save_image(img, path)
    assert path.read_bytes() == b"keep"
    assert os.listdir(tmp_path) == ["out.webp"]


@pytest.mark.parametrize("mode,ext", [("RGBA", "jpg"), ("LA", "jpg"), ("RGBA", "pcx"), ("LA", "ppm")])
def test_alpha_is_flattened_onto_white_where_the_format_has_none(tmp_path, mode, ext):
    colour = RGB if mode == "RGBA" else GRAY
    alpha = np.zeros_like(ALPHA)
    alpha[:, : alpha.shape[1] // 2] = 255  # left half opaque, right half transparent
    notes = save_image(load_image(np.dstack([colour, alpha])), tmp_path / f"out.{ext}")
    assert notes == [f"{Image.registered_extensions()['.' + ext]} has no alpha channel: the {mode} image "
                     "is flattened onto white (.png, .webp and .tiff keep alpha)"]
    with Image.open(tmp_path / f"out.{ext}") as im:
        assert im.mode == mode[:-1]
        pixels = np.asarray(im).reshape(alpha.shape + (-1,))
    assert pixels[:, -1].mean() > 240  # transparent: white (JPEG rings a little at the edge)
    if ext != "jpg":  # lossless: the opaque half is the image itself
        np.testing.assert_array_equal(pixels[:, 0], colour.reshape(alpha.shape + (-1,))[:, 0])


def test_a_format_that_cannot_hold_the_image_is_refused(tmp_path):
    from lccodec.imageio import output_mode

    assert output_mode("RGBA", "PNG") == ("RGBA", None)
    assert output_mode("RGBA", "JPEG")[0] == "RGB"
    with pytest.raises(ImageError, match="XBM files cannot hold RGB images"):
        output_mode("RGB", "XBM")
    with pytest.raises(ImageError, match=f"cannot write '.*out.xbm': XBM files cannot hold RGB images"):
        save_image(load_image(RGB), tmp_path / "out.xbm")
    assert os.listdir(tmp_path) == []


def test_save_into_missing_directory(tmp_path):
    from lccodec.errors import LicError
    with pytest.raises(LicError, match="no such directory"):
        save_image(load_image(RGB), tmp_path / "missing" / "x.png")


def test_from_planes():
    img = from_planes(GRAY, None, "L")
    assert isinstance(img, RasterImage) and img.pixels.shape == (12, 16, 1)
    img = from_planes(RGB, ALPHA, "RGBA")
    assert to_pil(img).mode == "RGBA"
    with pytest.raises(ValueError):
        from_planes(RGB, None, "RGBA")
    with pytest.raises(ValueError):
        from_planes(GRAY, None, "RGB")
