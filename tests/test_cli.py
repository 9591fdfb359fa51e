"""The `lic` command: usage, pipes, and one clear line for every failure."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image


from conftest import photo_like, run_cli as run




@pytest.fixture()
def png(tmp_path: Path) -> Path:
    p = tmp_path / "in.png"
    Image.fromarray(photo_like(40, 56)).save(p)
    return p


def assert_one_error_line(code: int, err: str, fragment: str) -> None:
    assert code != 0
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("lic: error: ") and fragment in lines[0], err
    assert "Traceback" not in err


def test_encode_decode_info_models(png, tmp_path, capsys):
    lic, out = tmp_path / "a.lic", tmp_path / "b.png"
    code, _, err = run(["encode", str(png), str(lic), "--quality", "3.5", "-v"], capsys)
    assert code == 0 and "bpp" in err and "PSNR" in err
    assert run(["decode", str(lic), str(out)], capsys)[0] == 0
    assert Image.open(out).size == (56, 40)
    code, text, _ = run(["info", str(lic), "--json"], capsys)
    fields = json.loads(text)
    assert code == 0 and fields["quality"] == 3.5 and fields["model"] == "hyperprior"
    assert {s["name"] for s in fields["streams"]} >= {"z", "y"}
    code, text, _ = run(["info", str(lic)], capsys)
    assert code == 0 and "width: 56" in text and "layers" in text
    code, text, _ = run(["models"], capsys)
    assert code == 0 and "hyperprior" in text
    code, text, _ = run(["--version"], capsys)
    assert code == 0 and text.startswith("lic ")


def test_bpp_target_reports_what_it_reached(png, tmp_path, capsys):
    code, _, err = run(["encode", str(png), str(tmp_path / "a.lic"), "--bpp", "0.5"], capsys)
    assert code == 0 and "bpp" in err


def test_decode_format_option(png, tmp_path, capsys):
    lic = tmp_path / "a.lic"
    run(["encode", str(png), str(lic)], capsys)
    out = tmp_path / "b.img"
    assert run(["decode", str(lic), str(out), "--format", "bmp"], capsys)[0] == 0
    assert Image.open(out).format == "BMP"


@pytest.mark.parametrize(
    "argv, fragment",
    [
        (["decode", "{tmp}/missing.lic", "{tmp}/x.png"], "no such file"),
        (["encode", "{tmp}/missing.png", "{tmp}/x.lic"], "no such file"),
        (["encode", "{tmp}/notimage.png", "{tmp}/x.lic"], "not an image"),
        (["decode", "{tmp}/notimage.png", "{tmp}/x.png"], "not a .lic file"),
        (["encode", "{png}", "{tmp}/x.lic", "--model", "nope"], "unknown model"),
        (["encode", "{png}", "{tmp}/x.lic", "--quality", "99"], "quality"),
        (["encode", "{png}", "{png}"], "same file"),
        (["encode", "{png}", "{tmp}/no/such/dir/x.lic"], "cannot write"),
        (["encode", "{png}", "{tmp}/x.lic", "--quality", "2", "--bpp", "1"], "only one of"),
        (["frobnicate"], "No such command"),
        (["decode", "{tmp}"], "give IN and OUT"),
        (["encode", "{png}", "{png}", "-o", "{tmp}/nodir"], "does not exist"),
    ],
)
def test_errors_are_one_line(argv, fragment, png, tmp_path, capsys):
    (tmp_path / "notimage.png").write_bytes(b"hello, not an image")
    argv = [a.format(tmp=tmp_path, png=png) for a in argv]
    before = set(os.listdir(tmp_path))
    code, _, err = run(argv, capsys)
    assert_one_error_line(code, err, fragment)
    assert set(os.listdir(tmp_path)) == before  # nothing half-written


def test_truncated_lic_refused_and_output_untouched(png, tmp_path, capsys):
    lic = tmp_path / "a.lic"
    run(["encode", str(png), str(lic)], capsys)
    data = lic.read_bytes()
    lic.write_bytes(data[: len(data) // 2])
    out = tmp_path / "out.png"
    out.write_bytes(b"keep me")
    code, _, err = run(["decode", str(lic), str(out)], capsys)
    assert_one_error_line(code, err, "truncated")
    assert out.read_bytes() == b"keep me"


def test_pipes_end_to_end(png, tmp_path):
    env = dict(os.environ)
    cmd = [sys.executable, "-m", "lccodec.cli"]
    enc = subprocess.run(cmd + ["encode", "-", "-", "-q", "2"], input=png.read_bytes(),
                         capture_output=True, env=env, check=True)
    dec = subprocess.run(cmd + ["decode", "-", "-"], input=enc.stdout, capture_output=True,
                         env=env, check=True)
    assert dec.stdout[:8] == b"\x89PNG\r\n\x1a\n"
    bad = subprocess.run(cmd + ["decode", "-", "-"], input=b"garbage", capture_output=True, env=env)
    assert bad.returncode != 0 and bad.stdout == b""
    assert bad.stderr.decode().strip().startswith("lic: error: ")


def test_many_files_one_failure_does_not_stop_the_rest(png, tmp_path, capsys):
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not an image")
    second = tmp_path / "second.png"
    Image.fromarray(photo_like(20, 30, seed=4)).save(second)
    code, _, err = run(["encode", str(png), str(bad), str(second), "-o", str(out_dir)], capsys)
    assert code != 0
    assert "bad.png" in err and "1 of 3 files failed" in err
    assert sorted(p.name for p in out_dir.iterdir()) == ["in.lic", "second.lic"]
    code, _, err = run(["decode", *map(str, sorted(out_dir.glob("*.lic"))), "-o", str(out_dir), "--jobs", "2"], capsys)
    assert code == 0, err
    assert Image.open(out_dir / "second.png").size == (30, 20)


def test_many_files_refuses_colliding_outputs(png, tmp_path, capsys):
    other = tmp_path / "sub"
    other.mkdir()
    (other / "in.png").write_bytes(png.read_bytes())
    code, _, err = run(["encode", str(png), str(other / "in.png"), "-o", str(tmp_path)], capsys)
    assert_one_error_line(code, err, "would both be written")


def test_max_pixels_refuses_large_declared_size(png, tmp_path, capsys):
    lic = tmp_path / "a.lic"
    run(["encode", str(png), str(lic)], capsys)
    code, _, err = run(["decode", str(lic), str(tmp_path / "b.png"), "--max-pixels", "100"], capsys)
    assert_one_error_line(code, err, "exceeds")
    assert not (tmp_path / "b.png").exists()
