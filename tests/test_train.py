"""The training pipeline on a tiny configuration (CPU): loss, resume, checkpoints, export, CLI."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from lccodec.codec import Codec
from lccodec.models import build_model, model_by_name
from lccodec.models.registry import WEIGHTS_ENV
from lccodec.train import TrainConfig, train
from lccodec.train.checkpoint import load_checkpoint, read_index, save_checkpoint
from lccodec.train.cli import train_command
from lccodec.train.data import CropSampler, CropSpec, load_images
from lccodec.train.export import export_checkpoint, export_model, make_manifest
from lccodec.train.loop import lr_at
from lccodec.weights_io import load_weights, read_metadata

TINY = {"N": 16, "M": 24}


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    """Four small smooth-ish images (not Kodak, not the training set)."""
    folder = tmp_path_factory.mktemp("images")
    rng = np.random.default_rng(0)
    for i, (h, w) in enumerate([(96, 80), (80, 112), (128, 96), (72, 72)]):
        yy, xx = np.mgrid[0:h, 0:w]
        base = np.stack([np.sin(xx / (7 + i)), np.cos(yy / (5 + i)), np.sin((xx + yy) / 11)], -1)
        img = (127 + 100 * base + rng.normal(0, 6, (h, w, 3))).clip(0, 255).astype(np.uint8)
        Image.fromarray(img).save(folder / f"img{i}.png")
    return folder


def tiny_config(data_dir, **kw) -> TrainConfig:
    base = dict(model_config=TINY, data=str(data_dir), steps=8, batch=2, crop=64, lr=2e-3,
                warmup=2, threads=2, log_every=1, seed=3, compile=False, bf16=False,
                channels_last=False)
    base.update(kw)
    return TrainConfig(**base)


def quiet(_line: str) -> None:
    pass


def test_sampler_is_deterministic_and_in_range(data_dir):
    images = load_images(data_dir)
    assert len(images) == 4 and images[0].dtype == torch.uint8 and images[0].shape[0] == 3
    sampler = CropSampler(images, CropSpec(size=64), seed=1)
    a, b = sampler.batch(5, 3), sampler.batch(5, 3)
    assert a.shape == (3, 3, 64, 64) and torch.equal(a, b)
    assert 0.0 <= float(a.min()) and float(a.max()) <= 1.0
    assert not torch.equal(a, sampler.batch(6, 3))


def test_lr_schedule_warms_up_then_decays():
    lrs = [lr_at(s, 100, 10, 1e-3, 0.01) for s in range(100)]
    assert lrs[0] == pytest.approx(1e-4) and lrs[9] == pytest.approx(1e-3)
    assert all(x >= y for x, y in zip(lrs[10:], lrs[11:]))
    assert lrs[-1] == pytest.approx(1e-5, rel=0.05)


def test_loss_decreases(data_dir):
    result = train(tiny_config(data_dir, steps=14, qualities=[8]), log=quiet)
    losses = [h["loss"] for h in result.history]
    assert len(losses) == 14
    assert np.mean(losses[-3:]) < 0.8 * np.mean(losses[:3])
    assert result.step == 14 and result.ms_per_step > 0


def test_resume_continues_exactly(data_dir, tmp_path):
    whole = train(tiny_config(data_dir, steps=6), log=quiet).model.state_dict()
    ckpt = tmp_path / "ckpt"
    first = train(tiny_config(data_dir, steps=6, stop_at=3, checkpoint=str(ckpt)), log=quiet)
    assert first.step == 3 and read_index(ckpt)["step"] == 3
    second = train(tiny_config(data_dir, steps=6, resume=str(ckpt), checkpoint=str(ckpt)), log=quiet)
    assert second.step == 6
    resumed = second.model.state_dict()
    for name, value in whole.items():
        assert torch.equal(value, resumed[name]), name
    assert read_index(ckpt)["device_seconds"] > 0


def test_checkpoint_parts_are_bounded_and_round_trip(tmp_path):
    model = build_model(model_by_name("hyperprior"), TINY)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    model(torch.rand(1, 3, 64, 64), torch.tensor([2.0]))["x_hat"].mean().backward()
    opt.step()
    limit = 20_000
    save_checkpoint(tmp_path, model, opt, {"step": 1, "model": "hyperprior", "model_config": TINY}, "full", limit)
    parts = sorted(tmp_path.glob("part-*.safetensors"))
    assert len(parts) > 3
    assert all(p.stat().st_size <= limit + 4096 for p in parts)  # + the safetensors header
    other = build_model(model_by_name("hyperprior"), TINY)
    opt2 = torch.optim.Adam(other.parameters(), lr=1e-3)
    index = load_checkpoint(tmp_path, other, opt2)
    assert index["optimizer_loaded"]
    for name, value in model.state_dict().items():
        assert torch.equal(value, other.state_dict()[name]), name
    state = opt2.state_dict()["state"][0]
    assert torch.equal(state["exp_avg"], opt.state_dict()["state"][0]["exp_avg"])


def test_compact_checkpoint_resumes_without_optimizer(data_dir, tmp_path):
    ckpt = tmp_path / "ckpt"
    train(tiny_config(data_dir, steps=4, stop_at=2, checkpoint=str(ckpt), checkpoint_kind="compact"), log=quiet)
    index = read_index(ckpt)
    assert index["kind"] == "compact" and index["optimizer"] is None
    assert all(name.endswith(".fp16z") for name in index["parts"])
    saved = build_model(model_by_name("hyperprior"), TINY)
    load_checkpoint(ckpt, saved)
    fp32_bytes = sum(v.numel() * 4 for v in saved.state_dict().values())
    assert sum((ckpt / n).stat().st_size for n in index["parts"]) < 0.5 * fp32_bytes
    lines: list[str] = []
    result = train(tiny_config(data_dir, steps=4, resume=str(ckpt)), log=lines.append)
    assert result.step == 4 and any("compact checkpoint" in line for line in lines)


def test_export_loads_and_round_trip_is_exact(data_dir, tmp_path, monkeypatch):
    ckpt = tmp_path / "ckpt"
    train(tiny_config(data_dir, steps=3, checkpoint=str(ckpt)), log=quiet)
    path = tmp_path / "hyperprior.safetensors"
    manifest = export_checkpoint(ckpt, path)
    meta = read_metadata(path)
    assert meta["manifest"]["steps"] == 3 and meta["manifest"]["lambdas"] == list(meta["config"]["lambdas"])
    for key in ("data", "device", "device_minutes", "crop", "git_commit", "date"):
        assert key in meta["manifest"]
    assert meta["manifest"]["data"]["images"] == 4
    assert meta["weights_id"] == manifest["weights_id"]
    model = build_model(model_by_name(meta["model"]), meta["config"])
    assert load_weights(path, model)["weights_id"] == manifest["weights_id"]

    # the real codec, reading the exported file as its shipped weights
    monkeypatch.setenv(WEIGHTS_ENV, str(tmp_path))
    codec = Codec(model_by_name("hyperprior"), "cpu")
    assert codec.model.config["N"] == 16
    pixels = np.asarray(Image.open(data_dir / "img2.png").convert("RGB"))[:100, :70]
    encoded = codec.encode(pixels, quality=3.5)
    assert np.array_equal(codec.decode(encoded.data), encoded.reconstruction)


def test_export_of_a_trained_model_matches_checkpoint_export(data_dir, tmp_path):
    result = train(tiny_config(data_dir, steps=2), log=quiet)
    path = tmp_path / "w.safetensors"
    manifest = export_model(result.model, path, make_manifest(result.meta))
    assert manifest["steps"] == 2 and path.stat().st_size > 0


def test_cli_trains_exports_and_reports_errors(data_dir, tmp_path):
    runner = CliRunner()
    out = tmp_path / "cli.safetensors"
    res = runner.invoke(train_command, [
        "--data", str(data_dir), "--config", "N=16", "--config", "M=24", "--steps", "2",
        "--batch", "1", "--crop", "64", "--threads", "2", "--export", str(out), "--no-compile",
    ])
    assert res.exit_code == 0, res.output
    assert out.is_file() and "exported" in res.output
    res = runner.invoke(train_command, ["--data", str(tmp_path / "nope"), "--steps", "1"])
    assert res.exit_code == 1
    assert "lic: error: training data folder" in res.output and "Traceback" not in res.output
    res = runner.invoke(train_command, ["--export-only", "--resume", str(tmp_path / "none"), "--export", str(out)])
    assert res.exit_code == 1 and "lic: error: no checkpoint" in res.output


def test_minutes_alone_plan_the_run_from_the_measured_speed(data_dir, tmp_path):
    lines: list[str] = []
    result = train(tiny_config(data_dir, steps=None, minutes=0.04, checkpoint=str(tmp_path)), log=lines.append)
    index = read_index(tmp_path)
    assert index["plan_seconds"] == pytest.approx(2.4) and index["step"] == result.step >= 1
    assert index["device_seconds"] == pytest.approx(result.device_seconds, rel=0.05)


def test_mixed_precision_keeps_entropy_arithmetic_in_fp32():
    from lccodec.train.loop import enable_mixed_precision

    model = build_model(model_by_name("hyperprior"), TINY)
    keys = list(model.state_dict())
    enable_mixed_precision(model, "cpu")
    out = model(torch.rand(1, 3, 64, 64), torch.tensor([5.0]))
    assert out["x_hat"].dtype == torch.bfloat16  # the synthesis ends in bf16: its output is the image
    assert all(v.dtype == torch.float32 for v in out["likelihoods"].values())
    assert model.analyze(torch.rand(1, 3, 64, 64)).dtype == torch.float32  # g_a ends in fp32
    assert list(model.state_dict()) == keys


def test_compact_checkpoint_restores_every_tensor(tmp_path):
    from lccodec.models.hyperprior import HyperpriorModel
    from lccodec.train.checkpoint import load_checkpoint, save_checkpoint

    torch.manual_seed(3)
    model, fresh = HyperpriorModel(N=16, M=24), HyperpriorModel(N=16, M=24)
    save_checkpoint(tmp_path, model, None, {"step": 0}, kind="compact")
    load_checkpoint(tmp_path, fresh)
    for name, t in model.state_dict().items():
        assert torch.equal(t.half().float(), fresh.state_dict()[name]), name


def test_fast_path_defaults_on_cpu():
    from lccodec.train.loop import fast_path_defaults

    fast = fast_path_defaults(torch.device("cpu"))
    assert set(fast) == {"bf16", "channels_last", "compile"} and fast["channels_last"] is True


def test_constant_schedule_cools_down_and_keeps_the_undecayed_checkpoint(data_dir, tmp_path):
    ckpt = tmp_path / "ckpt"
    lines: list[str] = []
    result = train(tiny_config(data_dir, steps=None, stop_at=8, schedule="constant", cooldown_steps=3,
                               warmup=2, checkpoint=str(ckpt)), log=lines.append)
    lrs = [h["lr"] for h in result.history]
    assert result.step == 8 and read_index(ckpt)["step"] == 5  # the state before the cool-down
    assert lrs[1:5] == [pytest.approx(2e-3)] * 4  # warm-up of 2 steps, then constant
    assert lrs[5] > lrs[6] > lrs[7] and lrs[7] < 2e-3 * 0.5
    assert any(line.startswith("cool-down: 3 steps from step 5") for line in lines)


def test_stop_file_starts_the_cool_down(data_dir, tmp_path):
    stop = tmp_path / "STOP"
    stop.touch()
    result = train(tiny_config(data_dir, steps=None, schedule="constant", cooldown_steps=2,
                               stop_file=str(stop)), log=quiet)
    assert result.step == 2


def test_continue_from_weights_keeps_steps_minutes_and_config(data_dir, tmp_path):
    first = train(tiny_config(data_dir, steps=3, model_config={**TINY, "linear_path": True}), log=quiet)
    path = tmp_path / "w.safetensors"
    export_model(first.model, path, make_manifest(first.meta))
    lines: list[str] = []
    second = train(tiny_config(data_dir, steps=None, stop_at=5, schedule="constant", cooldown_steps=0,
                               model_config={}, continue_from=str(path)), log=lines.append)
    assert second.step == 5 and second.model.config.get("linear_path") is True
    assert second.device_seconds > first.device_seconds * 0.99 - 1.0
    assert any("continuing" in line and "at step 3" in line for line in lines)
    assert second.history[0]["lr"] < 2e-3 * 0.05  # Adam re-warms


def test_checkpoint_files_are_written_atomically(tmp_path, monkeypatch):
    """Unique temp names (a leftover or a second writer's `.tmp` is no obstacle) and fsync."""
    import os

    from lccodec.models.hyperprior import HyperpriorModel

    model = HyperpriorModel(N=16, M=24)
    (tmp_path / "checkpoint.json.tmp").mkdir()  # what a fixed temp name would collide with
    synced = []
    real = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (synced.append(fd), real(fd)))
    save_checkpoint(tmp_path, model, None, {"step": 7})
    index = read_index(tmp_path)
    assert len(synced) == len(index["parts"]) + 1  # every part and the index
    load_checkpoint(tmp_path, HyperpriorModel(N=16, M=24))
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp file left
    assert (tmp_path / "checkpoint.json.tmp").is_dir()  # someone else's, left alone


