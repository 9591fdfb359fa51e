"""Transforms stored once (lccodec.weights_parts): splitting keeps every identity and bitstream,
a part is found beside its file and verified, merging gives the standalone file back."""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import photo_like
from safetensors import safe_open
from safetensors.numpy import save as save_numpy

from lccodec.codec import Codec
from lccodec.errors import ModelError
from lccodec.models import build_model, model_by_name
from lccodec.models.context import ContextModel, init_from_hyperprior
from lccodec.released_weights import Release, release_row
from lccodec.weights_io import SHARED_FIELD, identify, read_metadata, save_weights, stored_bytes
from lccodec.weights_parts import merge, part_files, share

ROOT = Path(__file__).resolve().parents[1]
TINY = {"N": 16, "M": 24}
HYPER = model_by_name("hyperprior")


def _metadata(path: Path) -> dict[str, str]:
    with safe_open(str(path), framework="numpy") as f:
        return dict(f.metadata())


@pytest.fixture(scope="module")
def standalone(tmp_path_factory) -> Path:
    """A folder of standalone files: a hyperprior, a context model on its transforms, and a
    hyperprior of other transforms (other.safetensors)."""
    folder = tmp_path_factory.mktemp("standalone")
    torch.manual_seed(0)
    hyper = build_model(HYPER, TINY)
    save_weights(folder / "hyperprior.safetensors", hyper, hyper.build_tables(), {"steps": 1})
    context = init_from_hyperprior(ContextModel(**TINY), folder / "hyperprior.safetensors")
    save_weights(folder / "context.safetensors", context, context.build_tables(), {"steps": 2})
    torch.manual_seed(1)
    other = build_model(HYPER, TINY)
    save_weights(folder / "other.safetensors", other, other.build_tables(), {"steps": 3})
    return folder


@pytest.fixture()
def split(standalone, tmp_path) -> Path:
    folder = tmp_path / "split"
    shutil.copytree(standalone, folder)
    share(folder)
    return folder


def test_share_keeps_every_identity_and_stores_the_transforms_once(standalone, split):
    (part,) = part_files(split)
    for name in ("hyperprior", "context", "other"):
        assert identify(split / f"{name}.safetensors") == identify(standalone / f"{name}.safetensors")
    assert _metadata(split / "hyperprior.safetensors")[SHARED_FIELD] == part.name
    assert _metadata(split / "context.safetensors")[SHARED_FIELD] == part.name
    assert SHARED_FIELD not in _metadata(split / "other.safetensors")  # other transforms: standalone
    saved = sum(p.stat().st_size for p in standalone.glob("*.safetensors")) - \
        sum(p.stat().st_size for p in split.glob("*.safetensors"))
    assert saved > 0.9 * part.stat().st_size
    for name in ("hyperprior", "context"):  # what the model needs: its file and the part
        path = split / f"{name}.safetensors"
        assert stored_bytes(path, part.name) == path.stat().st_size + part.stat().st_size
        assert Codec(model_by_name(name), "cpu", path).weights_bytes == stored_bytes(path, part.name)
        assert read_metadata(path)["model"] == name


def test_share_is_idempotent_and_leaves_split_files_untouched(split):
    before = {p.name: p.read_bytes() for p in split.glob("*.safetensors")}
    share(split)
    assert {p.name: p.read_bytes() for p in split.glob("*.safetensors")} == before


def test_a_split_file_codes_the_same_bitstream(standalone, split):
    image = photo_like(48, 64)
    one = Codec(HYPER, "cpu", standalone / "hyperprior.safetensors").encode(image, 3.0)
    two = Codec(HYPER, "cpu", split / "hyperprior.safetensors").encode(image, 3.0)
    assert one.data == two.data
    assert np.array_equal(Codec(HYPER, "cpu", split / "hyperprior.safetensors").decode(one.data), one.reconstruction)


def test_a_missing_or_modified_part_is_refused(split):
    (part,) = part_files(split)
    data = bytearray(part.read_bytes())
    data[-3] ^= 1  # a tensor byte
    part.write_bytes(bytes(data))
    with pytest.raises(ModelError, match="part .* is corrupt or was modified"):
        identify(split / "context.safetensors")
    part.unlink()
    with pytest.raises(ModelError, match="need their shared part 'transforms-[0-9a-f]{8}.safetensors' beside them"):
        Codec(HYPER, "cpu", split / "hyperprior.safetensors")


