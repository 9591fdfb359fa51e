"""The global reference model: GSDN, the exact search, the training mask, exact round trips."""
from __future__ import annotations

import math
import struct

import numpy as np
import pytest
import torch

from lccodec import container
from lccodec.codec import latent_inputs
from lccodec.errors import FormatError
from lccodec.layers import GDN, GSDN
from lccodec.models import model_by_name
from lccodec.models import reference as refmodel
from lccodec.models.reference import ReferenceModel
from lccodec.exact.reference_search import (
    EMBED, MAX_WINDOW, QUERY_TAPS, ExactSearch, Window, candidate_mask, confidence, confidence_table,
    train_search,
)
from lccodec.entropy_models import scale_levels
from lccodec.exact.wavefront import wavefront_steps
from lccodec.weights_io import save_weights

from conftest import small_codec, latents_at_1_and_2_threads, photo_like

SMALL = {"N": 32, "M": 48}


@pytest.fixture(scope="module")
def codec(tmp_path_factory):
    """A small random reference model behind a real Codec, with a live reference path."""
    torch.manual_seed(0)
    model = ReferenceModel(**SMALL).eval()
    with torch.no_grad():  # make context and reference matter
        model.context_prediction.weight.mul_(4.0)
        model.transfer.weight.mul_(8.0)
        model.embed.weight.mul_(8.0)
    yield from small_codec(tmp_path_factory, model)


@pytest.fixture(scope="module")
def encoded(codec):
    return codec.encode(photo_like(100, 200, seed=7), 6.0)


# ------------------------------------------------------------------------------ GSDN
def test_gsdn_starts_as_gdn_and_follows_the_paper():
    torch.manual_seed(1)
    gdn, gsdn = GDN(6), GSDN(6)
    gsdn.load_state_dict({**gdn.state_dict(), "nu": gsdn.nu, "tau": gsdn.tau})
    x = torch.randn(2, 6, 5, 4)
    assert torch.equal(gdn(x), gsdn(x))
    with torch.no_grad():
        gsdn.nu.normal_()
        gsdn.tau.normal_(0, 0.3)
    beta = torch.nn.functional.softplus(gsdn.beta_raw) + 1e-6
    gamma = torch.nn.functional.softplus(gsdn.gamma_raw)
    u = x.permute(0, 2, 3, 1)  # (..., C)
    norm = torch.sqrt(beta + (u * u) @ gamma.T)
    mean = gsdn.nu + u @ gsdn.tau.T
    expect = ((u - mean) / norm).permute(0, 3, 1, 2)
    assert torch.allclose(gsdn(x), expect, atol=1e-5)
    inv = GSDN(6, inverse=True)
    inv.load_state_dict(gsdn.state_dict())
    assert torch.allclose(inv(x), (u * norm + mean).permute(0, 3, 1, 2), atol=1e-5)


