"""The context model: wavefront order, causal mask, exact wavefront decoding, round trips."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from lccodec import container
from lccodec.codec import latent_inputs
from lccodec.coding import EscapeReader
from lccodec.container import STREAM_ESCAPE, STREAM_Y, Stream
from lccodec.errors import FormatError
from lccodec.exact.wavefront import TAPS, causal_mask, wavefront_steps
from lccodec.latents.context import context_convolution, taps_of_full_kernel
from lccodec.models.context import ContextModel

from conftest import small_codec, photo_like, latents_at_1_and_2_threads

SMALL = {"N": 32, "M": 48}


@pytest.fixture(scope="module")
def codec(tmp_path_factory):
    """A small, randomly initialised context model behind a real Codec (own weights dir)."""
    torch.manual_seed(0)
    model = ContextModel(**SMALL).eval()
    with torch.no_grad():  # make the context matter: larger random context weights
        model.context_prediction.weight.mul_(4.0)
    yield from small_codec(tmp_path_factory, model)


@pytest.fixture(scope="module")
def encoded(codec):
    return codec.encode(photo_like(100, 140, seed=5), 6.0)


def _streams(data: bytes) -> tuple[dict[int, Stream], tuple[int, int]]:
    inputs = latent_inputs(*container.unpack(data), 64)
    return inputs.streams, inputs.padded_hw


def _latents(codec, data: bytes) -> dict[str, torch.Tensor]:
    by_kind, padded = _streams(data)
    return codec.model.decode_latents(by_kind, padded, EscapeReader(by_kind[STREAM_ESCAPE].data))


@pytest.mark.parametrize("h,w", [(1, 1), (1, 6), (5, 1), (3, 7), (6, 4), (8, 12)])
def test_wavefront_order_covers_every_position_once(h, w):
    steps = wavefront_steps(h, w)
    assert len(steps) == 3 * h + w - 3
    assert np.array_equal(np.sort(np.concatenate(steps)), np.arange(h * w))
    for t, pos in enumerate(steps):
        rows, cols = np.divmod(pos, w)
        assert (3 * rows + cols == t).all()
        assert (np.diff(rows) > 0).all()


def test_mask_is_causal_in_wavefront_order():
    mask = causal_mask()
    assert int(mask.sum()) == len(TAPS) == 12 and mask[2, 2] == 0
    assert all(3 * dr + dc < 0 for dr, dc in TAPS)  # every neighbour is in an earlier step
    rows, cols = np.nonzero(mask.numpy())
    assert set(zip(rows - 2, cols - 2)) == set(TAPS)
    # The float masked conv: changing latents of step >= t leaves the output at step t unchanged.
    torch.manual_seed(3)
    conv = context_convolution(4)
    assert torch.equal(conv.full_weight()[:, :, mask == 0], torch.zeros(8, 4, 13))
    x = torch.randn(1, 4, 6, 9)
    i, j = 3, 4
    later = torch.zeros(6, 9, dtype=torch.bool)
    for r in range(6):
        for c in range(9):
            later[r, c] = 3 * r + c >= 3 * i + j
    y = x + torch.randn_like(x) * later
    with torch.no_grad():
        assert torch.allclose(conv(x)[..., i, j], conv(y)[..., i, j], atol=1e-6)


def test_wavefront_decoder_equals_one_shot_entropy_parameters(codec, encoded):
    lat = _latents(codec, encoded.data)
    mean_int = (lat["mean"] * 256).to(torch.int64)
    assert torch.equal(mean_int.double() / 256, lat["mean"].double())
    y_int = (lat["residual"] << 8) + mean_int
    latent_codec = codec.model.latent_codec
    hyper = latent_codec.hyper.exact_h_s(lat["z_hat"])
    full_mean, full_scale = latent_codec.predictor().full(y_int, hyper)
    assert torch.equal(full_mean, mean_int)
    bounds = latent_codec.y.tables.bounds
    index = np.minimum(
        np.searchsorted(bounds, full_scale.numpy().ravel(), side="left"),
        len(bounds) - 1,
    )
    assert np.array_equal(index, lat["index"].numpy().ravel())
    assert len(np.unique(index)) > 1  # the test exercises several tables


def test_round_trip_equals_encoder_reconstruction(codec, encoded):
    assert np.array_equal(codec.decode(encoded.data), encoded.reconstruction)
    gray = codec.encode(photo_like(70, 65, seed=1)[..., :1], 2.5)
    assert np.array_equal(codec.decode(gray.data), gray.reconstruction)


def test_latents_identical_across_threads_and_layouts(codec, encoded):
    one, two = latents_at_1_and_2_threads(lambda: _latents(codec, encoded.data))
    y_int = (one["residual"] << 8) + (one["mean"] * 256).to(torch.int64)
    hyper = codec.model.latent_codec.hyper.exact_h_s(one["z_hat"].to(memory_format=torch.channels_last))
    cl = codec.model.latent_codec.predictor().full(
        y_int.to(memory_format=torch.channels_last), hyper.to(memory_format=torch.channels_last)
    )
    assert torch.equal(cl[0], (one["mean"] * 256).to(torch.int64))


def test_reencode_is_deterministic(codec):
    img = photo_like(64, 64, seed=9)
    assert codec.encode(img, 3.0).data == codec.encode(img, 3.0).data


@pytest.mark.parametrize(
    "mutate",
    [
        lambda d: d + b"\x01\x00\x00\x00",  # a word too many
        lambda d: d[:-1],  # not whole words
    ],
)
def test_corrupt_y_stream_raises_format_error(codec, encoded, mutate):
    """Streams with words left over or broken words are refused (file-level damage is the CRC's)."""
    by_kind, padded = _streams(encoded.data)
    y = by_kind[STREAM_Y]
    by_kind[STREAM_Y] = Stream(STREAM_Y, mutate(y.data), y.symbols)
    with pytest.raises(FormatError):
        codec.model.decode_latents(by_kind, padded, EscapeReader(by_kind[STREAM_ESCAPE].data))


def test_wrong_symbol_count_and_missing_stream_raise(codec, encoded):
    by_kind, padded = _streams(encoded.data)
    y = by_kind[STREAM_Y]
    bad = {**by_kind, STREAM_Y: Stream(STREAM_Y, y.data, y.symbols + 1)}
    with pytest.raises(FormatError, match="symbol count"):
        codec.model.decode_latents(bad, padded, EscapeReader(b""))
    del by_kind[STREAM_Y]
    with pytest.raises(FormatError, match="missing"):
        codec.model.decode_latents(by_kind, padded, EscapeReader(b""))


def test_training_forward_reaches_the_context():
    torch.manual_seed(1)
    model = ContextModel(**SMALL)
    out = model(torch.rand(2, 3, 64, 64), torch.tensor([1.0, 4.0]))
    assert out["x_hat"].shape == (2, 3, 64, 64) and set(out["likelihoods"]) == {"y", "z"}
    rate = -sum(torch.log2(p).sum() for p in out["likelihoods"].values())
    rate.backward()
    grad = model.context_prediction.weight.grad
    assert grad.shape[2] == len(TAPS) and grad.abs().sum() > 0  # only the causal taps are parameters


def test_weights_of_the_older_layout_load_at_their_taps():
    """Context files written before the taps layout store the full masked 5×5 kernel; they load
    with the same numbers at the taps (the test vectors, decoded bit-exactly elsewhere, are such
    a file), and a file written now stores the 12 taps alone."""
    from pathlib import Path

    from safetensors.numpy import load_file

    from lccodec.weights_io import load_weights, read_metadata

    path = Path(__file__).resolve().parent / "vectors" / "weights" / "context.safetensors"
    stored = torch.from_numpy(load_file(str(path))["context_prediction.weight"].astype(np.float32))
    assert stored.shape[2:] == (5, 5)
    model = ContextModel(**read_metadata(path)["config"])
    load_weights(path, model)
    assert torch.equal(model.context_prediction.weight, taps_of_full_kernel(stored))
    assert torch.equal(model.context_prediction.full_weight(), stored * causal_mask())
    m = model.config["M"]
    assert model.state_dict()["context_prediction.weight"].shape == (2 * m, m, len(TAPS))
