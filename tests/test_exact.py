"""Bit-exactness of everything that decides a probability, under perturbed settings."""
from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from torch import nn

from lccodec.exact import ACT_BITS, ExactNet

from conftest import photo_like, latents_at_1_and_2_threads


def _latents(codec, data: bytes) -> dict[str, torch.Tensor]:
    inputs = codec.latent_inputs(data)
    return codec.model.decode_latents(inputs.streams, inputs.padded_hw, inputs.escapes)


@pytest.fixture(scope="module")
def encoded(codec):
    return codec.encode(photo_like(96, 130, seed=11), 5.0)


def _assert_same(a: dict, b: dict) -> None:
    for key in a:
        assert torch.equal(a[key], b[key]), key


def test_latents_identical_across_thread_counts(codec, encoded):
    one, two = latents_at_1_and_2_threads(lambda: _latents(codec, encoded.data))


def test_exact_net_independent_of_memory_layout_and_backend(codec):
    net = codec.model.latent_codec.hyper.exact_h_s
    z = torch.randint(-6, 7, (1, 128, 3, 5), generator=torch.Generator().manual_seed(1))
    ref = net(z)
    assert torch.equal(ref, net(z.to(memory_format=torch.channels_last)))
    with torch.backends.mkldnn.flags(enabled=False):
        assert torch.equal(ref, net(z))
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        assert torch.equal(ref, net(z))
    finally:
        torch.set_num_threads(before)


def test_exact_net_matches_float_network():
    torch.manual_seed(0)
    net = nn.Sequential(nn.ConvTranspose2d(8, 12, 5, 2, 2, 1), nn.ReLU(), nn.Conv2d(12, 6, 3, 1, 1))
    z = torch.randint(-5, 6, (1, 8, 4, 4))
    exact = ExactNet(net)(z).double() / 2**ACT_BITS
    ref = net.half().double()(z.double())
    assert torch.allclose(exact, ref, atol=0.02)


def test_exact_net_agrees_with_int64_reference():
    """A float64 convolution on integers equals the same convolution done in int64."""
    torch.manual_seed(1)
    conv = nn.Conv2d(16, 4, 3, 1, 1)
    exact = ExactNet(nn.Sequential(conv))
    layer = exact.steps[0]
    x = torch.randint(-(1 << 20), 1 << 20, (1, 16, 6, 7))
    cols = torch.nn.functional.unfold(x.double(), 3, padding=1).to(torch.int64)  # exact: |x| < 2^53
    w = layer.weight.to(torch.int64).view(4, -1)
    acc = (w @ cols[0]).view(1, 4, 6, 7) + layer.bias.view(1, -1, 1, 1)
    shift = layer.acc_bits - ACT_BITS
    expected = (acc + (1 << (shift - 1))) >> shift
    assert torch.equal(exact(x), expected.clamp(-(1 << 24) + 1, (1 << 24) - 1))


def _synthesis_copy(codec, convert):
    """A converted copy of the model's synthesis (g_s and the linear path, if any)."""
    from types import MethodType, SimpleNamespace

    from lccodec.models.base import HyperpriorBase

    m = codec.model
    copy_of = SimpleNamespace(g_s=convert(copy.deepcopy(m.g_s)),
                              g_s_linear=None if m.g_s_linear is None else convert(copy.deepcopy(m.g_s_linear)))
    copy_of.synthesis = MethodType(HyperpriorBase.synthesis, copy_of)
    return copy_of


def test_synthesis_precision_does_not_touch_latents(codec, encoded):
    """Running the synthesis in float64 changes no latent, and the image by at most 1."""
    latents = _latents(codec, encoded.data)
    model = _synthesis_copy(codec, lambda m: m.double())
    y_hat = latents["residual"].double() + latents["mean"].double()
    gain = codec.model.inv_gain(torch.tensor([5.0])).double()
    with torch.no_grad():
        x64 = model.synthesis(y_hat * gain[:, :, None, None]).clamp(0, 1)
    img64 = (x64.detach()[0, :, :96, :130] * 255).round().permute(1, 2, 0).numpy().astype(np.int16)
    diff = np.abs(img64 - encoded.reconstruction.astype(np.int16))
    assert diff.max() <= 1
    _assert_same(latents, _latents(codec, encoded.data))


def test_channels_last_transforms_decode_identically(codec, encoded):
    """The decoder's transforms in channels_last give the encoder's reconstruction (±1)."""
    model = _synthesis_copy(codec, lambda m: m.to(memory_format=torch.channels_last))
    latents = _latents(codec, encoded.data)
    y_hat = (latents["residual"].float() + latents["mean"]).to(memory_format=torch.channels_last)
    gain = codec.model.inv_gain(torch.tensor([5.0]))
    with torch.no_grad():
        x = model.synthesis(y_hat * gain[:, :, None, None]).clamp(0, 1)
    img = (x[0, :, :96, :130] * 255).round().permute(1, 2, 0).numpy().astype(np.int16)
    assert np.abs(img - encoded.reconstruction.astype(np.int16)).max() <= 1


def test_decode_equals_encoder_reconstruction(codec, encoded):
    assert np.array_equal(codec.decode(encoded.data), encoded.reconstruction)


def test_reencode_is_deterministic(codec):
    img = photo_like(50, 70, seed=2)
    assert codec.encode(img, 6.0).data == codec.encode(img, 6.0).data