# ----------------------------------------------------------------------- the search
def _brute_force(keys: np.ndarray, h: int, w: int, window: Window):
    """Best candidate and S8 of every position, by the documented rule, in Python integers."""
    mask = candidate_mask(h, w, window, torch.device("cpu")).numpy()
    k = [list(map(int, row)) for row in keys]
    best, s8 = [], []
    for a in range(h * w):
        na = sum(v * v for v in k[a])
        top, choice, sim = -1, -1, 0
        for b in np.flatnonzero(mask[a]):
            nb = sum(v * v for v in k[b])
            dot = sum(x * y for x, y in zip(k[a], k[b]))
            if nb == 0 or dot <= 0:
                continue
            score = (dot * dot << 20) // nb
            if score > top:  # strict: ties keep the first in raster order
                top, choice = score, int(b)
                sim = min(256, math.isqrt((dot * dot << 16) // (na * nb)))
        best.append(choice)
        s8.append(sim)
    return np.array(best), np.array(s8)


@pytest.mark.parametrize("window", [Window(MAX_WINDOW, MAX_WINDOW), Window(2, 3), Window(1, 1)])
def test_exact_search_matches_the_rule_and_the_training_mask(window):
    h, w = 7, 11
    rng = np.random.default_rng(4)
    d = len(QUERY_TAPS) * EMBED
    keys = rng.choice([-1, 0, 0, 0, 1], size=(h * w, d)).astype(np.float32)
    keys[rng.random(h * w) < 0.1] = 0  # some empty patches
    keys[20] = keys[3]  # an exact tie: the earlier one wins
    keys[40] = keys[3] * 2  # same direction, larger norm: same cosine
    expect_best, expect_s8 = _brute_force(keys, h, w, window)
    search = ExactSearch(h, w, window)
    best = np.full(h * w, -9)
    s8 = np.full(h * w, -9)
    for pos in wavefront_steps(h, w):
        best[pos], s8[pos] = search.find(pos, keys[pos])
        search.add(pos, keys[pos])
    assert np.array_equal(best, expect_best)
    assert np.array_equal(s8, expect_s8)
    assert (best >= 0).sum() > h * w // 2


def test_training_search_uses_the_decoder_mask():
    torch.manual_seed(2)
    window = Window(2, 3)
    mask = candidate_mask(5, 8, window, torch.device("cpu"))
    rows, cols = np.divmod(np.arange(40), 8)
    for a in range(40):
        for b in range(40):
            rule = 3 * rows[b] + cols[b] < 3 * rows[a] + cols[a] and rows[b] >= rows[a] - 2 and abs(cols[b] - cols[a]) <= 3
            assert bool(mask[a, b]) == rule
    e = torch.randn(2, EMBED, 5, 8, requires_grad=True)
    best, s = train_search(e, mask)
    assert bool(mask[torch.arange(40), best[0]][mask.any(1)].all())  # chosen among candidates
    assert float(s.detach()[:, 0].abs().max()) == 0.0  # the first position has no candidate
    s.sum().backward()
    assert e.grad is not None and float(e.grad.abs().sum()) > 0


def test_confidence_table_is_a_probability_of_the_deviation():
    table = confidence_table(scale_levels())
    assert table.shape == (64, 64) and table.dtype == np.int64
    assert (np.diff(table, axis=1) <= 0).all()  # further from the mean: less likely
    assert table[0, 0] > 65000  # the smallest scale puts almost all mass on the mean's bin
    rows = np.array([[256, -512]], dtype=np.int64)
    mean = np.array([[256, -512]], dtype=np.int64)
    index = np.array([[0, 0]], dtype=np.int64)
    assert confidence(rows, mean, index, table)[0] == (2 * table[0, 0] // 2) >> 8


# --------------------------------------------------------------------- round trips
def test_decode_is_exact_and_the_reference_path_is_used(codec, encoded, monkeypatch):
    hits = []
    find = ExactSearch.find

    def counting(self, pos, queries):
        best, s8 = find(self, pos, queries)
        hits.append(int(((best >= 0) & (s8 > 0)).sum()))
        return best, s8

    monkeypatch.setattr(ExactSearch, "find", counting)
    assert np.array_equal(codec.decode(encoded.data), encoded.reconstruction)
    assert sum(hits) > 10
    header, _ = container.unpack(encoded.data)
    assert header.model_id == 3 and Window.unpack(header.params) == codec.model.window


def test_a_model_without_the_hyper_residual_round_trips(tmp_path_factory):
    torch.manual_seed(1)
    model = ReferenceModel(**SMALL, hyper_residual=False).eval()
    for plain in small_codec(tmp_path_factory, model):
        assert plain.model.config["hyper_residual"] is False
        enc = plain.encode(photo_like(64, 96, seed=2), 4.0)
        assert np.array_equal(plain.decode(enc.data), enc.reconstruction)


def test_latents_identical_at_1_and_2_threads(codec, encoded):
    inputs = codec.latent_inputs(encoded.data)
    latents_at_1_and_2_threads(lambda: codec.model.decode_latents(
        inputs.streams, inputs.padded_hw, latent_inputs(*container.unpack(encoded.data), 64).escapes,
        params=inputs.header.params))


def test_a_small_window_round_trips_and_changes_the_bits(codec):
    pixels = photo_like(64, 256, seed=3)
    wide = codec.encode(pixels, 5.0)
    codec.model.window = Window(1, 2)
    try:
        narrow = codec.encode(pixels, 5.0)
    finally:
        codec.model.window = Window(*codec.model.config["window"])
    assert Window.unpack(container.unpack(narrow.data)[0].params) == Window(1, 2)
    assert narrow.data != wide.data
    assert np.array_equal(codec.decode(narrow.data), narrow.reconstruction)


def _with_params(data: bytes, params: bytes) -> bytes:
    header, streams = container.unpack(data)
    fields = {**header.__dict__, "params": params}
    return container.pack(container.Header(**fields), streams)


@pytest.mark.parametrize("params,message", [
    (b"", "params are 0 bytes"),
    (struct.pack("<HHH", 4, 4, 4), "params are 6 bytes"),
    (struct.pack("<HH", 0, 5), "window 0x5 is outside 1..128"),
    (struct.pack("<HH", 4, 129), "window 4x129 is outside 1..128"),
])
def test_bad_window_params_are_refused(codec, encoded, params, message):
    with pytest.raises(FormatError, match=message):
        codec.decode(_with_params(encoded.data, params))


def test_models_without_params_refuse_them(monkeypatch):
    import lccodec

    monkeypatch.delenv("LIC_WEIGHTS_DIR", raising=False)
    hyper = lccodec.open_model("hyperprior", "cpu")
    enc = hyper.encode(photo_like(64, 64), 2.0)
    with pytest.raises(FormatError, match="carry no model params"):
        hyper.decode(_with_params(enc.data, b"\x01\x02"))


# ------------------------------------------------------------------------ training
def test_training_pass_is_progressive_and_reaches_every_part():
    torch.manual_seed(0)
    model = ReferenceModel(**SMALL)
    out = model(torch.rand(2, 3, 128, 128), torch.tensor([2.0, 7.0]))
    assert set(out["likelihoods"]) == {"y", "z"} and set(out["aux_likelihoods"]) == {"y_ctx", "y_ref"}
    assert out["rate_weights"] == {"y": 0.4, "y_ctx": 0.3, "y_ref": 0.3}
    from lccodec.train.loop import rd_loss

    loss, bpp, _ = rd_loss(out, torch.rand(2, 3, 128, 128), torch.tensor([0.01, 0.1]))
    loss.backward()
    for name in ("g_a.1.tau", "g_s.1.nu", "embed.weight", "transfer.weight", "params_ref.0.weight",
                 "params_ctx.0.weight", "params_full.0.weight", "context_prediction.weight"):
        grad = dict(model.named_parameters())[name].grad
        assert grad is not None and float(grad.abs().sum()) > 0, name
    model.set_progress(0.7)
    assert model.rate_weights == (0.1, 0.1, 0.8)


def test_warm_start_codes_like_the_hyperprior(monkeypatch):
    import lccodec

    monkeypatch.delenv("LIC_WEIGHTS_DIR", raising=False)
    from lccodec.models.registry import weights_path

    model = ReferenceModel()
    refmodel.init_from_hyperprior(model, weights_path(model_by_name("hyperprior")))
    hyper = lccodec.open_model("hyperprior", "cpu").model
    z = torch.randint(-3, 4, (1, 128, 2, 3))
    m_h, _ = hyper.latent_codec.entropy_params(z)
    y = torch.randn(1, 192, 8, 12) * 3
    from lccodec.coding import EscapeWriter
    from lccodec.exact.wavefront import encode_wavefront

    latents = model.latent_codec
    _, _, _, mean_int = encode_wavefront(y, latents.hyper.exact_h_s(z), latents.predictor(), latents.y.tables,
                                         EscapeWriter())
    assert torch.equal(mean_int.float() / 256, m_h)


def test_a_warm_start_from_a_context_model_codes_exactly_like_it(tmp_path):
    """Without the hyper residual, params_full takes the context model's entropy parameters
    (zero weights on the reference features): the same bytes, means and scale indices."""
    from lccodec.coding import EscapeWriter
    from lccodec.errors import ModelError
    from lccodec.exact.wavefront import encode_wavefront
    from lccodec.models.context import ContextModel, init_from_hyperprior
    from lccodec.models.hyperprior import HyperpriorModel
    from lccodec.weights_io import load_weights

    torch.manual_seed(0)
    hyper = HyperpriorModel(**SMALL)
    save_weights(tmp_path / "h.safetensors", hyper, hyper.build_tables(), {})
    context = init_from_hyperprior(ContextModel(**SMALL), tmp_path / "h.safetensors")
    with torch.no_grad():  # a context model whose context matters
        for p in context.entropy_parameters.parameters():
            p.add_(torch.randn_like(p) * 0.05)
        context.context_prediction.weight.mul_(4.0)
    save_weights(tmp_path / "c.safetensors", context, context.build_tables(), {})
    load_weights(tmp_path / "c.safetensors", context)  # the fp16 numbers the reference model gets
    model = ReferenceModel(**SMALL, hyper_residual=False)
    model.warm_start(tmp_path / "c.safetensors")
    assert model.config["hyper_residual"] is False and "hyper_residual" not in ReferenceModel(**SMALL).config
    z, y = torch.randint(-3, 4, (1, 32, 2, 3)), torch.randn(1, 48, 8, 12) * 3
    coded = [encode_wavefront(y, m.latent_codec.hyper.exact_h_s(z), m.latent_codec.predictor(),
                              m.latent_codec.y.tables, EscapeWriter()) for m in (context, model)]
    assert coded[0][:2] == coded[1][:2] and all(torch.equal(a, b) for a, b in zip(coded[0][2:], coded[1][2:]))
    torch.manual_seed(5)
    theirs = context.latent_codec.likelihoods(y).likelihoods["y"]
    torch.manual_seed(5)
    ours = model.latent_codec.likelihoods(y).likelihoods["y"]
    assert torch.allclose(theirs, ours, atol=1e-3)
    with pytest.raises(ModelError, match="not a context model"):
        ReferenceModel(**SMALL, hyper_residual=False).warm_start(tmp_path / "h.safetensors")


def test_train_setup_warm_starts_and_freezes(tmp_path):
    from lccodec.errors import LicError
    from lccodec.models.hyperprior import HyperpriorModel
    from lccodec.train.loop import TrainConfig, _setup_model

    torch.manual_seed(3)
    hyper = HyperpriorModel(**SMALL)
    save_weights(tmp_path / "h.safetensors", hyper, hyper.build_tables(), {})
    config = TrainConfig(model="reference", model_config=dict(SMALL), init=str(tmp_path / "h.safetensors"),
                         freeze=["g_a", "z_density"])
    model, optimizer, _ = _setup_model(config, torch.device("cpu"), lambda line: None)
    assert torch.equal(model.g_s[0].weight, hyper.g_s[0].weight.half().float())
    assert float(model.params_full[-1].weight.detach().abs().max()) == 0.0
    frozen = {n for n, p in model.named_parameters() if not p.requires_grad}
    assert frozen and all(n.startswith(("g_a", "z_density")) for n in frozen)
    trained = {id(p) for g in optimizer.param_groups for p in g["params"]}
    assert not any(id(p) in trained for n, p in model.named_parameters() if n in frozen)
    with pytest.raises(LicError, match="matches no parameter"):
        _setup_model(TrainConfig(model="reference", model_config=dict(SMALL), freeze=["nothing"]),
                     torch.device("cpu"), lambda line: None)


def test_info_names_the_window(encoded):
    info = container.describe(*container.unpack(encoded.data))
    assert info["model"] == "reference" and info["params"] == "20004000"
    assert (info["search_window_rows"], info["search_window_cols"]) == (32, 64)


def test_hyperprior_with_gsdn_for_the_ablation():
    from lccodec.models.hyperprior import HyperpriorModel

    plain, with_gsdn = HyperpriorModel(**SMALL), HyperpriorModel(**SMALL, gsdn=True)
    assert "gsdn" not in plain.config and with_gsdn.config["gsdn"] is True
    assert isinstance(with_gsdn.g_a[1], GSDN) and isinstance(with_gsdn.g_s[1], GSDN)
    assert type(plain.g_a[1]) is GDN
    assert "gsdn" not in ReferenceModel(**SMALL).config


def test_the_ablation_benchmark_switches_the_reference_path_off(monkeypatch):
    """benchmarks/reference_ablation.py patches names that exist: zero reference features in
    training, no candidate in the exact search."""
    import importlib.util
    from pathlib import Path

    from lccodec.latents.reference import ReferenceLatentCodec

    for cls, name in ((ReferenceLatentCodec, "reference_features"), (ExactSearch, "find")):
        monkeypatch.setattr(cls, name, getattr(cls, name))  # undone after the test
    path = Path(__file__).resolve().parents[1] / "benchmarks" / "reference_ablation.py"
    spec = importlib.util.spec_from_file_location("reference_ablation", path)
    ablation = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(ablation)
    ablation.switch_reference_off()
    torch.manual_seed(0)
    model = ReferenceModel(**SMALL)
    y = torch.randn(1, SMALL["M"], 6, 6)
    assert not model.latent_codec.reference_features(y, torch.rand_like(y)).any()
    best, s8 = ExactSearch(4, 4, Window(2, 2)).find(np.array([5]), np.ones((1, len(QUERY_TAPS) * EMBED), np.float32))
    assert best.tolist() == [-1] and s8.tolist() == [0]
