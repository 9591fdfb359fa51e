"""The Python API: what `import lccodec` offers, its warnings, type hints and inputs."""
from __future__ import annotations

import inspect
import io
import pydoc
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import lccodec
from conftest import photo_like
from lccodec import LicError, LicWarning
from lccodec.imageio import WARN_16BIT, load_image

ROOT = Path(__file__).resolve().parents[1]


def test_decode_accepts_a_path(codec, tmp_path):
    data = codec.encode(photo_like(24, 40), 3.0).data
    (tmp_path / "a.lic").write_bytes(data)
    for source in (tmp_path / "a.lic", str(tmp_path / "a.lic")):
        assert np.array_equal(np.asarray(lccodec.decode(source, device="cpu")),
                              np.asarray(lccodec.decode(data, device="cpu")))
    with pytest.raises(LicError, match="no such file"):
        lccodec.decode(tmp_path / "missing.lic")


def test_max_pixels_bounds_encode_before_any_work(codec, monkeypatch):
    image = photo_like(24, 40)  # 960 pixels
    assert lccodec.decode(lccodec.encode(image, device="cpu", max_pixels=960), device="cpu").size == (40, 24)
    from lccodec import codec as codec_module

    monkeypatch.setattr(codec_module, "open_model", lambda *a, **k: pytest.fail("a model was loaded"))
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="PNG")
    for source in (image, buf.getvalue(), Image.open(io.BytesIO(buf.getvalue())), load_image(image)):
        with pytest.raises(lccodec.ImageError, match="image too large: 40x24 pixels exceeds the limit of 959"):
            lccodec.encode(source, max_pixels=959)


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "100"])
def test_max_pixels_must_be_a_positive_integer(bad):
    with pytest.raises(LicError, match="max_pixels must be a positive integer"):
        lccodec.encode(photo_like(8, 8), max_pixels=bad)
    with pytest.raises(LicError, match="max_pixels must be a positive integer"):
        lccodec.decode(b"\x89LIC", max_pixels=bad)


@pytest.mark.parametrize("model", ["hyperprior", "context"])
def test_threads_decoding_with_one_cached_model_get_identical_images(model):
    """4 threads call lccodec.decode at once, on one cached codec: each image as decoded alone."""
    import threading
    from concurrent.futures import ThreadPoolExecutor

    images = [photo_like(24 + 8 * i, 40, seed=i) for i in range(3)]
    images.append(np.dstack([photo_like(20, 36, seed=9), np.tile(np.arange(36, dtype=np.uint8) * 7, (20, 1))]))
    files = [lccodec.encode(image, model, 2.0 + i, device="cpu") for i, image in enumerate(images)]
    alone = [np.asarray(lccodec.decode(data, device="cpu")) for data in files]
    codec, start = lccodec.open_model(model, "cpu"), threading.Barrier(4)

    def decode_all(k: int) -> list[np.ndarray]:
        start.wait()
        return [np.asarray(lccodec.decode(files[(k + j) % 4], device="cpu")) for j in range(4)]

    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(decode_all, range(4)))
    assert lccodec.open_model(model, "cpu") is codec  # one codec served every thread
    for k, decoded in enumerate(results):
        for j, image in enumerate(decoded):
            assert np.array_equal(image, alone[(k + j) % 4]), (k, j)


def test_warnings_reach_python_users(codec):
    with pytest.warns(LicWarning, match="cannot reach"):
        enc = codec.encode(photo_like(32, 32), bpp=1e-4)
    assert any("cannot reach" in w for w in enc.warnings)
    with pytest.warns(LicWarning, match="16-bit"):
        lccodec.encode(photo_like(32, 32).astype(np.uint16) * 257, device="cpu")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing to say about a plain 8-bit image
        codec.encode(photo_like(32, 32), 3.0)


