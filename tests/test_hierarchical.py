"""The hierarchical (HC) model: layer flags, every announced subset decodes, exactness, refusals."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import lccodec
from lccodec import container
from lccodec.coding import EscapeWriter
from lccodec.container import LAYER_Y2, LAYER_Y3, LAYER_Y4, LAYER_Z, STREAM_ESCAPE, STREAM_Y2, STREAM_Y3, Header, Stream
from lccodec.errors import FormatError
from lccodec.imageio import load_image
from lccodec.latents.hierarchical import layers_for_quality

from conftest import photo_like, latents_at_1_and_2_threads, warm_started_by_train_init

BASE = LAYER_Z | LAYER_Y4
SUBSETS = [BASE, BASE | LAYER_Y3, BASE | LAYER_Y2, BASE | LAYER_Y3 | LAYER_Y2]


@pytest.fixture(scope="module")
def hc():
    return lccodec.open_model("hierarchical", "cpu")


@pytest.fixture(scope="module")
def image():
    return photo_like(70, 90, seed=4)


def _encode(codec, image, quality: float, flags: int) -> tuple[bytes, np.ndarray]:
    """Encode with forced layer flags; returns the file and the encoder's reconstruction."""
    raster = load_image(image)
    with torch.inference_mode():
        _, analysis = codec._prepare(raster)
        escapes = EscapeWriter()
        streams, flags, x_hat = codec.model.compress(analysis, quality, escapes, True, layers=flags)
    streams.append(Stream(STREAM_ESCAPE, escapes.getvalue(), escapes.count))
    header = Header(codec.spec.model_id, codec.weights_id, round(quality * 256), raster.width,
                    raster.height, raster.mode, flags)
    return container.pack(header, streams), codec._to_pixels(x_hat, raster.height, raster.width, 3)


def _latents(codec, data: bytes, flags: int | None = None) -> dict:
    inputs = codec.latent_inputs(data)
    flags = inputs.header.layer_flags if flags is None else flags
    return codec.model.decode_latents(inputs.streams, inputs.padded_hw, inputs.escapes, flags)


def _repack(data: bytes, flags: int | None = None, drop: int | None = None, change=None) -> bytes:
    header, streams = container.unpack(data)
    if flags is not None:
        header = Header(**{**header.__dict__, "layer_flags": flags})
    streams = [change(s) if change else s for s in streams if s.kind != drop]
    return container.pack(header, streams)


def test_transmission_rule():
    assert layers_for_quality(1.0) == BASE
    assert layers_for_quality(3.99) == BASE
    assert layers_for_quality(4.0) == BASE | LAYER_Y3
    assert layers_for_quality(8.0) == BASE | LAYER_Y3 | LAYER_Y2


@pytest.mark.parametrize("quality", [2.0, 7.0])
def test_round_trip_and_flags_in_header(hc, image, quality):
    enc = hc.encode(image, quality)
    assert np.array_equal(hc.decode(enc.data), enc.reconstruction)
    info = container.describe(*container.unpack(enc.data))
    expected = ["z", "y4"] + (["y3", "y2"] if quality >= 6 else [])
    assert info["model"] == "hierarchical" and sorted(info["layers"]) == sorted(expected)
    kinds = {s["kind"] for s in info["streams"]}
    assert (STREAM_Y3 in kinds) == (quality >= 4) and (STREAM_Y2 in kinds) == (quality >= 6)


@pytest.mark.parametrize("flags", SUBSETS)
def test_every_announced_subset_decodes(hc, image, flags):
    data, recon = _encode(hc, image, 5.0, flags)
    assert container.unpack(data)[0].layer_flags == flags
    assert np.array_equal(hc.decode(data), recon)
    lat = _latents(hc, data)
    if not flags & LAYER_Y3:
        assert not lat["r3"].any()  # absent layer: its predicted mean stands in


def test_more_layers_cost_more_bits(hc, image):
    sizes = [len(_encode(hc, image, 6.0, f)[0]) for f in (BASE, BASE | LAYER_Y3 | LAYER_Y2)]
    assert sizes[0] < sizes[1]


def test_latents_identical_across_thread_counts(hc, image):
    data, _ = _encode(hc, image, 7.0, SUBSETS[-1])
    one, two = latents_at_1_and_2_threads(lambda: _latents(hc, data))


def test_refuses_bad_flags_and_streams(hc, image):
    data, _ = _encode(hc, image, 7.0, SUBSETS[-1])
    with pytest.raises(FormatError, match="layer flags"):
        _latents(hc, data, flags=BASE | LAYER_Y3 | (1 << 9))
    with pytest.raises(FormatError, match="layer flags"):
        _latents(hc, data, flags=LAYER_Z | LAYER_Y3)  # y4 is required
    with pytest.raises(FormatError, match="not announce"):
        _latents(hc, data, flags=BASE | LAYER_Y3)  # a y2 stream the flags do not announce
    with pytest.raises(FormatError, match="missing"):
        _latents(hc, _repack(data, drop=STREAM_Y3))  # flags announce y3, stream gone


def test_symbol_counts_checked_before_decoding(hc, image):
    data, _ = _encode(hc, image, 7.0, SUBSETS[-1])
    huge = _repack(data, change=lambda s: Stream(s.kind, s.data, 1 << 31) if s.kind == STREAM_Y2 else s)
    with pytest.raises(FormatError, match="symbol count"):
        hc.decode(huge)
    odd = _repack(data, change=lambda s: Stream(s.kind, s.data[:-1], s.symbols) if s.kind == STREAM_Y3 else s)
    with pytest.raises(FormatError):
        hc.decode(odd)


def test_train_init_runs_the_hierarchical_warm_start(tmp_path):
    """The warm start the model card describes: same-shaped tensors, h_s pruned to K channels."""
    model, hyper, lines = warm_started_by_train_init(tmp_path, "hierarchical", {"N": 16, "M": 24, "K": 8, "K3": 8, "K2": 8})
    assert "HierarchicalModel.warm_start" in lines[0] and "fresh: c2, c3, c3_head, gain2, gain3, head2" in lines[0]
    fp16 = lambda t: t.detach().half().float()  # noqa: E731  (weights files hold fp16)
    for name in ("g_a.0.weight", "g_s.6.weight", "h_a.0.weight", "h_s.0.weight", "z_density.biases.0"):
        assert torch.equal(model.state_dict()[name], fp16(hyper.state_dict()[name])), name
    w3 = fp16(hyper.h_s[4].weight)
    keep = torch.argsort(w3.flatten(2).norm(dim=2).norm(dim=0), descending=True)[:8]
    assert torch.equal(model.h_s[2].weight, fp16(hyper.h_s[2].weight)[:, keep])
    assert torch.equal(model.h_s[4].weight, w3[:, keep])
    assert float(model.inject3.weight.abs().max()) == 0.0  # starts as the hyperprior's synthesis
