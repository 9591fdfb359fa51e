"""Transforms stored once: the part files of a weights folder.

The context, reference, hierarchical and coarse-to-fine models train their entropy models on the
hyperprior's frozen transforms, so their weights files hold the same transform tensors (6.6 MB
each) bit for bit. :func:`share` moves the hyperprior's transform tensors (its
``transform_modules``) into a part file ``transforms-<id>.safetensors`` (named by its SHA-256)
and has every model file that holds them unchanged name it in its ``shared`` metadata field;
:mod:`lccodec.weights_io` reads the two as one file, with the same identity as before the split.
:func:`merge` writes the standalone file back (to send one file, or to train from)::

    python -m lccodec.weights_parts share weights/
    python -m lccodec.weights_parts merge weights/context.safetensors context-alone.safetensors
"""
from __future__ import annotations

import sys
from pathlib import Path

import click
import numpy as np
from safetensors.numpy import save as save_numpy

from .atomic import write_bytes_atomic
from .errors import LicError, ModelError
from .weights_io import (
    PART_FIELD, PART_NAME, SHARED_FIELD, identify, read_part, read_weights, verify, weights_sha256,
)

PART_KIND = "transforms"
BASE = "hyperprior.safetensors"  # the model whose transforms the others train on


def model_files(folder: Path) -> list[Path]:
    """The weights files of models in `folder` (every .safetensors file that is not a part)."""
    return sorted(p for p in folder.glob("*.safetensors") if not PART_NAME.fullmatch(p.name))


def part_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.glob("*.safetensors") if PART_NAME.fullmatch(p.name))


def write_part(folder: Path, arrays: dict[str, np.ndarray]) -> Path:
    """The part file holding exactly `arrays` in `folder`, written unless it is there (verified)."""
    meta = {PART_FIELD: PART_KIND}
    sha = weights_sha256(arrays, meta)
    meta.update(weights_sha256=sha, weights_id=sha[:8])
    path = folder / f"{PART_KIND}-{sha[:8]}.safetensors"
    if path.is_file():
        read_part(path)
    else:
        write_bytes_atomic(path, save_numpy(arrays, metadata=meta))
    return path


def base_part(folder: Path, base: str) -> dict[str, np.ndarray]:
    """The transform tensors (its model's ``transform_modules``) of the base file in `folder`;
    empty without one."""
    from .models import model_by_name

    path = folder / base
    if not path.is_file():
        return {}
    raw, arrays = read_weights(path, tensors=True)
    verify(path, raw, arrays)
    modules = model_by_name(raw.get("model", "?")).factory.transform_modules
    return {k: v for k, v in arrays.items() if k.split(".")[0] in modules}


def _holds(arrays: dict[str, np.ndarray], part: dict[str, np.ndarray]) -> bool:
    """Whether `arrays` hold every tensor of `part` bit for bit."""
    return all(k in arrays and arrays[k].dtype == v.dtype and arrays[k].shape == v.shape
               and arrays[k].tobytes() == v.tobytes() for k, v in part.items())


def share(folder: Path, base: str = BASE) -> dict[str, str]:
    """Store the base file's transforms once: every model file in `folder` that holds them bit
    for bit (and names no part yet) leaves them to the part file and names it. Files that
    already name a part are left as they are, byte for byte (when the base retrains, the others
    keep the part of the transforms they were trained on); parts no file names are deleted.
    Every file keeps its identity (checked). Returns {model file: part file} by name."""
    part_arrays = base_part(folder, base)
    shared: dict[str, str] = {}
    for path in model_files(folder):
        raw, arrays = read_weights(path, tensors=True)
        before = verify(path, raw, arrays)
        if raw.get(SHARED_FIELD):
            shared[path.name] = raw[SHARED_FIELD]
        elif part_arrays and _holds(arrays, part_arrays):
            part = write_part(folder, part_arrays)
            meta = {**raw, SHARED_FIELD: part.name}
            own = {k: v for k, v in arrays.items() if k not in part_arrays}
            write_bytes_atomic(path, save_numpy(own, metadata=meta))
            if identify(path) != before:
                raise ModelError(f"splitting '{path}' changed its identity")  # a bug: never expected
            shared[path.name] = part.name
    for part in part_files(folder):
        if part.name not in shared.values():
            part.unlink()
    return shared


def merge(path: Path, out: Path) -> Path:
    """Write the standalone file of the weights file `path` (its part's tensors inside) to `out`."""
    raw, arrays = read_weights(path, tensors=True)
    before = verify(path, raw, arrays)
    meta = {k: v for k, v in raw.items() if k != SHARED_FIELD}
    write_bytes_atomic(out, save_numpy(arrays, metadata=meta))
    if identify(out) != before:
        raise ModelError(f"merging '{path}' changed its identity")
    return out


@click.group("weights_parts")
def parts_command() -> None:
    """Store the transforms several weights files share once (see lccodec.weights_parts)."""


@parts_command.command("share")
@click.argument("folder", type=click.Path(file_okay=False, exists=True, path_type=Path))
def share_command(folder: Path) -> None:
    """Split every weights file in FOLDER into its own tensors and a shared transforms part."""
    for name, part in _run(lambda: share(folder)).items():
        click.echo(f"{name}: shares {part}")


@parts_command.command("merge")
@click.argument("weights", type=click.Path(dir_okay=False, exists=True, path_type=Path))
@click.argument("out", type=click.Path(dir_okay=False, path_type=Path))
def merge_command(weights: Path, out: Path) -> None:
    """Write WEIGHTS with its shared part inside to OUT (one standalone file)."""
    click.echo(f"wrote {_run(lambda: merge(weights, out))}")


def _run(fn):
    try:
        return fn()
    except LicError as exc:
        click.echo(f"lic: error: {exc}", err=True)
        sys.exit(1)


if __name__ == "__main__":
    parts_command(prog_name="python -m lccodec.weights_parts")