def test_uint16_arrays_are_handled_like_16bit_files():
    wide = (photo_like(12, 16).astype(np.uint16) << 8) | 0x5A
    buf = io.BytesIO()
    Image.fromarray(wide[..., 0]).save(buf, format="PNG")  # a 16-bit grayscale file
    from_file, from_array = load_image(buf.getvalue()), load_image(wide[..., 0])
    assert from_file.warnings == from_array.warnings == [WARN_16BIT]
    np.testing.assert_array_equal(from_file.pixels, from_array.pixels)
    rgb = load_image(wide)
    assert rgb.mode == "RGB" and rgb.warnings == [WARN_16BIT]
    np.testing.assert_array_equal(rgb.pixels, wide >> 8)
    with pytest.raises(LicError, match="uint8 or uint16"):
        load_image(wide.astype(np.int32))


def test_size_target_is_a_byte_budget(codec):
    image = photo_like(48, 64)
    budget = len(codec.encode(image, 4.0).data)
    enc = codec.encode(image, size=budget)
    assert len(enc.data) <= budget and enc.quality >= 4.0 and not enc.warnings
    assert enc.data == codec.encode(image, bpp=budget * 8 / (48 * 64)).data
    with pytest.warns(LicWarning, match="cannot reach 10 bytes"):
        assert codec.encode(image, size=10).quality == codec.quality_range[0]
    with pytest.raises(LicError, match="only one of"):
        codec.encode(image, 3.0, size=100)
    with pytest.raises(LicError, match="positive number of bytes"):
        codec.encode(image, size=0)


def _jpeg(**info) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(photo_like(16, 16)).save(buf, format="JPEG", **info)
    return buf.getvalue()


def test_metadata_is_kept_and_bad_metadata_warned_unless_stripped():
    exif = Image.Exif()
    exif[0x010F] = "Camera maker"
    data = _jpeg(icc_profile=b"\0" * 128, exif=exif)  # 128 zero bytes: not an ICC profile
    loaded = load_image(data)
    assert loaded.metadata == lccodec.Metadata(exif=exif.tobytes()[6:])
    assert loaded.warnings == ["ICC profile dropped: it is not an ICC profile (no 'acsp' signature in "
                               "a 128-byte header) (--strip icc silences this)"]
    assert load_image(data, strip=True).warnings == [] and not load_image(data, strip=True).metadata
    assert load_image(data, strip="icc").metadata == loaded.metadata
    with pytest.warns(LicWarning, match="ICC"):
        enc = lccodec.open_model("hyperprior", "cpu").encode(data)
    assert enc.metadata == loaded.metadata
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        lccodec.encode(data, device="cpu", strip=True)


def test_help_lists_the_lazily_imported_names():
    text = pydoc.render_doc(lccodec, renderer=pydoc.plaintext)
    for name in ("open_model(", "class Codec", "class Encoded", "decode(", "class Metadata"):
        assert name in text, name
    assert {"open_model", "Codec", "Encoded", "Metadata"} <= set(dir(lccodec))


def _public_callables():
    from lccodec import atomic, batch, codec, device, files, imageio, metadata, metrics

    for module in (lccodec, atomic, batch, codec, device, files, imageio, metadata, metrics):
        for name, obj in vars(module).items():
            if name.startswith("_") or getattr(obj, "__module__", None) != module.__name__:
                continue
            if inspect.isfunction(obj):
                yield f"{module.__name__}.{name}", obj
            elif inspect.isclass(obj):
                for meth_name, meth in vars(obj).items():
                    if inspect.isfunction(meth) and (not meth_name.startswith("_") or meth_name == "__init__"):
                        yield f"{module.__name__}.{name}.{meth_name}", meth
    yield "lccodec.__getattr__", lccodec.__getattr__


def test_public_api_has_return_type_hints():
    missing = [name for name, fn in _public_callables()
               if inspect.signature(fn).return_annotation is inspect.Signature.empty]
    assert missing == []


def test_py_typed_marker_is_shipped():
    assert (ROOT / "src" / "lccodec" / "py.typed").is_file()
    assert '"lccodec" = ["py.typed"]' in (ROOT / "pyproject.toml").read_text()


def test_licence_files():
    assert (ROOT / "LICENSE").read_text().startswith("MIT License")
    assert 'license = { text = "MIT" }' in (ROOT / "pyproject.toml").read_text()
    for doc in [ROOT / "README.md", *sorted((ROOT / "docs" / "models").glob("*.md"))]:
        text = doc.read_text()
        assert "BSDS500" in text and "research and education only" in text.replace("\n", " "), doc.name
