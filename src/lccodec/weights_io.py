"""Reading and writing weights files: safetensors, fp16 parameters, integer tables, metadata.

A weights file holds a model's parameters (fp16), its integer entropy tables (int32/int64,
prefixed ``tables.``) and string metadata: ``model``, ``model_id``, ``config`` (JSON), a training
``manifest`` (JSON) and two identity fields. No pickle is involved.

Identity. ``weights_sha256`` is the SHA-256 of the file's content (:func:`weights_sha256`: every
metadata field but the two identity fields, then every tensor's name, dtype, shape and bytes);
``weights_id`` — what a .lic header records (4 bytes) — is its first 4 bytes, big-endian (the
first 8 hex digits). Older (``legacy``) files have no ``weights_sha256``: their ``weights_id`` is
the CRC32 of the tensors only (:func:`tensors_crc32`) and stays their id, so the .lic files made
with them keep decoding. Loading verifies whichever the file has, and a
legacy file that lic released (:mod:`lccodec.released_weights`) against its recorded SHA-256 too.

Shared parts. A file may leave tensors out and name, in its metadata field ``shared``, the part
file beside it that holds them (``transforms-<id>.safetensors``: the transforms several models use
unchanged, stored once; :mod:`lccodec.weights_parts` writes them). Reading such a file reads both;
the part is verified by its own SHA-256, and the identity is that of the whole, as if one file
held every tensor (``shared`` is not hashed), so splitting a file keeps its weights_id.
"""
from __future__ import annotations

import hashlib
import importlib.resources
import json
import os
import re
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from safetensors import safe_open
from safetensors.numpy import save as save_numpy

from .atomic import write_bytes_atomic
from .errors import ModelError
from .released_weights import find_release

if TYPE_CHECKING:  # torch is imported where tensors are made: reading metadata needs none
    import torch

TABLE_PREFIX = "tables."
SHARED_FIELD = "shared"  # the metadata naming the part file that holds the rest of the tensors
PART_FIELD = "part"  # a part file's metadata: what it holds ("transforms")
ID_FIELDS = ("weights_id", "weights_sha256", SHARED_FIELD)  # the metadata the SHA-256 does not cover
PART_NAME = re.compile(r"transforms-[0-9a-f]{8}\.safetensors")
JSON_FIELDS = ("config", "manifest")
WEIGHTS_ENV = "LIC_WEIGHTS_DIR"  # a folder of weights files to use instead of the installed ones


def installed_weights(model: str) -> Path:
    """Where model `model`'s weights file is: $LIC_WEIGHTS_DIR if set, else the package data."""
    override = os.environ.get(WEIGHTS_ENV)
    folder = Path(override) if override else Path(str(importlib.resources.files("lccodec.weights")))
    path = folder / f"{model}.safetensors"
    if not path.is_file():
        raise ModelError(f"no weights for model '{model}' (looked for {path})")
    return path


@dataclass(frozen=True)
class WeightsIdentity:
    """Who a weights file is: the header's 4-byte id and the file's SHA-256 (hex)."""

    weights_id: int
    sha256: str
    legacy: bool  # the id is the CRC32 of the tensors (a file without a stored SHA-256)

    @property
    def hex(self) -> str:
        return f"{self.weights_id:08x}"


def weights_sha256(arrays: dict[str, np.ndarray], metadata: dict[str, str]) -> str:
    """SHA-256 (hex) of a weights file's content.

    Hashed, in order: ``lic-weights-v1\\n``; the metadata without :data:`ID_FIELDS` as JSON
    (sorted keys, ``(",", ":")`` separators, ASCII); then per tensor in name order ``\\n``, the JSON
    list ``[name, dtype, shape, nbytes]`` (numpy dtype string such as ``"<f2"``), ``\\n`` and its
    C-order bytes.
    """
    def canonical(value: object) -> bytes:
        return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()

    h = hashlib.sha256(b"lic-weights-v1\n")
    h.update(canonical({k: v for k, v in metadata.items() if k not in ID_FIELDS}))
    for name in sorted(arrays):
        a = np.ascontiguousarray(arrays[name])
        h.update(b"\n" + canonical([name, a.dtype.str, list(a.shape), a.nbytes]) + b"\n")
        h.update(a.tobytes())
    return h.hexdigest()


def tensors_crc32(arrays: dict[str, np.ndarray]) -> int:
    """The legacy weights_id: CRC32 over names, dtypes, shapes and bytes of the tensors, in name order."""
    crc = 0
    for name in sorted(arrays):
        a = np.ascontiguousarray(arrays[name])
        crc = zlib.crc32(f"{name}|{a.dtype.str}|{a.shape}".encode(), crc)
        crc = zlib.crc32(a.tobytes(), crc)
    return crc


