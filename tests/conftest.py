"""Shared fixtures: small synthetic images, the shipped codec, the optional shared data."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

SHARED = Path(__file__).resolve().parents[2] / "shared"
KODAK = SHARED / "data" / "kodak"


def photo_like(height: int, width: int, seed: int = 0) -> np.ndarray:
    """A smooth, textured RGB test image (uint8), deterministic."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    base = np.stack(
        [
            128 + 80 * np.sin(xx / 17.0 + seed) * np.cos(yy / 23.0),
            128 + 60 * np.cos((xx + yy) / 29.0),
            110 + 70 * np.sin(yy / 11.0 - seed),
        ],
        axis=2,
    )
    noise = rng.normal(0, 6, size=(height, width, 3))
    return np.clip(base + noise, 0, 255).astype(np.uint8)


@pytest.fixture(scope="session")
def codec():
    import lccodec

    return lccodec.open_model("hyperprior", "cpu")


@pytest.fixture(scope="session")
def kodak_dir() -> Path:
    if not KODAK.is_dir():
        pytest.skip("../shared/data/kodak is absent")
    return KODAK


def small_codec(tmp_path_factory, model):
    """Yield a real Codec (CPU) over `model`'s weights saved in a weights dir of its own."""
    import pytest
    from lccodec.codec import Codec
    from lccodec.models import model_by_name
    from lccodec.weights_io import save_weights

    folder = tmp_path_factory.mktemp("weights")
    save_weights(folder / f"{model.name}.safetensors", model, model.build_tables(), {"note": "test"})
    mp = pytest.MonkeyPatch()
    mp.setenv("LIC_WEIGHTS_DIR", str(folder))
    try:
        yield Codec(model_by_name(model.name), "cpu")
    finally:
        mp.undo()


def run_cli(argv: list[str], capsys) -> tuple[int, str, str]:
    """Run `lic ARGV` in-process: (exit code, stdout, stderr)."""
    from lccodec.cli import main

    try:
        main(argv)
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    out, err = capsys.readouterr()
    return code, out, err


def latents_at_1_and_2_threads(decode_latents) -> tuple[dict, dict]:
    """Call `decode_latents()` with torch on 1 thread, then on 2; the thread count is restored."""
    import torch

    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = decode_latents()
        torch.set_num_threads(2)
        two = decode_latents()
    finally:
        torch.set_num_threads(before)
    for key in one:
        assert torch.equal(one[key], two[key]), key
    return one, two


def warm_started_by_train_init(tmp_path, name: str, config: dict):
    """(model after `lic train --init HYPERPRIOR`, that hyperprior, the log lines)."""
    import torch

    from lccodec.models.hyperprior import HyperpriorModel
    from lccodec.train.loop import TrainConfig, _setup_model
    from lccodec.weights_io import save_weights

    torch.manual_seed(3)
    hyper = HyperpriorModel(N=config["N"], M=config["M"])
    save_weights(tmp_path / "h.safetensors", hyper, hyper.build_tables(), {})
    lines: list[str] = []
    model, _, _ = _setup_model(TrainConfig(model=name, model_config=config, init=str(tmp_path / "h.safetensors")),
                               torch.device("cpu"), lines.append)
    return model, hyper, lines

