"""The CPU-only run of lccodec.checks.cross_machine (benchmarks/cross_machine.py) on a few small images.

Encode on the CPU, decode with other CPU settings (torch threads 1 and 2, the model in
channels_last and in contiguous NCHW): latents identical, images within ±1 of the encoder's reconstruction.
The GPU run is `python benchmarks/cross_machine.py --encode-device cuda --decode-device cpu`.
"""
from __future__ import annotations

import json

import numpy as np
import pytest

from lccodec.checks import cross_machine as cm
from lccodec.imageio import from_planes

from conftest import photo_like


@pytest.fixture(scope="module")
def images():
    rgb = photo_like(64, 96, seed=21)
    gray = photo_like(40, 64, seed=22)[..., :1]
    alpha = np.tile(np.linspace(0, 255, 64).astype(np.uint8), (40, 1))
    return [("rgb-96x64", from_planes(rgb, None, "RGB")), ("la-64x40", from_planes(gray, alpha, "LA"))]


@pytest.fixture(scope="module")
def result(images):
    """The RGB image at every quality, the LA image at one (keeps the test near 20 s)."""
    summary, records = cm.run(images[:1], encode_device="cpu", decode_device="cpu")
    _, more = cm.run(images[1:], qualities=(5.0,), encode_device="cpu", decode_device="cpu")
    return cm.summarise(records + more, {}), records + more


def test_every_model_and_quality_checked(result, images):
    summary, records = result
    assert summary["models"] == sorted(cm.installed_models()) and "hyperprior" in summary["models"]
    assert summary["qualities"] == list(cm.DEFAULT_QUALITIES)
    assert summary["cases"] == (len(cm.DEFAULT_QUALITIES) + 1) * len(summary["models"])
    assert summary["images"] == len(images)
    assert set(summary["decoders"]) == {"cpu", "cpu-threads1", "cpu-threads2", "cpu-channels_last",
                                        "cpu-contiguous"}
    assert all(v["checked"] == summary["cases"] for v in summary["decoders"].values())


def test_latents_identical_and_pixels_within_one(result):
    summary, records = result
    assert summary["latent_mismatches"] == 0, [r for r in records if any(
        d["latent_mismatch"] for d in r["decoders"].values())]
    assert summary["encoder_truth_checked"] >= len(cm.DEFAULT_QUALITIES) + 1  # the hyperprior cases
    assert summary["encoder_truth_mismatches"] == 0
    assert summary["max_pixel_diff"] <= 1
    assert summary["ok"]


def test_same_settings_decode_bit_identically(result):
    """Same device, default settings: the decoder gives exactly the encoder's reconstruction."""
    _, records = result
    assert all(r["decoders"]["cpu"]["pixels_identical"] for r in records)


def test_mismatch_is_detected(images):
    """The comparison is not vacuous: a changed latent or a 2-level pixel change is reported."""
    codec = cm.make_codec("hyperprior", cm.Variant("cpu", "cpu"))
    enc = codec.encode(images[0][1], 3.0)
    lat = cm.decoded_latents(codec, enc.data)
    changed = dict(lat, residual=lat["residual"].clone())
    changed["residual"].view(-1)[0] += 1
    assert cm.same_latents(lat, changed) == ["residual"]
    record = {"image": "x", "model": "hyperprior", "quality": 3.0, "bytes": 1, "encoder_truth_mismatch": [],
              "decoders": {"cpu": {"latent_mismatch": [], "max_pixel_diff": 2, "pixels_identical": False}}}
    assert not cm.summarise([record], {})["ok"]


def test_script_cli_writes_json(tmp_path, images):
    from PIL import Image

    folder = tmp_path / "imgs"
    folder.mkdir()
    Image.fromarray(images[0][1].pixels).save(folder / "a.png")
    out = tmp_path / "summary.json"
    code = cm.main([str(folder), "--encode-device", "cpu", "--decode-device", "cpu", "--qualities", "2",
                    "--no-perturb", "--json", str(out)])
    summary = json.loads(out.read_text())
    assert code == 0 and summary["ok"] and summary["cases"] == len(cm.installed_models())
