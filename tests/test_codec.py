"""Round trips through the library API: modes, sizes, alpha, quality and rate targets."""
from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

import lccodec
from lccodec import container
from lccodec.errors import FormatError, ModelError

from conftest import photo_like


@pytest.mark.parametrize("shape", [(1, 1), (17, 33), (64, 64), (70, 129)])
def test_any_size_round_trip_equals_reconstruction(codec, shape):
    img = photo_like(*shape)
    enc = codec.encode(img, 3.0)
    out = codec.decode(enc.data)
    assert out.shape == (*shape, 3)
    assert np.array_equal(out, enc.reconstruction)


def test_public_api_bytes_to_pil():
    img = photo_like(40, 50)
    data = lccodec.encode(img, model="hyperprior", quality=5.5, device="cpu")
    assert isinstance(data, bytes) and data[:4] == container.MAGIC
    out = lccodec.decode(data, device="cpu")
    assert out.size == (50, 40) and out.mode == "RGB"


def test_grayscale_stays_grayscale(codec):
    gray = photo_like(48, 40)[:, :, 0]
    enc = codec.encode(gray, 4.0)
    assert enc.mode == "L" and enc.reconstruction.shape == (48, 40, 1)
    assert lccodec.decode(enc.data, "cpu").mode == "L"


@pytest.mark.parametrize("mode", ["RGBA", "LA"])
def test_alpha_is_lossless(codec, mode):
    rgb = photo_like(30, 45)
    alpha = np.tile(np.arange(45, dtype=np.uint8) * 5, (30, 1))
    pil = Image.fromarray(np.dstack([rgb, alpha]), "RGBA")
    if mode == "LA":
        pil = pil.convert("LA")
    enc = codec.encode(pil, 4.0)
    out = lccodec.decode(enc.data, "cpu")
    assert out.mode == mode
    assert np.array_equal(np.asarray(out)[..., -1], np.asarray(pil)[..., -1])
    header, streams = container.unpack(enc.data)
    assert container.STREAM_ALPHA in {s.kind for s in streams}


def test_header_fields(codec):
    enc = codec.encode(photo_like(20, 30), 2.75)
    header, streams = container.unpack(enc.data)
    assert header.model_id == 1 and header.weights_id == codec.weights_id
    assert header.quality_q8 == round(2.75 * 256) and header.quality == 2.75
    assert (header.width, header.height, header.mode) == (30, 20, "RGB")
    assert header.layer_flags == container.LAYER_Z | container.LAYER_Y
    kinds = {s.kind: s for s in streams}
    assert kinds[container.STREAM_Z].symbols == 128 * 1 * 1
    assert kinds[container.STREAM_Y].symbols == 192 * 4 * 4


def test_higher_quality_costs_more_bits(codec):
    img = photo_like(64, 96, seed=3)
    sizes = [len(codec.encode(img, q).data) for q in (1.0, 4.0, 8.0)]
    assert sizes[0] <= sizes[1] <= sizes[2]


def test_fractional_quality_is_quantized_to_header_steps(codec):
    img = photo_like(32, 32)
    a = codec.encode(img, 3.3)
    b = codec.encode(img, round(3.3 * 256) / 256)
    assert a.data == b.data


@pytest.mark.parametrize("bad", [0.5, 8.5, float("nan"), float("inf")])
def test_bad_quality_refused(codec, bad):
    with pytest.raises(ModelError, match="quality"):
        codec.encode(photo_like(16, 16), bad)


def test_bpp_target_gives_largest_file_within_budget(codec):
    img = photo_like(64, 64, seed=5)
    lo = codec.encode(img, 1.0).bpp
    hi = codec.encode(img, 8.0).bpp
    target = (lo + hi) / 2
    enc = codec.encode(img, bpp=target)
    assert enc.bpp <= target
    step_up = min(enc.quality + 1 / 256, 8.0)
    assert step_up == enc.quality or codec.encode(img, step_up).bpp > target or enc.quality == 8.0


def test_psnr_target_gives_smallest_file_reaching_it(codec):
    img = photo_like(64, 64, seed=6)
    lo = codec.encode(img, 1.0).psnr
    hi = codec.encode(img, 8.0).psnr
    if hi - lo < 0.5:
        pytest.skip("weights too weak to span a PSNR range")
    target = (lo + hi) / 2
    enc = codec.encode(img, psnr=target)
    assert enc.psnr >= target
    if enc.quality > 1.0:
        assert codec.encode(img, enc.quality - 1 / 256).psnr < target


def test_unreachable_target_warns(codec):
    enc = codec.encode(photo_like(32, 32), bpp=1e-6)
    assert enc.quality == 1.0 and any("cannot reach" in w for w in enc.warnings)


def test_weights_mismatch_refused(codec):
    enc = codec.encode(photo_like(16, 16), 4.0)
    header, streams = container.unpack(enc.data)
    other = container.pack(
        container.Header(header.model_id, header.weights_id ^ 1, header.quality_q8, header.width,
                         header.height, header.mode, header.layer_flags), streams)
    with pytest.raises(ModelError, match="weights"):
        lccodec.decode(other, "cpu")


def test_unknown_model_id_refused(codec):
    enc = codec.encode(photo_like(16, 16), 4.0)
    header, streams = container.unpack(enc.data)
    other = container.pack(
        container.Header(77, header.weights_id, header.quality_q8, header.width, header.height,
                         header.mode, header.layer_flags), streams)
    with pytest.raises(ModelError, match="unknown model"):
        lccodec.decode(other, "cpu")


def test_symbol_count_mismatch_refused(codec):
    enc = codec.encode(photo_like(16, 16), 4.0)
    header, streams = container.unpack(enc.data)
    bigger = container.Header(header.model_id, header.weights_id, header.quality_q8, 200, 200,
                              header.mode, header.layer_flags)
    with pytest.raises(FormatError, match="symbol count"):
        lccodec.decode(container.pack(bigger, streams), "cpu")


def test_unknown_model_name(codec):
    with pytest.raises(ModelError, match="unknown model 'nope'"):
        lccodec.open_model("nope")


def test_decode_accepts_file_object_bytes(codec):
    enc = codec.encode(photo_like(16, 24), 4.0)
    buf = io.BytesIO(enc.data)
    assert lccodec.decode(buf.getvalue(), "cpu").size == (24, 16)
