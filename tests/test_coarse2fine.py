"""The coarse-to-fine hyperprior: two hyper layers in the flags, exactness, refusals."""
from __future__ import annotations

import numpy as np
import pytest

import lccodec
from lccodec import container
from lccodec.container import LAYER_Y, LAYER_Z, LAYER_Z2, STREAM_Y, STREAM_Z, STREAM_Z2, Stream
from lccodec.errors import FormatError

from conftest import photo_like, latents_at_1_and_2_threads, warm_started_by_train_init


@pytest.fixture(scope="module")
def c2f():
    return lccodec.open_model("coarse2fine", "cpu")


@pytest.fixture(scope="module")
def encoded(c2f):
    return c2f.encode(photo_like(70, 150, seed=5), 5.0)


def _latents(codec, data: bytes, flags: int | None = None) -> dict:
    inputs = codec.latent_inputs(data)
    flags = inputs.header.layer_flags if flags is None else flags
    return codec.model.decode_latents(inputs.streams, inputs.padded_hw, inputs.escapes, flags)


def _repack(data: bytes, drop: int | None = None, change=None) -> bytes:
    header, streams = container.unpack(data)
    return container.pack(header, [change(s) if change else s for s in streams if s.kind != drop])


def test_round_trip(c2f, encoded):
    assert np.array_equal(c2f.decode(encoded.data), encoded.reconstruction)
    small = c2f.encode(photo_like(33, 20, seed=1), 1.5)
    assert np.array_equal(c2f.decode(small.data), small.reconstruction)


def test_flags_and_streams_show_two_hyper_layers(encoded):
    header, streams = container.unpack(encoded.data)
    assert header.layer_flags == LAYER_Z2 | LAYER_Z | LAYER_Y
    info = container.describe(header, streams)
    assert sorted(info["layers"]) == ["y", "z", "z2"]
    assert {STREAM_Z2, STREAM_Z, STREAM_Y} <= {s["kind"] for s in info["streams"]}
    # padded to 128: z2 holds N2 · 1 · 2 symbols for a 70 × 150 image
    z2 = next(s for s in streams if s.kind == STREAM_Z2)
    assert z2.symbols == 64 * 1 * 2


def test_latents_identical_across_thread_counts(c2f, encoded):
    one, two = latents_at_1_and_2_threads(lambda: _latents(c2f, encoded.data))


def test_refuses_other_flags(c2f, encoded):
    for flags in (LAYER_Z | LAYER_Y, LAYER_Z2 | LAYER_Z | LAYER_Y | (1 << 7)):
        with pytest.raises(FormatError, match="layer flags"):
            _latents(c2f, encoded.data, flags)


def test_missing_or_miscounted_streams_raise(c2f, encoded):
    with pytest.raises(FormatError, match="missing"):
        c2f.decode(_repack(encoded.data, drop=STREAM_Z2))
    huge = _repack(encoded.data, change=lambda s: Stream(s.kind, s.data, 1 << 31) if s.kind == STREAM_Z else s)
    with pytest.raises(FormatError, match="symbol count"):
        c2f.decode(huge)
    odd = _repack(encoded.data, change=lambda s: Stream(s.kind, s.data[:-2], s.symbols) if s.kind == STREAM_Y else s)
    with pytest.raises(FormatError):
        c2f.decode(odd)


def test_deterministic(c2f):
    img = photo_like(40, 60, seed=9)
    assert c2f.encode(img, 6.0).data == c2f.encode(img, 6.0).data


def test_train_init_runs_the_coarse2fine_warm_start(tmp_path):
    import torch

    model, hyper, lines = warm_started_by_train_init(tmp_path, "coarse2fine", {"N": 16, "M": 24, "K": 8, "N2": 8, "A": 8})
    assert "Coarse2FineModel.warm_start" in lines[0] and "fresh: agg1, agg2, h_a2, h_s2, z_density" in lines[0]
    fp16 = lambda t: t.detach().half().float()  # noqa: E731
    for name in ("g_a.0.weight", "g_s.6.weight", "h_a.0.weight", "h_s.0.weight", "gain.log_gain"):
        assert torch.equal(model.state_dict()[name], fp16(hyper.state_dict()[name])), name
    assert model.h_s[2].weight.shape[1] == 8 and model.z_density.channels == 8  # pruned; z2 its own
    assert float(model.agg1[2].weight.detach().abs().max()) == 0.0


def test_warm_start_at_full_width_keeps_the_hyperprior_h_s(tmp_path):
    """K = 3M/2 (the round-4 recipe's K=288): h_s is the hyperprior's, its hidden channels reordered."""
    import torch

    model, hyper, _ = warm_started_by_train_init(tmp_path, "coarse2fine", {"N": 16, "M": 24, "K": 36, "N2": 8, "A": 8})
    hyper.h_s.load_state_dict({k: v.half().float() for k, v in hyper.h_s.state_dict().items()})  # as stored
    z = torch.randn(1, 16, 3, 4)
    with torch.no_grad():
        assert torch.allclose(model.h_s(z), hyper.h_s(z), atol=1e-5)