def state_arrays(model: torch.nn.Module, tables: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The tensors of a weights file: fp16 parameters and buffers, then the integer tables."""
    import torch

    arrays = {
        name: t.detach().to("cpu", torch.float16).numpy()
        for name, t in model.state_dict().items()
        if t.is_floating_point()
    }
    arrays.update({TABLE_PREFIX + k: np.ascontiguousarray(v) for k, v in tables.items()})
    return arrays


def save_weights(
    path: str | os.PathLike, model: torch.nn.Module, tables: dict[str, np.ndarray], manifest: dict
) -> WeightsIdentity:
    """Write a weights file atomically; returns its identity."""
    arrays = state_arrays(model, tables)
    meta = {
        "model": model.name,
        "model_id": str(model.model_id),
        "config": json.dumps(model.config),
        "manifest": json.dumps(manifest, sort_keys=True),
    }
    sha = weights_sha256(arrays, meta)
    meta.update(weights_sha256=sha, weights_id=sha[:8])
    write_bytes_atomic(path, save_numpy(arrays, metadata=meta))
    return WeightsIdentity(int(sha[:8], 16), sha, legacy=False)


def _read_file(path: str | os.PathLike, tensors: bool) -> tuple[dict[str, str], dict[str, np.ndarray]]:
    """(raw string metadata, every tensor if `tensors`) of one safetensors file."""
    try:
        with safe_open(str(path), framework="numpy") as f:
            meta = dict(f.metadata() or {})
            arrays = {k: f.get_tensor(k) for k in f.keys()} if tensors else {}
    except Exception as exc:  # safetensors raises its own error types, OSError and others
        raise ModelError(f"cannot read weights '{path}': {exc}") from None
    return meta, arrays


def read_part(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """The tensors of a part file, verified by its own SHA-256."""
    raw, arrays = _read_file(path, tensors=True)
    sha = weights_sha256(arrays, raw)
    if raw.get(PART_FIELD) is None or raw.get("weights_sha256") != sha or raw.get("weights_id") != sha[:8]:
        raise ModelError(f"weights part '{path}' is corrupt or was modified (SHA-256 mismatch)")
    return arrays


def part_path(path: str | os.PathLike, name: str) -> Path:
    """Where the part `name` that the weights file `path` names is: beside it."""
    if not PART_NAME.fullmatch(name):
        raise ModelError(f"weights '{path}' name an invalid shared part {name!r}")
    return Path(path).parent / name


def stored_bytes(path: str | os.PathLike, shared: str | None) -> int:
    """The bytes a weights file takes on disk with the part it shares (its metadata's `shared`
    field, already read by the caller): what the model needs."""
    part = part_path(path, shared) if shared is not None else None
    return Path(path).stat().st_size + (part.stat().st_size if part is not None and part.is_file() else 0)


def read_weights(path: str | os.PathLike, tensors: bool) -> tuple[dict[str, str], dict[str, np.ndarray]]:
    """(raw string metadata, every tensor if `tensors`) of a weights file, with the tensors of
    the part it shares (see the module docstring)."""
    meta, arrays = _read_file(path, tensors)
    name = meta.get(SHARED_FIELD)
    if tensors and name is not None:
        part = part_path(path, name)
        if not part.is_file():
            raise ModelError(f"weights '{path}' need their shared part '{name}' beside them (not found)")
        shared = read_part(part)
        if shared.keys() & arrays.keys():
            raise ModelError(f"weights '{path}' and their part '{name}' both hold tensor "
                             f"'{sorted(shared.keys() & arrays.keys())[0]}'")
        arrays.update(shared)
    return meta, arrays


def _decoded(path: str | os.PathLike, raw: dict[str, str]) -> dict:
    """The metadata with config and manifest decoded from JSON (each must be an object)."""
    meta: dict = dict(raw)
    for key in JSON_FIELDS:
        try:
            value = json.loads(raw.get(key) or "{}")
        except json.JSONDecodeError as exc:
            raise ModelError(f"weights '{path}': metadata field '{key}' is not valid JSON ({exc})") from None
        if not isinstance(value, dict):
            raise ModelError(f"weights '{path}': metadata field '{key}' is not a JSON object")
        meta[key] = value
    return meta


def read_metadata(path: str | os.PathLike) -> dict:
    """The metadata of a weights file (config and manifest decoded from JSON); not verified."""
    return _decoded(path, read_weights(path, tensors=False)[0])


def verify(path: str | os.PathLike, raw: dict[str, str], arrays: dict[str, np.ndarray]) -> WeightsIdentity:
    """The identity of a weights file's content, checked against what the file (and, for a
    released legacy file, the release table) records; a mismatch is a ModelError naming `path`."""
    sha = weights_sha256(arrays, raw)
    stored_sha, stored_id = raw.get("weights_sha256"), raw.get("weights_id")
    if stored_sha is not None:
        if stored_sha != sha:
            raise ModelError(f"weights '{path}' are corrupt or were modified (SHA-256 mismatch)")
        if stored_id != sha[:8]:
            raise ModelError(f"weights '{path}' are corrupt: weights_id {stored_id!r} does not match their SHA-256")
        return WeightsIdentity(int(sha[:8], 16), sha, legacy=False)
    if stored_id is None:
        raise ModelError(f"weights '{path}' record no weights_id")
    if stored_id != f"{tensors_crc32(arrays):08x}":
        raise ModelError(f"weights '{path}' are corrupt (checksum mismatch)")
    release = find_release(raw.get("model"), stored_id)
    if release is not None and release.sha256 is not None and release.sha256 != sha:
        raise ModelError(f"weights '{path}' were modified: the {release.model} weights {stored_id} "
                         f"released with {release.describe()} have another SHA-256")
    return WeightsIdentity(int(stored_id, 16), sha, legacy=True)


def identify(path: str | os.PathLike) -> WeightsIdentity:
    """The verified identity of a weights file."""
    raw, arrays = read_weights(path, tensors=True)
    return verify(path, raw, arrays)


def _float_state(arrays: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
    import torch

    return {k: torch.from_numpy(v.astype(np.float32)) for k, v in arrays.items() if not k.startswith(TABLE_PREFIX)}


def weights_state(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """The parameters of a weights file as float32 tensors (identity verified, tables left out)."""
    raw, arrays = read_weights(path, tensors=True)
    verify(path, raw, arrays)
    return _float_state(arrays)


def copy_matching(
    model: torch.nn.Module, state: dict[str, torch.Tensor], overrides: dict[str, torch.Tensor] | None = None
) -> list[str]:
    """Warm-start helper: load every tensor of `state` whose name and shape `model` shares, then
    `overrides`; returns the names copied from `state`."""
    own = model.state_dict()  # load_state_dict copies without recording gradients
    copied = [k for k, v in state.items() if k in own and own[k].shape == v.shape]
    own.update({k: state[k] for k in copied})
    own.update(overrides or {})
    model.load_state_dict(own)
    return copied


def _check_fits(path: str | os.PathLike, model: torch.nn.Module, state: dict[str, torch.Tensor]) -> None:
    """Every parameter of `model` is in `state` with its shape, and nothing else is."""
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    if missing or unexpected:
        raise ModelError(f"weights '{path}' do not fit model {model.name} with their config: "
                         f"missing {missing[:3]}, unexpected {unexpected[:3]}")
    for k, v in state.items():
        if tuple(v.shape) != tuple(own[k].shape):
            raise ModelError(f"weights '{path}' do not fit model {model.name} with their config: tensor "
                             f"'{k}' has shape {tuple(v.shape)}, the model {tuple(own[k].shape)}")


def load_weights(path: str | os.PathLike, model: torch.nn.Module) -> dict:
    """Load parameters and tables into `model` after verifying the file's identity.

    Returns the metadata, with ``identity`` (a :class:`WeightsIdentity`) and ``weights_id_int``.
    """
    raw, arrays = read_weights(path, tensors=True)
    identity = verify(path, raw, arrays)
    meta = _decoded(path, raw)
    if meta.get("model") != model.name:
        raise ModelError(f"weights '{path}' are for model {meta.get('model')!r}, not {model.name}")
    state = model.adapt_state(_float_state(arrays))
    _check_fits(path, model, state)
    model.load_state_dict(state, strict=True)
    try:
        model.load_tables({k[len(TABLE_PREFIX):]: v for k, v in arrays.items() if k.startswith(TABLE_PREFIX)})
    except (KeyError, ValueError, TypeError, IndexError) as exc:
        raise ModelError(f"weights '{path}' have missing or invalid entropy tables "
                         f"({type(exc).__name__}: {exc})") from None
    meta.update(identity=identity, weights_id_int=identity.weights_id)
    return meta