def test_train_errors_go_through_the_lic_error_line(tmp_path, capsys):
    """`lic train` raises LicError like every command, so --debug shows where it came from."""
    from conftest import run_cli

    code, _, err = run_cli(["train", "--data", str(tmp_path / "nope"), "--steps", "1", "--debug"], capsys)
    assert code == 1 and "Traceback" in err
    assert err.strip().splitlines()[-1] == f"lic: error: training data folder '{tmp_path / 'nope'}' does not exist"


def test_a_log_window_of_skipped_steps_does_not_end_the_run(data_dir, monkeypatch):
    """A spike the guard skips can fill a whole log window (log_every=1): the run goes on."""
    from lccodec.train import loop

    calls = {"n": 0}
    accept = loop.SpikeGuard.accept

    def reject_third(self, quality, loss):
        calls["n"] += 1
        if calls["n"] == 3:
            self.skipped += 1
            self.in_a_row += 1
            return False
        return accept(self, quality, loss)

    monkeypatch.setattr(loop.SpikeGuard, "accept", reject_third)
    result = train(tiny_config(data_dir, steps=6), log=quiet)
    assert result.step == 6 and [h["step"] for h in result.history] == [1, 2, 4, 5, 6]
    assert result.history[-1]["skipped"] == 1


@pytest.mark.parametrize("model", ["hyperprior", "context", "reference", "coarse2fine"])
def test_heads_only_trains_the_entropy_model_alone_without_synthesis(data_dir, monkeypatch, model):
    """--heads-only: the transforms and gains stay as they were, the entropy model learns,
    the synthesis never runs and the loss is the rate."""
    from lccodec.models.base import HyperpriorBase

    def no_synthesis(self, y):
        raise AssertionError("heads-only training ran the synthesis")

    monkeypatch.setattr(HyperpriorBase, "synthesis", no_synthesis)
    torch.manual_seed(3)  # tiny_config's seed: the run's initial weights
    before = build_model(model_by_name(model), TINY).state_dict()
    crop = 128 if model == "coarse2fine" else 64  # its stride is 128
    result = train(tiny_config(data_dir, model=model, steps=4, heads_only=True, crop=crop), log=quiet)
    after = result.model.state_dict()
    transforms = result.model.transform_modules
    moved = {n.split(".")[0] for n in after if not torch.equal(before[n], after[n])}
    assert moved and not moved & set(transforms), moved
    assert "h_s" in moved and "z_density" in moved
    h = result.history[-1]
    assert np.isnan(h["psnr"]) and np.isfinite(h["loss"])
    if model != "reference":  # the reference model's rate also weighs its auxiliary predictions
        assert h["loss"] == pytest.approx(h["bpp"], rel=1e-5)


