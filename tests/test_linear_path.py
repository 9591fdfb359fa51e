"""The linear (block Haar) path beside the transforms: its start, and every model taking it."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from lccodec.models import build_model, model_by_name
from lccodec.models.hyperprior import HyperpriorModel

SMALL = {"N": 16, "M": 24}


def test_linear_path_starts_as_a_block_linear_codec():
    from lccodec.layers import haar_lowpass_basis

    basis = haar_lowpass_basis().reshape(192, -1).double()
    assert torch.allclose(basis @ basis.T, torch.eye(192, dtype=torch.float64), atol=1e-6)
    torch.manual_seed(0)
    model = HyperpriorModel(N=64, M=192, linear_path=True).eval()
    assert model.config["linear_path"] is True and "g_a_linear.weight" in model.state_dict()
    yy, xx = np.mgrid[0:64, 0:64] / 64.0
    x = torch.from_numpy(np.stack([xx, yy, xx * yy])).float()[None]
    with torch.no_grad():
        x_hat = model.synthesis(torch.round(model.analysis(x)))
    assert float((x_hat - x).square().mean()) < 1e-3  # a smooth image survives rounding
    assert "linear_path" not in HyperpriorModel(**SMALL).config  # old weights files stay loadable


@pytest.mark.parametrize("name", ["hyperprior", "context", "reference", "hierarchical", "coarse2fine"])
def test_every_model_takes_the_linear_path(name):
    torch.manual_seed(0)
    model = build_model(model_by_name(name), {**SMALL, "linear_path": True})
    assert model.config["linear_path"] is True
    assert {"g_a_linear.weight", "g_s_linear.weight"} <= set(model.state_dict())
    x = torch.rand(1, 3, model.stride, model.stride)
    out = model(x, torch.tensor([3.0]))
    out["x_hat"].float().square().mean().backward()
    assert model.g_a_linear.weight.grad is not None and model.g_s_linear.weight.grad is not None
