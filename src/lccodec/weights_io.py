"""Reading and writing weights files: safetensors, fp16 parameters, integer tables, metadata.

A weights file holds a model's parameters (fp16), its integer entropy tables (int32/int64,
prefixed ``tables.``) and JSON metadata: model name and id, config, a training manifest, and
``weights_id`` — a CRC32 of the tensors that the container records, so a file is only ever
decoded with the exact weights that made it. No pickle is involved.
"""
from __future__ import annotations

import json
import os
import zlib

import numpy as np
import torch
from safetensors import safe_open
from safetensors.numpy import save as save_numpy

from .atomic import write_bytes_atomic
from .errors import ModelError

TABLE_PREFIX = "tables."


def tensors_id(arrays: dict[str, np.ndarray]) -> int:
    """CRC32 over names, dtypes, shapes and bytes of the tensors, in name order."""
    crc = 0
    for name in sorted(arrays):
        a = np.ascontiguousarray(arrays[name])
        crc = zlib.crc32(f"{name}|{a.dtype.str}|{a.shape}".encode(), crc)
        crc = zlib.crc32(a.tobytes(), crc)
    return crc


def state_arrays(model: torch.nn.Module, tables: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The tensors of a weights file: fp16 parameters and buffers, then the integer tables."""
    arrays = {
        name: t.detach().to("cpu", torch.float16).numpy()
        for name, t in model.state_dict().items()
        if t.is_floating_point()
    }
    arrays.update({TABLE_PREFIX + k: np.ascontiguousarray(v) for k, v in tables.items()})
    return arrays


def save_weights(
    path: str | os.PathLike, model: torch.nn.Module, tables: dict[str, np.ndarray], manifest: dict
) -> int:
    """Write a weights file atomically; returns its weights_id."""
    arrays = state_arrays(model, tables)
    wid = tensors_id(arrays)
    meta = {
        "model": model.name,
        "model_id": str(model.model_id),
        "config": json.dumps(model.config),
        "weights_id": f"{wid:08x}",
        "manifest": json.dumps(manifest, sort_keys=True),
    }
    write_bytes_atomic(path, save_numpy(arrays, metadata=meta))
    return wid


def read_metadata(path: str | os.PathLike) -> dict:
    """The metadata of a weights file (config and manifest decoded from JSON)."""
    try:
        with safe_open(str(path), framework="numpy") as f:
            meta = dict(f.metadata() or {})
    except Exception as exc:
        raise ModelError(f"cannot read weights '{path}': {exc}") from None
    for key in ("config", "manifest"):
        meta[key] = json.loads(meta.get(key) or "{}")
    return meta


def _read_verified(path: str | os.PathLike) -> tuple[dict, dict[str, np.ndarray], int]:
    """(metadata, every tensor, weights_id) of a weights file whose checksum matches."""
    meta = read_metadata(path)
    try:
        with safe_open(str(path), framework="numpy") as f:
            arrays = {k: f.get_tensor(k) for k in f.keys()}
    except Exception as exc:
        raise ModelError(f"cannot read weights '{path}': {exc}") from None
    wid = tensors_id(arrays)
    if f"{wid:08x}" != meta.get("weights_id"):
        raise ModelError(f"weights '{path}' are corrupt (checksum mismatch)")
    return meta, arrays, wid


def _float_state(arrays: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
    return {k: torch.from_numpy(v.astype(np.float32)) for k, v in arrays.items() if not k.startswith(TABLE_PREFIX)}


def weights_state(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """The parameters of a weights file as float32 tensors (checksum verified, tables left out)."""
    return _float_state(_read_verified(path)[1])


@torch.no_grad()
def copy_matching(
    model: torch.nn.Module, state: dict[str, torch.Tensor], overrides: dict[str, torch.Tensor] | None = None
) -> list[str]:
    """Warm-start helper: load every tensor of `state` whose name and shape `model` shares, then
    `overrides`; returns the names copied from `state`."""
    own = model.state_dict()
    copied = [k for k, v in state.items() if k in own and own[k].shape == v.shape]
    own.update({k: state[k] for k in copied})
    own.update(overrides or {})
    model.load_state_dict(own)
    return copied


def load_weights(path: str | os.PathLike, model: torch.nn.Module) -> dict:
    """Load parameters into `model` and its tables; verify the weights_id. Returns metadata."""
    meta, arrays, wid = _read_verified(path)
    tables = {k[len(TABLE_PREFIX):]: v for k, v in arrays.items() if k.startswith(TABLE_PREFIX)}
    state = _float_state(arrays)
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise ModelError(f"weights '{path}' do not fit model {model.name}: missing {missing[:3]}, unexpected {unexpected[:3]}")
    model.load_tables(tables)
    meta["weights_id_int"] = wid
    return meta