def test_heads_only_is_refused_where_the_analysis_has_heads_of_its_own(data_dir, capsys):
    from lccodec.errors import LicError

    with pytest.raises(LicError, match="hierarchical cannot train its entropy model alone"):
        train(tiny_config(data_dir, model="hierarchical", steps=1, heads_only=True), log=quiet)
    result = CliRunner().invoke(train_command, ["--data", str(data_dir), "--model", "hierarchical",
                                                "--heads-only", "--steps", "1", "--no-compile"])
    assert result.exit_code != 0


def test_the_analysis_cache_holds_whole_image_analyses_and_crops_them(data_dir):
    from lccodec.train.analysis_cache import AnalysisCache

    torch.manual_seed(0)
    model = build_model(model_by_name("hyperprior"), TINY).eval()
    images = load_images(data_dir)
    cache = AnalysisCache.build(model.analyze, images, 64, seed=1)
    h, w = (s // 16 * 16 for s in images[0].shape[1:])
    x = images[0][:, :h, :w].unsqueeze(0).float() / 255.0
    assert torch.allclose(cache.latents[0].float(), model.analyze(x)[0], atol=0.05)  # bf16
    assert torch.allclose(cache.latents[1].float(), model.analyze(x.flip(3))[0], atol=0.05)  # mirrored
    plain = AnalysisCache.build(model.analyze, images, 64, seed=1, views=1)
    assert len(cache.latents) == 2 * len(plain.latents)
    four = AnalysisCache.build(model.analyze, images, 64, seed=1, views=4)
    assert len(four.latents) == 4 * len(plain.latents)
    assert torch.allclose(four.latents[2].float(), model.analyze(x.flip(2))[0], atol=0.05)  # upside down
    a, b = cache.batch(7, 3, 4), cache.batch(7, 3, 4)
    assert a.shape == (3, TINY["M"], 4, 4) and a.dtype == torch.float32 and torch.equal(a, b)
    assert not torch.equal(a, cache.batch(8, 3, 4))


@pytest.mark.parametrize("model", ["context", "reference"])  # coarse2fine's 128² crops exceed the test images
def test_heads_only_trains_on_the_analysis_cache(data_dir, monkeypatch, model):
    from lccodec.errors import LicError
    from lccodec.models.base import HyperpriorBase

    def no_transform(self, x):
        raise AssertionError("a cached step ran a transform")

    with pytest.raises(LicError, match="--cache-analysis goes with --heads-only"):
        train(tiny_config(data_dir, model="context", steps=1, cache_analysis=True), log=quiet)
    lines: list[str] = []
    original = HyperpriorBase.analysis
    calls = {"n": 0}

    def counted(self, x):
        calls["n"] += 1
        return original(self, x)

    monkeypatch.setattr(HyperpriorBase, "analysis", counted)
    monkeypatch.setattr(HyperpriorBase, "synthesis", no_transform)
    result = train(tiny_config(data_dir, model=model, steps=10, heads_only=True, cache_analysis=True),
                   log=lines.append)
    assert result.step == 10 and any(line.startswith("analysis cache:") for line in lines)
    assert 0 < calls["n"] <= 16  # 4 images at 2 scales, mirrored, at most; none per step
    assert np.isfinite(result.history[-1]["loss"])


def test_checkpoint_of_the_older_context_layout_resumes_at_its_taps(tmp_path):
    """A context checkpoint from before the taps layout (full masked 5×5 kernel) loads its
    parameters at the taps and leaves Adam to start again (its moments have the old shapes)."""
    from torch import nn

    from lccodec.exact.wavefront import HALF, KERNEL, causal_mask
    from lccodec.latents.context import taps_of_full_kernel

    torch.manual_seed(4)
    old = build_model(model_by_name("context"), TINY)
    m = TINY["M"]
    full = nn.Conv2d(m, 2 * m, KERNEL, padding=HALF)
    with torch.no_grad():
        full.weight.mul_(causal_mask())
    old.context_prediction = full  # the older layout's parameter
    opt = torch.optim.Adam(old.parameters(), lr=1e-3)
    save_checkpoint(tmp_path, old, opt, {"step": 3, "model": "context", "model_config": TINY}, "full")
    new = build_model(model_by_name("context"), TINY)
    index = load_checkpoint(tmp_path, new, torch.optim.Adam(new.parameters(), lr=1e-3))
    assert not index["optimizer_loaded"]
    assert torch.equal(new.context_prediction.weight, taps_of_full_kernel(full.weight.detach()))
    assert torch.equal(new.context_prediction.bias, full.bias.detach())


@pytest.mark.parametrize("model", ["context", "reference"])
def test_rounded_context_input_feeds_the_decoders_latents(model):
    """--context-input rounded: the context sees round(y − μ) + μ (μ from a noisy first pass),
    gradients still reach y, and the coded rate stays the noisy y's."""
    torch.manual_seed(0)
    net = build_model(model_by_name(model), TINY)
    codec = net.latent_codec
    seen: list[torch.Tensor] = []
    conv = codec.nets.context_prediction if model == "reference" else codec.context_prediction
    conv.register_forward_hook(lambda _m, args, _out: seen.append(args[0].detach()))
    y = (torch.randn(2, TINY["M"], 8, 8) * 3).requires_grad_()
    codec.likelihoods(y)
    assert len(seen) == 1 and not torch.equal(seen[0], torch.round(seen[0]))  # noise: one pass
    codec.context_input = "rounded"
    seen.clear()
    out = codec.likelihoods(y)
    assert len(seen) == 2  # the noisy pass for μ, then the pass on ŷ
    assert (seen[1] - y.detach()).abs().max() <= 0.5 and not torch.equal(seen[1], seen[0])
    mean = torch.randn_like(y) * 2
    y_hat = codec.context_view(y, y + 0.3, lambda v: mean)
    assert torch.allclose(y_hat, torch.round(y - mean) + mean)
    out.likelihoods["y"].log().sum().backward()
    assert y.grad is not None and float(y.grad.abs().sum()) > 0


def test_rounded_rate_is_the_coders_rate():
    """rate_likelihood "rounded": p(round(y − μ) | 0, σ), the probability the coder gives the
    symbol it writes, with μ learning straight-through; "noise" is p(y + u | μ, σ)."""
    from lccodec.entropy_models import gaussian_likelihood
    from lccodec.latents.base import rate_likelihood

    torch.manual_seed(0)
    y = torch.randn(1, 4, 6, 6) * 3
    mean = (torch.randn_like(y) * 2).requires_grad_()
    scale = torch.rand_like(y) + 0.2
    lik = rate_likelihood(y, mean, scale, "rounded")
    assert torch.allclose(lik, gaussian_likelihood(torch.round(y - mean.detach()), torch.zeros_like(y), scale))
    lik.log().sum().backward()
    assert mean.grad is not None and float(mean.grad.abs().sum()) > 0
    noisy = y + 0.25
    assert torch.equal(rate_likelihood(y, mean, scale, "noise", noisy), gaussian_likelihood(noisy, mean, scale))


@pytest.mark.parametrize("model", ["hyperprior", "context", "reference", "coarse2fine"])
def test_rounded_rate_input_trains_on_the_coded_residual(model):
    """--rate-input rounded: y's training likelihood is that of the rounded residual (the coded
    rate), for every model with a Gaussian y; gradients reach the entropy model."""
    torch.manual_seed(0)
    net = build_model(model_by_name(model), TINY)
    codec = net.latent_codec
    y = torch.randn(2, TINY["M"], 8, 8) * 3
    codec.rate_input = "rounded"
    out = codec.likelihoods(y, torch.ones(2))
    lik = out.likelihoods["y"]
    assert lik.shape == y.shape and bool(((lik > 0) & (lik <= 1)).all())
    if model in ("hyperprior", "coarse2fine"):  # μ and σ come from the rounded ẑ: no noise left in y's rate
        assert torch.equal(codec.likelihoods(y, torch.ones(2)).likelihoods["y"], lik)
    lik.log().sum().backward()
    assert any(p.grad is not None and float(p.grad.abs().sum()) > 0 for p in net.parameters())


@pytest.mark.parametrize("option, refused, reason", [
    ("context_input", "hyperprior", "has no context"),
    ("rate_input", "hierarchical", "has no rounded rate"),
])
def test_rounded_switches_are_refused_where_a_model_lacks_them(data_dir, option, refused, reason):
    from lccodec.errors import LicError

    with pytest.raises(LicError, match=f"{refused} {reason}"):
        train(tiny_config(data_dir, model=refused, steps=1, **{option: "rounded"}), log=quiet)
    result = train(tiny_config(data_dir, model="context", steps=2, heads_only=True, **{option: "rounded"}),
                   log=quiet)
    assert getattr(result.model.latent_codec, option) == "rounded" and np.isfinite(result.history[-1]["loss"])


def test_init_also_fills_only_what_the_warm_start_left_fresh(tmp_path):
    """--init-also: HC at another h_s width takes h_s from the hyperprior (--init) and its own
    layers from an HC file; nothing the hyperprior holds is taken from the HC file."""
    from lccodec.models.hierarchical import HierarchicalModel
    from lccodec.train.loop import copy_also, warm_start
    from lccodec.weights_io import save_weights

    torch.manual_seed(0)
    hyper = build_model(model_by_name("hyperprior"), TINY)
    save_weights(tmp_path / "h.safetensors", hyper, hyper.build_tables(), {"steps": 1})
    torch.manual_seed(1)
    old = HierarchicalModel(**TINY, K=8)
    save_weights(tmp_path / "hc.safetensors", old, old.build_tables(), {"steps": 2})
    torch.manual_seed(2)
    new = HierarchicalModel(**TINY, K=36)  # h_s at the hyperprior's width (3M/2)
    warm_start(new, str(tmp_path / "h.safetensors"))
    note = copy_also(new, str(tmp_path / "hc.safetensors"), str(tmp_path / "h.safetensors"))
    assert "c3" in note and "head3" in note and "h_s" not in note and "h_a" not in note
    ours, theirs, base = new.state_dict(), old.state_dict(), hyper.state_dict()
    assert torch.equal(ours["c3.0.weight"], theirs["c3.0.weight"].half().float())  # files hold fp16
    for name in ("h_s.0.weight", "h_a.0.weight", "g_a.0.weight"):
        assert torch.equal(ours[name], base[name].half().float()), name


def test_a_run_ends_with_its_transform_ceiling_and_real_files_on_held_in_images(data_dir):
    """Issue 28: every run logs the unrounded round trip at the top gain and real-file points."""
    from lccodec.train.evaluation import EVAL_QUALITIES

    lines: list[str] = []
    result = train(tiny_config(data_dir, steps=3), log=lines.append)
    (last,) = result.evaluations
    assert last["step"] == 3 and np.isfinite(last["ceiling_db"])
    assert sorted(last["points"]) == sorted(EVAL_QUALITIES)
    assert all(b > 0 and np.isfinite(p) for b, p in last["points"].values())
    assert lines[-1].startswith("eval  ceiling ") and "real files q2 " in lines[-1]


def test_a_failed_evaluation_is_logged_and_does_not_end_the_run(data_dir, monkeypatch):
    from lccodec.train import evaluation

    def broken(*_args, **_kwargs):
        raise RuntimeError("no disk")

    monkeypatch.setattr(evaluation, "real_file_points", broken)
    lines: list[str] = []
    result = train(tiny_config(data_dir, steps=3), log=lines.append)
    assert result.step == 3 and result.evaluations == []
    assert lines[-1] == "eval failed: RuntimeError: no disk"


def test_the_ceiling_is_exact_where_the_round_trip_is_the_identity():
    """The ceiling measures the round trip's pixels against the image's own (8-bit rounding)."""
    from lccodec.train.evaluation import ceiling_psnr

    class Identity(torch.nn.Module):
        lambdas, stride, name = (1.0, 2.0), 64, "identity"

        def __init__(self):
            super().__init__()
            self.p = torch.nn.Parameter(torch.zeros(1))

        def analysis(self, x):
            return x

        synthesis = analysis

        def apply_gain(self, y, q):
            return y * 3.0

        def inverse_gain(self, y, q):
            return y / 3.0

    pixels = np.random.default_rng(1).integers(0, 256, (70, 90, 3), dtype=np.uint8)
    assert ceiling_psnr(Identity(), pixels) == float("inf")
