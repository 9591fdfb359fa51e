"""Training checkpoints: a folder of safetensors parts, each at most 15 MiB, and a JSON index.

Layout of a checkpoint folder::

    checkpoint.json          step, plan, config, the list of parts (written last, atomically)
    part-<step>-000.safetensors, part-<step>-001.safetensors, ...   (full)
    part-<step>-000.fp16z, ...                                       (compact)

Two kinds:

* ``full``: fp32 model state and the Adam state: resuming continues bit for bit.
* ``compact``: the model state in fp16 only (no optimizer), its bytes regrouped by significance
  (byte shuffle) and deflated: about 40 % of the fp32 model, small enough to travel to an
  accelerator together with the training set. Resuming re-warms Adam.

Tensors larger than a part are split into flat pieces. No pickle is involved. Every file is
written atomically (temp file, fsync, rename: :mod:`lccodec.atomic`).
"""
from __future__ import annotations

import json
import zlib
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from ..atomic import atomic_path, write_bytes_atomic, write_text_atomic
from ..errors import LicError

INDEX = "checkpoint.json"
FORMAT = "lccodec-train-checkpoint/1"
PART_LIMIT = 15 * 1024 * 1024  # bytes of tensor data per part file
KINDS = ("full", "compact")


def _flat_pieces(name: str, t: torch.Tensor, limit: int) -> list[tuple[str, torch.Tensor]]:
    t = t.detach().contiguous().cpu()
    if t.numel() * t.element_size() <= limit:
        return [(name, t)]
    flat = t.reshape(-1)
    per = max(1, limit // t.element_size())
    return [(f"{name}#{k}", flat[s : s + per].clone()) for k, s in enumerate(range(0, flat.numel(), per))]


def _pack(tensors: dict[str, torch.Tensor], limit: int) -> list[dict[str, torch.Tensor]]:
    """Greedy packing of the tensors (split where needed) into parts of <= limit bytes."""
    parts: list[dict[str, torch.Tensor]] = [{}]
    used = 0
    for name, t in tensors.items():
        for piece_name, piece in _flat_pieces(name, t, limit):
            size = piece.numel() * piece.element_size()
            if used + size > limit and parts[-1]:
                parts.append({})
                used = 0
            parts[-1][piece_name] = piece
            used += size
    return parts


def _unpack(flat: dict[str, torch.Tensor], shapes: dict[str, list[int]]) -> dict[str, torch.Tensor]:
    out: dict[str, torch.Tensor] = {}
    for name, shape in shapes.items():
        if name in flat:
            out[name] = flat[name]
            continue
        pieces, k = [], 0
        while f"{name}#{k}" in flat:
            pieces.append(flat[f"{name}#{k}"])
            k += 1
        if not pieces:
            raise LicError(f"checkpoint is incomplete: tensor '{name}' is missing")
        out[name] = torch.cat(pieces).view(shape)
    return out


def _compact_blob(tensors: dict[str, torch.Tensor]) -> bytes:
    """fp16 tensors, in name order, -> one deflated buffer: all high bytes, then all low bytes."""
    flat = np.concatenate([tensors[k].numpy().reshape(-1) for k in sorted(tensors)]).astype(np.float16)
    pairs = flat.view(np.uint8).reshape(-1, 2)
    return zlib.compress(pairs[:, 1].tobytes() + pairs[:, 0].tobytes(), 9)


def _from_compact_blob(blob: bytes, shapes: dict[str, list[int]]) -> dict[str, torch.Tensor]:
    raw = np.frombuffer(zlib.decompress(blob), dtype=np.uint8)
    n = raw.size // 2
    pairs = np.empty((n, 2), dtype=np.uint8)
    pairs[:, 1], pairs[:, 0] = raw[:n], raw[n:]
    flat = pairs.reshape(-1).view(np.float16)
    out, pos = {}, 0
    for name, shape in sorted(shapes.items()):  # the index is stored with sorted keys
        count = int(np.prod(shape)) if shape else 1
        out[name] = torch.from_numpy(flat[pos : pos + count].astype(np.float32)).view(shape)
        pos += count
    if pos != flat.size:
        raise LicError("checkpoint is corrupt: compact model size does not match its index")
    return out


def _optimizer_tensors(optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict]:
    """Adam's per-parameter state as named tensors, plus the JSON-able rest of its state dict."""
    sd = optimizer.state_dict()
    tensors = {}
    for pid, state in sd["state"].items():
        for key, value in state.items():
            tensors[f"optim.{pid}.{key}"] = torch.as_tensor(value)
    return tensors, {"param_groups": sd["param_groups"]}


def save_checkpoint(
    folder: str | Path,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer | None,
    meta: dict,
    kind: str = "full",
    part_limit: int = PART_LIMIT,
) -> Path:
    """Write a checkpoint into `folder` (created if needed); returns the index path.

    The parts are written first under step-tagged names, then the index replaces the old one in
    a single os.replace, then parts that the new index does not name are removed: a run killed at
    any moment leaves a loadable checkpoint.
    """
    if kind not in KINDS:
        raise LicError(f"unknown checkpoint kind '{kind}' (use {' or '.join(KINDS)})")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    state = {f"model.{k}": v.detach().cpu() for k, v in model.state_dict().items()}
    tag = f"{int(meta.get('step', 0)):08d}"
    names: list[str] = []
    optim_meta = None
    compact_shapes = None
    if kind == "compact":
        floats = {k: v.to(torch.float16) for k, v in state.items() if v.is_floating_point()}
        tensors = {k: v for k, v in state.items() if not v.is_floating_point()}
        compact_shapes = {k: list(v.shape) for k, v in floats.items()}
        blob = _compact_blob(floats)
        for i, start in enumerate(range(0, len(blob), part_limit)):
            names.append(f"part-{tag}-{i:03d}.fp16z")
            write_bytes_atomic(folder / names[-1], blob[start : start + part_limit])
    else:
        tensors = {k: v.float() if v.is_floating_point() else v for k, v in state.items()}
        if optimizer is not None:
            opt_tensors, optim_meta = _optimizer_tensors(optimizer)
            tensors.update(opt_tensors)
    for part in _pack(tensors, part_limit) if tensors else []:
        names.append(f"part-{tag}-{len(names):03d}.safetensors")
        with atomic_path(folder / names[-1]) as tmp:
            save_file(part, str(tmp))
    index = {
        "format": FORMAT,
        "kind": kind,
        "parts": names,
        "shapes": {k: list(v.shape) for k, v in tensors.items()},
        "compact_shapes": compact_shapes,
        "optimizer": optim_meta,
        **meta,
    }
    write_text_atomic(folder / INDEX, json.dumps(index, indent=1, sort_keys=True))
    for stale in folder.glob("part-*"):
        if stale.name not in names:
            stale.unlink()
    return folder / INDEX


def read_index(folder: str | Path) -> dict:
    """The JSON index of the checkpoint in `folder`."""
    path = Path(folder) / INDEX
    try:
        index = json.loads(path.read_text())
    except FileNotFoundError:
        raise LicError(f"no checkpoint in '{folder}' (missing {INDEX})") from None
    except (OSError, ValueError) as exc:
        raise LicError(f"cannot read checkpoint '{path}': {exc}") from None
    if index.get("format") != FORMAT:
        raise LicError(f"'{path}' is not a lic training checkpoint")
    return index


def load_checkpoint(
    folder: str | Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer | None = None
) -> dict:
    """Load model (and, for a full checkpoint, optimizer) state; returns the index.

    Returns index["optimizer_loaded"] telling whether Adam's state was restored (not for a
    checkpoint of an older parameter layout, which the model's ``adapt_state`` converts).
    """
    folder = Path(folder)
    index = read_index(folder)
    flat: dict[str, torch.Tensor] = {}
    blob = bytearray()
    for name in index["parts"]:
        try:
            if name.endswith(".fp16z"):
                blob += (folder / name).read_bytes()
            else:
                flat.update(load_file(str(folder / name)))
        except Exception as exc:
            raise LicError(f"cannot read checkpoint part '{folder / name}': {exc}") from None
    tensors = _unpack(flat, index["shapes"])
    if index.get("compact_shapes"):
        try:
            tensors.update(_from_compact_blob(bytes(blob), index["compact_shapes"]))
        except zlib.error as exc:
            raise LicError(f"checkpoint '{folder}' is corrupt: {exc}") from None
    stored = {k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")}
    state = getattr(model, "adapt_state", lambda s: s)(stored)
    relaid = any(state[k] is not v for k, v in stored.items() if k in state)  # Adam's state: old layout
    ref = model.state_dict()
    wrong = [k for k, v in state.items() if k in ref and v.shape != ref[k].shape]
    if wrong:
        raise LicError(f"checkpoint '{folder}' does not fit the model: tensor '{wrong[0]}' has shape "
                       f"{tuple(state[wrong[0]].shape)}, the model {tuple(ref[wrong[0]].shape)}")
    state = {k: v.to(ref[k].dtype) if k in ref else v for k, v in state.items()}
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise LicError(
            f"checkpoint '{folder}' does not fit the model: missing {missing[:3]}, unexpected {unexpected[:3]}"
        )
    index["optimizer_loaded"] = False
    if optimizer is not None and index.get("optimizer") and not relaid:
        per_param: dict[int, dict] = {}
        for key, value in tensors.items():
            if key.startswith("optim."):
                _, pid, name = key.split(".", 2)
                per_param.setdefault(int(pid), {})[name] = value
        optimizer.load_state_dict({"state": per_param, "param_groups": index["optimizer"]["param_groups"]})
        index["optimizer_loaded"] = True
    return index
