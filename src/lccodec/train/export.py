"""Export: a trained model (or checkpoint) -> the fp16 weights file the codec ships.

The float model is rebuilt fresh from its state, rounded to fp16 (what ships), its integer
entropy tables are built from the rounded weights, and weights_io writes parameters, tables and
a manifest (data, steps, device-minutes, λ ladder, crop, git commit, date) atomically, with the
file's identity (``weights_sha256`` and the ``weights_id`` derived from it; see weights_io).
"""
from __future__ import annotations

import datetime
import subprocess
from pathlib import Path

import torch
from torch import nn

from ..errors import LicError
from .checkpoint import load_checkpoint, read_index


def git_commit(cwd: str | Path | None = None) -> str:
    """`git rev-parse HEAD` of the source tree, or 'unknown'."""
    cwd = cwd or Path(__file__).resolve().parent
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=10
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return out.stdout.strip() if out.returncode == 0 and out.stdout.strip() else "unknown"


def _fresh_fp16_copy(model: nn.Module) -> nn.Module:
    """A new instance of the model's class and config holding its weights rounded to fp16."""
    from ..models import build_model, model_by_name

    fresh = build_model(model_by_name(model.name), model.config)
    state = {
        k: v.detach().cpu().to(torch.float16).to(torch.float32) if v.is_floating_point() else v.detach().cpu()
        for k, v in model.state_dict().items()
    }
    fresh.load_state_dict(state)
    return fresh.eval()


def make_manifest(index_or_meta: dict, extra: dict | None = None) -> dict:
    """The manifest recorded in the weights file, from a checkpoint index (or the same keys)."""
    cfg = index_or_meta.get("train_config", {})
    manifest = {
        "data": index_or_meta.get("data", {}),
        "steps": int(index_or_meta.get("step", 0)),
        "planned_steps": index_or_meta.get("planned_steps"),
        "device": ", ".join(index_or_meta.get("devices", [])) or "unknown",
        "device_minutes": round(float(index_or_meta.get("device_seconds", 0.0)) / 60.0, 2),
        "crop": cfg.get("crop"),
        "batch": cfg.get("batch"),
        "lr": cfg.get("lr"),
        "seed": cfg.get("seed"),
        **{k: cfg[k] for k in ("init", "freeze") if cfg.get(k)},
        "git_commit": git_commit(),
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    manifest.update(extra or {})
    return manifest


def export_model(model: nn.Module, path: str | Path, manifest: dict) -> dict:
    """Write `model` as a weights file at `path`; returns the manifest with weights_id and
    weights_sha256 added."""
    from ..weights_io import save_weights

    path = Path(path)
    if not path.parent.is_dir():
        raise LicError(f"cannot write '{path}': no such directory '{path.parent}'")
    fresh = _fresh_fp16_copy(model)
    tables = fresh.build_tables()
    manifest = {**manifest, "lambdas": list(fresh.lambdas)}
    identity = save_weights(path, fresh, tables, manifest)
    return {**manifest, "weights_id": identity.hex, "weights_sha256": identity.sha256}


def export_checkpoint(folder: str | Path, path: str | Path, extra: dict | None = None) -> dict:
    """Export the model of the checkpoint in `folder` to the weights file `path`."""
    from ..models import build_model, model_by_name

    index = read_index(folder)
    model = build_model(model_by_name(index["model"]), index["model_config"])
    index = load_checkpoint(folder, model)
    return export_model(model, path, make_manifest(index, extra))