def test_a_part_changed_after_the_first_open_is_verified_again(split, tmp_path, capsys, monkeypatch):
    """open_model caches a codec by the stat of its weights file and of the part it names."""
    from conftest import run_cli

    from lccodec.codec import open_model

    monkeypatch.setenv("LIC_WEIGHTS_DIR", str(split))
    codec = open_model("context", "cpu")
    assert open_model("context", "cpu") is codec  # nothing changed: the cached codec
    lic = tmp_path / "a.lic"
    lic.write_bytes(codec.encode(photo_like(32, 48), 3.0).data)
    (part,) = part_files(split)
    data = bytearray(part.read_bytes())
    data[-3] ^= 1  # a tensor byte, changed in place: same size, same inode
    part.write_bytes(bytes(data))
    message = f"weights part '{part}' is corrupt or was modified (SHA-256 mismatch)"
    with pytest.raises(ModelError) as caught:
        open_model("context", "cpu")
    assert str(caught.value) == message
    code, _, err = run_cli(["decode", str(lic), str(tmp_path / "a.png")], capsys)
    assert (code, err) == (1, f"lic: error: {message}\n")
    assert not (tmp_path / "a.png").exists()


def test_a_part_name_that_is_not_a_part_file_is_refused(split):
    path = split / "context.safetensors"
    with safe_open(str(path), framework="numpy") as f:
        meta, arrays = dict(f.metadata()), {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118
    path.write_bytes(save_numpy(arrays, metadata={**meta, SHARED_FIELD: "../hyperprior.safetensors"}))
    with pytest.raises(ModelError, match="invalid shared part '../hyperprior.safetensors'"):
        identify(path)


def test_merge_writes_the_standalone_file_back(standalone, split, tmp_path):
    out = merge(split / "context.safetensors", tmp_path / "alone.safetensors")
    assert SHARED_FIELD not in _metadata(out)
    assert identify(out) == identify(standalone / "context.safetensors")
    assert out.stat().st_size == (standalone / "context.safetensors").stat().st_size


def test_the_cli_shares_and_merges_with_one_line_errors(standalone, tmp_path):
    from click.testing import CliRunner

    from lccodec.weights_parts import parts_command

    folder = tmp_path / "w"
    shutil.copytree(standalone, folder)
    result = CliRunner().invoke(parts_command, ["share", str(folder)])
    assert result.exit_code == 0 and "context.safetensors: shares transforms-" in result.output
    result = CliRunner().invoke(parts_command, ["merge", str(folder / "context.safetensors"), str(tmp_path / "c.st")])
    assert result.exit_code == 0 and identify(tmp_path / "c.st") == identify(standalone / "context.safetensors")
    for part in part_files(folder):
        part.unlink()
    result = CliRunner().invoke(parts_command, ["merge", str(folder / "context.safetensors"), str(tmp_path / "d.st")])
    assert result.exit_code == 1 and result.output.startswith("lic: error: weights ")
    assert not (tmp_path / "d.st").exists()


def test_a_release_that_shares_a_part_says_how_to_get_both():
    row = Release("context", "0123abcd", None, "0.1.0", "abc1234", "2026-12-06", "transforms-41ee4481.safetensors")
    command = row.how_to_get()
    assert command.startswith("git show abc1234:weights/context.safetensors > context-0123abcd.safetensors")
    assert command.endswith("git show abc1234:weights/transforms-41ee4481.safetensors > transforms-41ee4481.safetensors")
    assert release_row(row).rstrip(",").endswith('"transforms-41ee4481.safetensors")')
    assert "transforms" not in release_row(Release("context", "0123abcd", None, "0.1.0", None, "2026-12-06"))


def test_every_shipped_part_is_named_by_a_shipped_weights_file():
    named = {read_metadata(p).get(SHARED_FIELD) for p in (ROOT / "weights").glob("*.safetensors")}
    for part in part_files(ROOT / "weights"):
        assert part.name in named, f"{part.name} is named by no weights file: delete it (weights_parts.share)"
