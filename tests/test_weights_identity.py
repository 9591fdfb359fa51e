"""Weights identity and old files: the SHA-256 over tensors and metadata, the header id derived
from it, legacy CRC32 files, the release table, bad weights files, and `--weights`."""
from __future__ import annotations

import json
import re
import runpy
import shutil
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import photo_like, run_cli
from PIL import Image
from safetensors import safe_open
from safetensors.numpy import save as save_numpy

from lccodec import released_weights
from lccodec.codec import Codec, open_model
from lccodec.errors import ModelError
from lccodec.models import build_model, model_by_name
from lccodec.released_weights import RELEASES, Release, find_release
from lccodec.weights_io import (
    identify,
    load_weights,
    read_metadata,
    save_weights,
    tensors_crc32,
    weights_sha256,
)

ROOT = Path(__file__).resolve().parents[1]
TINY = {"N": 16, "M": 24}
HYPER = model_by_name("hyperprior")


def _tiny(seed: int) -> torch.nn.Module:
    torch.manual_seed(seed)
    return build_model(HYPER, TINY)


def _read(path: Path) -> tuple[dict[str, str], dict[str, np.ndarray]]:
    with safe_open(str(path), framework="numpy") as f:
        return dict(f.metadata()), {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118


def _write(path: Path, meta: dict[str, str], arrays: dict[str, np.ndarray], sign: str | None = "sha256") -> Path:
    """Write a weights file: `sign` 'sha256' (today's identity), 'crc32' (legacy) or None (as given)."""
    meta = dict(meta)
    if sign == "sha256":
        sha = weights_sha256(arrays, meta)
        meta.update(weights_sha256=sha, weights_id=sha[:8])
    elif sign == "crc32":
        meta.pop("weights_sha256", None)
        meta["weights_id"] = f"{tensors_crc32(arrays):08x}"
    path.write_bytes(save_numpy(arrays, metadata=meta))
    return path


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    """Two tiny hyperprior weights files (a, b) of today's kind and a legacy copy of a."""
    folder = tmp_path_factory.mktemp("w")
    out = {}
    for key, seed in (("a", 0), ("b", 1)):
        model = _tiny(seed)
        out[key] = folder / f"{key}.safetensors"
        save_weights(out[key], model, model.build_tables(), {"note": key})
    meta, arrays = _read(out["a"])
    out["legacy"] = _write(folder / "legacy.safetensors", meta, arrays, sign="crc32")
    return out


@pytest.fixture(scope="module")
def lic_a(files) -> tuple[bytes, np.ndarray]:
    """A small .lic file made with weights a, and its reconstruction."""
    enc = Codec(HYPER, "cpu", files["a"]).encode(photo_like(32, 48), 3.0)
    return enc.data, enc.reconstruction


def _forge_keeping_crc(arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The tensors with one bit flipped, and 32 more chosen so that the legacy CRC32 is unchanged."""
    name = next(k for k, v in arrays.items() if v.dtype == np.float16 and v.size >= 8)
    base = tensors_crc32(arrays)

    def flipped(bits: list[int]) -> dict[str, np.ndarray]:
        raw = arrays[name].copy().view(np.uint8).reshape(-1)
        for b in bits:
            raw[b // 8] ^= 1 << (b % 8)
        return {**arrays, name: raw.view(np.float16).reshape(arrays[name].shape)}

    target = tensors_crc32(flipped([0])) ^ base
    candidates = list(range(64, 96))  # bytes 8..11: CRC32 is affine, 32 consecutive bits span it
    basis: list[tuple[int, int]] = []  # (vector, which candidates make it), distinct leading bits
    for i, bit in enumerate(candidates):
        v, m = tensors_crc32(flipped([bit])) ^ base, 1 << i
        for bv, bm in basis:
            if v ^ bv < v:
                v, m = v ^ bv, m ^ bm
        if v:
            basis = sorted([*basis, (v, m)], reverse=True)
    chosen = 0
    for bv, bm in basis:
        if target ^ bv < target:
            target, chosen = target ^ bv, chosen ^ bm
    assert target == 0
    forged = flipped([0, *(c for i, c in enumerate(candidates) if chosen >> i & 1)])
    assert tensors_crc32(forged) == base
    return forged


# ------------------------------------------------------------------------------ identity
def test_a_weights_file_records_its_sha256_and_the_id_is_its_first_4_bytes(files):
    meta, arrays = _read(files["a"])
    sha = meta["weights_sha256"]
    assert re.fullmatch(r"[0-9a-f]{64}", sha) and sha == weights_sha256(arrays, meta)
    assert meta["weights_id"] == sha[:8]
    identity = identify(files["a"])
    assert identity.weights_id == int.from_bytes(bytes.fromhex(sha)[:4], "big") and not identity.legacy
    codec = Codec(HYPER, "cpu", files["a"])
    assert codec.weights_id == identity.weights_id and codec.weights_identity.sha256 == sha


def test_the_exporter_writes_the_new_fields(tmp_path):
    from lccodec.train.export import export_model

    manifest = export_model(_tiny(0), tmp_path / "w.safetensors", {"steps": 1})
    meta = read_metadata(tmp_path / "w.safetensors")
    assert manifest["weights_sha256"] == meta["weights_sha256"] and manifest["weights_id"] == meta["weights_sha256"][:8]


def test_the_sha256_covers_the_metadata(files, tmp_path):
    meta, arrays = _read(files["a"])
    for key, value in (("manifest", json.dumps({"note": "other"})), ("model_id", "7"), ("extra", "x")):
        bad = _write(tmp_path / f"{key}.safetensors", {**meta, key: value}, arrays, sign=None)
        with pytest.raises(ModelError, match=f"weights '{re.escape(str(bad))}' are corrupt or were modified"):
            load_weights(bad, _tiny(0))


def test_the_sha256_covers_the_tensors_even_when_the_crc32_is_kept(files, tmp_path):
    meta, arrays = _read(files["a"])
    bad = _write(tmp_path / "t.safetensors", meta, _forge_keeping_crc(arrays), sign=None)
    with pytest.raises(ModelError, match="SHA-256 mismatch"):
        Codec(HYPER, "cpu", bad)
    meta["weights_id"] = "00000000"  # a stored id that is not the SHA-256's
    bad = _write(tmp_path / "i.safetensors", meta, arrays, sign=None)
    with pytest.raises(ModelError, match="does not match their SHA-256"):
        identify(bad)


# ------------------------------------------------------------------------ legacy files
def test_a_legacy_file_keeps_its_crc32_id_and_its_lic_files_decode(files, tmp_path):
    meta = read_metadata(files["legacy"])
    assert "weights_sha256" not in meta
    codec = Codec(HYPER, "cpu", files["legacy"])
    assert codec.weights_identity.legacy and f"{codec.weights_id:08x}" == meta["weights_id"]
    assert codec.weights_id != Codec(HYPER, "cpu", files["a"]).weights_id  # same tensors, other rule
    enc = codec.encode(photo_like(32, 32), 2.0)
    assert enc.data[8:12] == codec.weights_id.to_bytes(4, "little")
    assert np.array_equal(codec.decode(enc.data), enc.reconstruction)
    m, arrays = _read(files["legacy"])
    arrays = dict(arrays)
    name = next(iter(arrays))
    arrays[name] = arrays[name].copy()
    arrays[name].view(np.uint8).reshape(-1)[0] ^= 1
    with pytest.raises(ModelError, match="checksum mismatch"):
        identify(_write(tmp_path / "flip.safetensors", m, arrays, sign=None))


def test_the_test_vectors_weights_are_legacy_and_keep_their_ids():
    vectors = json.loads((ROOT / "tests" / "vectors" / "vectors.json").read_text())["vectors"]
    for path in sorted((ROOT / "tests" / "vectors" / "weights").glob("*.safetensors")):
        meta = read_metadata(path)
        assert "weights_sha256" not in meta
        assert identify(path).hex == meta["weights_id"]
        assert {v["weights_id"] for v in vectors if v["model"] == meta["model"]} == {meta["weights_id"]}


def test_a_released_legacy_file_is_checked_against_its_recorded_sha256(files, tmp_path, monkeypatch):
    meta, arrays = _read(files["legacy"])
    forged = _write(tmp_path / "forged.safetensors", meta, _forge_keeping_crc(arrays), sign=None)
    assert identify(forged).legacy  # not a release: the CRC32 is all there is to check
    row = Release("hyperprior", meta["weights_id"], identify(files["legacy"]).sha256, "0.1.0", "abc1234", "2026-12-03")
    monkeypatch.setattr(released_weights, "RELEASES", (*RELEASES, row))
    assert identify(files["legacy"]).legacy
    with pytest.raises(ModelError, match="were modified: the hyperprior weights .* released with lic 0.1.0, commit abc1234"):
        Codec(HYPER, "cpu", forged)


# ------------------------------------------------------------------------- release table
def test_every_shipped_weights_file_is_in_the_release_table():
    from lccodec.weights_io import SHARED_FIELD
    from lccodec.weights_parts import model_files

    shipped = model_files(ROOT / "weights")  # the part files are checked through the files naming them
    assert shipped
    for path in shipped:
        identity = identify(path)  # verifies the file, against the table's SHA-256 for a legacy one
        meta = read_metadata(path)
        release = find_release(meta["model"], identity.hex)
        assert release is not None, (
            f"{path.name} (weights_id {identity.hex}) is not in src/lccodec/released_weights.py: "
            f"run `python -m lccodec.train.rounds release weights/{path.name}` (docs/weights.md)")
        assert release.sha256 == identity.sha256
        assert release.shared in (None, meta.get(SHARED_FIELD))  # rows before the split name no part


def test_the_shipped_weights_fit_the_80_mb_budget():
    total = sum(p.stat().st_size for p in (ROOT / "weights").glob("*.safetensors"))
    assert total <= 80_000_000, f"weights/ holds {total / 1e6:.1f} MB, over the 80 MB budget"


def test_the_release_table_is_well_formed():
    from lccodec.models import MODELS

    assert len({(r.model, r.weights_id) for r in RELEASES}) == len(RELEASES)
    for r in RELEASES:
        assert r.model in MODELS and re.fullmatch(r"[0-9a-f]{8}", r.weights_id)
        assert r.sha256 is None or re.fullmatch(r"[0-9a-f]{64}", r.sha256)
        assert r.commit is None or re.fullmatch(r"[0-9a-f]{7,40}", r.commit)
        assert re.fullmatch(r"\d+\.\d+\.\d+\S*", r.version) and re.fullmatch(r"\d{4}-\d\d-\d\d", r.date)
        assert r.how_to_get().startswith("git show ") and r.local_name in r.how_to_get()
    assert find_release("hyperprior", 0x088F598E).commit == "cffd684"


def test_record_release_adds_one_row(files, tmp_path):
    from lccodec.train.rounds import record_release

    table = tmp_path / released_weights.TABLE_PATH
    table.parent.mkdir(parents=True)
    shutil.copy(released_weights.__file__, table)
    row = record_release(files["a"], tmp_path)
    assert record_release(files["a"], tmp_path) == row  # once only
    namespace = runpy.run_path(str(table))
    added = namespace["RELEASES"][-1]
    identity = identify(files["a"])
    assert (added.model, added.weights_id, added.sha256, added.commit) == ("hyperprior", identity.hex, identity.sha256, None)
    assert len(namespace["RELEASES"]) == len(RELEASES) + 1
    assert "git log -1 --format=%h -S" in added.how_to_get()


# ----------------------------------------------------------------------- bad weights files
def _bad_files(files, folder: Path) -> dict[str, tuple[Path, str]]:
    """Each kind of bad weights file (signed, so that what fails is its content) and the error."""
    meta, arrays = _read(files["a"])
    config = json.loads(meta["config"])
    first = next(k for k in arrays if not k.startswith("tables."))
    table = next(k for k in arrays if k.startswith("tables."))

    def write(name: str, meta_update: dict | None = None, arrays_: dict | None = None) -> Path:
        return _write(folder / f"{name}.safetensors", {**meta, **(meta_update or {})}, arrays_ or arrays)

    return {
        "unknown config key": (write("key", {"config": json.dumps({**config, "bogus": 1})}),
                               "unknown config key 'bogus'"),
        "shortened lambdas": (write("lambdas", {"config": json.dumps({**config, "lambdas": config["lambdas"][:7]})}),
                              "do not fit model hyperprior with their config: tensor"),
        "bad lambdas": (write("lambdas2", {"config": json.dumps({**config, "lambdas": []})}),
                        "'lambdas' must be a non-empty list"),
        "bad value": (write("value", {"config": json.dumps({**config, "N": "x"})}), "invalid config"),
        "invalid JSON": (write("json", {"config": "{not json"}), "'config' is not valid JSON"),
        "config not an object": (write("list", {"config": "[1]"}), "'config' is not a JSON object"),
        "missing tensor": (write("missing", arrays_={k: v for k, v in arrays.items() if k != first}),
                           "missing ['" + first),
        "extra tensor": (write("extra", arrays_={**arrays, "bogus": np.zeros(2, np.float16)}), "unexpected ['bogus']"),
        "wrong shape": (write("shape", arrays_={**arrays, first: np.zeros((3, 5), np.float16)}),
                        f"tensor '{first}' has shape (3, 5)"),
        "missing table": (write("table", arrays_={k: v for k, v in arrays.items() if k != table}), "entropy tables"),
        "other model": (write("model", {"model": "context"}), "are for model 'context', not hyperprior"),
        "no identity": (_write(folder / "noid.safetensors", _without_identity(meta), arrays, sign=None),
                        "record no weights_id"),
        "not safetensors": (_garbage(folder / "garbage.safetensors"), "cannot read weights"),
    }


def _without_identity(meta: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in meta.items() if k not in ("weights_id", "weights_sha256")}


def _garbage(path: Path) -> Path:
    path.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not a header!!}")
    return path


BAD_KINDS = ["unknown config key", "shortened lambdas", "bad lambdas", "bad value", "invalid JSON",
             "config not an object", "missing tensor", "extra tensor", "wrong shape", "missing table",
             "other model", "no identity", "not safetensors"]


@pytest.fixture(scope="module")
def bad(files, tmp_path_factory) -> dict[str, tuple[Path, str]]:
    return _bad_files(files, tmp_path_factory.mktemp("bad"))


@pytest.mark.parametrize("kind", BAD_KINDS)
def test_a_bad_weights_file_is_one_clear_error_naming_it(bad, kind):
    path, message = bad[kind]
    with pytest.raises(ModelError) as info:
        open_model("hyperprior", "cpu", weights=path)
    assert f"weights '{path}'" in str(info.value) and message in str(info.value), str(info.value)
    assert "\n" not in str(info.value)


def test_bad_weights_files_through_the_cli(bad, lic_a, tmp_path, capsys, monkeypatch):
    lic = tmp_path / "a.lic"
    lic.write_bytes(lic_a[0])
    for kind in ("unknown config key", "invalid JSON"):
        path, message = bad[kind]
        code, _, err = run_cli(["decode", "--weights", str(path), str(lic), str(tmp_path / "o.png")], capsys)
        assert code == 1 and err.startswith("lic: error: ") and err.count("\n") == 1, err
        assert f"weights '{path}'" in err and message in err and "internal error" not in err
    folder = tmp_path / "dir"
    folder.mkdir()
    shutil.copy(bad["shortened lambdas"][0], folder / "hyperprior.safetensors")
    monkeypatch.setenv("LIC_WEIGHTS_DIR", str(folder))
    code, _, err = run_cli(["decode", str(lic), str(tmp_path / "o.png")], capsys)
    assert code == 1 and err.count("\n") == 1 and "hyperprior.safetensors' do not fit" in err, err
    assert not (tmp_path / "o.png").exists()


# ------------------------------------------------------------------------ --weights FILE
def test_decode_with_weights_file_through_the_library(files, lic_a, monkeypatch):
    import lccodec

    data, reconstruction = lic_a
    assert np.array_equal(np.asarray(lccodec.decode(data, "cpu", weights=files["a"])), reconstruction)
    assert open_model("hyperprior", "cpu", weights=files["a"]) is open_model("hyperprior", "cpu", weights=files["a"])
    folder = files["b"].parent / "b-dir"
    folder.mkdir(exist_ok=True)
    shutil.copy(files["b"], folder / "hyperprior.safetensors")
    monkeypatch.setenv("LIC_WEIGHTS_DIR", str(folder))
    b_id = identify(files["b"]).hex
    with pytest.raises(ModelError, match=f"weights {data[8:12][::-1].hex()}, which no lic release shipped; "
                                         f"this lic has {b_id}: decode it with `lic decode --weights FILE`"):
        lccodec.decode(data, "cpu")
    with pytest.raises(ModelError, match=f"the weights '{re.escape(str(files['b']))}' are {b_id}"):
        lccodec.decode(data, "cpu", weights=files["b"])
    with pytest.raises(ModelError, match="cannot read weights 'nowhere.safetensors'"):
        lccodec.decode(data, "cpu", weights="nowhere.safetensors")


def test_the_error_names_the_release_that_shipped_the_weights(files, lic_a, tmp_path, capsys, monkeypatch):
    data = lic_a[0]
    a_id = identify(files["a"]).hex
    monkeypatch.setattr(released_weights, "RELEASES",
                        (*RELEASES, Release("hyperprior", a_id, None, "0.1.0", "abc1234", "2026-12-03")))
    lic = tmp_path / "a.lic"
    lic.write_bytes(data)
    folder = tmp_path / "b-dir"
    folder.mkdir()
    shutil.copy(files["b"], folder / "hyperprior.safetensors")
    monkeypatch.setenv("LIC_WEIGHTS_DIR", str(folder))
    code, _, err = run_cli(["decode", str(lic), str(tmp_path / "o.png")], capsys)
    assert code == 1 and err.count("\n") == 1, err
    assert f"file was made with hyperprior weights {a_id} (lic 0.1.0, commit abc1234)" in err
    assert f"git show abc1234:weights/hyperprior.safetensors > hyperprior-{a_id}.safetensors" in err
    assert f"lic decode --weights hyperprior-{a_id}.safetensors" in err
    code, _, err = run_cli(["decode", "--weights", str(files["a"]), str(lic), str(tmp_path / "o.png")], capsys)
    assert code == 0, err
    assert np.array_equal(np.asarray(Image.open(tmp_path / "o.png")), lic_a[1])


def test_encode_with_a_weights_file_takes_its_model_and_info_names_the_release(files, tmp_path, capsys, monkeypatch):
    png, lic = tmp_path / "a.png", tmp_path / "a.lic"
    Image.fromarray(photo_like(32, 48)).save(png)
    code, _, err = run_cli(["encode", "--weights", str(files["a"]), str(png), str(lic), "-v"], capsys)
    assert code == 0 and "RGB, hyperprior quality" in err, err
    a_id = identify(files["a"]).hex
    assert lic.read_bytes()[8:12][::-1].hex() == a_id
    code, text, _ = run_cli(["info", str(lic), "--json"], capsys)
    assert code == 0 and json.loads(text)["weights_release"] is None
    code, text, _ = run_cli(["info", str(lic)], capsys)
    assert "weights_release: none (weights no lic release shipped: decode with --weights FILE)" in text
    code, _, err = run_cli(["decode", "--weights", str(files["a"]), str(lic), str(tmp_path / "o.png")], capsys)
    assert code == 0, err
    monkeypatch.setattr(released_weights, "RELEASES",
                        (*RELEASES, Release("hyperprior", a_id, None, "0.1.0", "abc1234", "2026-12-03")))
    code, text, _ = run_cli(["info", str(lic)], capsys)
    assert "weights_release: lic 0.1.0, commit abc1234, 2026-12-03" in text
    code, text, _ = run_cli(["info", str(lic), "--json"], capsys)
    assert json.loads(text)["weights_release"] == {"version": "0.1.0", "commit": "abc1234", "date": "2026-12-03"}
    out = tmp_path / "b.lic"
    code, _, err = run_cli(["encode", "--model", "context", "--weights", str(files["a"]), str(png), str(out)], capsys)
    assert code == 1 and err.count("\n") == 1 and "are for model 'hyperprior', not context" in err, err
    assert not out.exists()


def test_encode_with_weights_through_the_library(files):
    import lccodec

    data = lccodec.encode(photo_like(32, 48), quality=3.0, weights=files["a"], device="cpu")
    assert data[8:12][::-1].hex() == identify(files["a"]).hex
    assert np.asarray(lccodec.decode(data, "cpu", weights=files["a"])).shape == (32, 48, 3)


def test_models_json_shows_the_full_hash(files, tmp_path, capsys, monkeypatch):
    folder = tmp_path / "only-a"
    folder.mkdir()
    shutil.copy(files["a"], folder / "hyperprior.safetensors")
    monkeypatch.setenv("LIC_WEIGHTS_DIR", str(folder))
    code, out, err = run_cli(["models", "--json"], capsys)
    assert code == 0, err
    (row,) = json.loads(out)
    identity = identify(files["a"])
    assert row["weights_id"] == identity.hex and row["weights_sha256"] == identity.sha256
    assert row["weights_legacy_id"] is False


def test_crc32_is_what_the_legacy_id_always_was():
    arrays = {"b": np.arange(3, dtype=np.int32), "a": np.ones((2, 2), np.float16)}
    crc = zlib.crc32(b"a|<f2|(2, 2)")
    crc = zlib.crc32(arrays["a"].tobytes(), crc)
    crc = zlib.crc32(b"b|<i4|(3,)", crc)
    assert tensors_crc32(arrays) == zlib.crc32(arrays["b"].tobytes(), crc)
