"""Conformance vectors: small .lic files of every model decode to the digests recorded beside them.

tests/vectors/ holds, per model, seeded random test weights and a few files (several sizes, modes,
qualities, layer sets, a non-default search window); vectors.json records the SHA-256 of each
file, of the exact latents it decodes to and of the decoded image. A symmetric change to encoder
and decoder (symbol order, table layout, fixed-point rounding) passes every round-trip test but
changes these digests: that is a format change (docs/format.md). tests/vectors/regenerate.py
makes them.
"""
from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import pytest
import torch

from lccodec.models import MODELS

VECTORS_DIR = Path(__file__).resolve().parent / "vectors"
sys.path.insert(0, str(VECTORS_DIR))
import regenerate  # noqa: E402  (tests/vectors/regenerate.py: the digest definitions)

MANIFEST = json.loads((VECTORS_DIR / "vectors.json").read_text())
VECTORS = MANIFEST["vectors"]


@pytest.fixture(scope="module")
def codecs():
    return {name: regenerate.open_codec(name) for name in MODELS}


@pytest.fixture()
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_every_model_has_vectors():
    assert {v["model"] for v in VECTORS} == set(MODELS)
    assert all(sum(v["model"] == name for v in VECTORS) >= 3 for name in MODELS)
    total = sum(p.stat().st_size for p in VECTORS_DIR.rglob("*") if p.is_file())
    assert total < 2_000_000


@pytest.mark.parametrize("vector", VECTORS, ids=[v["file"] for v in VECTORS])
def test_vector_decodes_to_its_digests(vector, codecs, one_thread):
    data = (VECTORS_DIR / vector["file"]).read_bytes()
    assert hashlib.sha256(data).hexdigest() == vector["lic_sha256"], "the .lic file itself changed"
    codec = codecs[vector["model"]]
    assert f"{codec.weights_id:08x}" == vector["weights_id"], "the test weights changed"
    assert regenerate.latents_sha256(regenerate.decoded_latents(codec, data)) == vector["latents_sha256"]
    pixels = codec.decode(data)
    channels = {"L": 1, "LA": 2, "RGB": 3, "RGBA": 4}[vector["mode"]]
    assert pixels.shape == (vector["height"], vector["width"], channels)
    if regenerate.platform_tag() != MANIFEST["platform"]:
        pytest.skip(f"latents match; image digests are pinned to {MANIFEST['platform']} (float synthesis)")
    assert regenerate.pixels_sha256(pixels) == vector["image_sha256"]
