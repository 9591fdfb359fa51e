"""The `lic` command: usage, pipes, and one clear line for every failure."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image


from conftest import photo_like, run_cli as run
from lccodec.default_model import DEFAULT_MODEL




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
    assert code == 0 and fields["quality"] == 3.5 and fields["model"] == DEFAULT_MODEL
    assert {s["name"] for s in fields["streams"]} >= {"z", "y"}
    code, text, _ = run(["info", str(lic)], capsys)
    assert code == 0 and "width: 56" in text and "layers" in text
    code, text, _ = run(["models"], capsys)
    assert code == 0 and "hyperprior" in text
    assert f"\n{DEFAULT_MODEL}* " in text and "* the default (lic encode without --model): " in text
    code, text, _ = run(["models", "--json"], capsys)
    assert [m["name"] for m in json.loads(text) if m["default"]] == [DEFAULT_MODEL]
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


def test_max_pixels_refuses_a_large_image_before_any_work(png, tmp_path, capsys, monkeypatch):
    lic = tmp_path / "a.lic"  # png is 56x40 = 2240 pixels
    assert run(["encode", str(png), str(lic), "--max-pixels", "2240"], capsys)[0] == 0
    from lccodec import codec

    monkeypatch.setattr(codec, "open_model", lambda *a, **k: pytest.fail("a model was loaded"))
    code, _, err = run(["encode", str(png), str(tmp_path / "b.lic"), "--max-pixels", "2239"], capsys)
    assert_one_error_line(code, err, "image too large: 56x40 pixels exceeds the limit of 2239")
    assert not (tmp_path / "b.lic").exists()
    code, _, err = run(["encode", str(png), str(tmp_path / "b.lic"), "--max-pixels", "0"], capsys)
    assert code == 2 and "--max-pixels" in err


def test_cli_single_file_goes_through_the_batch_functions(tmp_path, monkeypatch, capsys):
    from lccodec import batch

    calls = []
    for name in ("encode_file", "decode_file"):
        real = getattr(batch, name)
        monkeypatch.setattr(batch, name, lambda *a, _real=real, _n=name, **k: (calls.append(_n), _real(*a, **k))[1])
    Image.fromarray(photo_like(24, 32)).save(tmp_path / "a.png")
    assert run(["encode", str(tmp_path / "a.png"), str(tmp_path / "a.lic")], capsys)[0] == 0
    assert run(["decode", str(tmp_path / "a.lic"), str(tmp_path / "b.png")], capsys)[0] == 0
    assert calls == ["encode_file", "decode_file"]
    assert np.asarray(Image.open(tmp_path / "b.png")).shape == (24, 32, 3)


# --- output safety ---------------------------------------------------------------------------

def test_decode_keeps_the_targets_permission_bits(png, tmp_path, capsys):
    lic, out = tmp_path / "a.lic", tmp_path / "private.png"
    run(["encode", str(png), str(lic)], capsys)
    out.write_bytes(b"old")
    out.chmod(0o600)
    assert run(["decode", str(lic), str(out)], capsys)[0] == 0
    assert out.stat().st_mode & 0o777 == 0o600 and out.read_bytes()[:4] == b"\x89PNG"


@pytest.mark.parametrize("sig", ["SIGTERM", "SIGHUP"])
def test_termination_signals_leave_no_temp_file(png, tmp_path, sig):
    """The signal arrives while the output is being written (inside fsync)."""
    import signal

    script = f"""
import os, signal, sys, time
def fsync(fd):
    os.kill(os.getpid(), signal.{sig})
    time.sleep(30)
os.fsync = fsync
from lccodec.cli import main
main(sys.argv[1:])
"""
    res = subprocess.run([sys.executable, "-c", script, "encode", str(png), str(tmp_path / "a.lic")],
                         capture_output=True, timeout=300)
    assert res.returncode == 128 + getattr(signal, sig), res.stderr
    assert_one_error_line(1, res.stderr.decode(), f"terminated ({sig})")
    assert sorted(os.listdir(tmp_path)) == ["in.png"]


def test_decode_refuses_an_unknown_output_extension(png, tmp_path, capsys):
    lic = tmp_path / "a.lic"
    run(["encode", str(png), str(lic)], capsys)
    code, _, err = run(["decode", str(lic), str(tmp_path / "y.xyz")], capsys)
    assert_one_error_line(code, err, "'.xyz'")
    assert not (tmp_path / "y.xyz").exists()
    assert run(["decode", str(lic), str(tmp_path / "y.xyz"), "--format", "png"], capsys)[0] == 0
    assert Image.open(tmp_path / "y.xyz").format == "PNG"


def test_format_takes_extensions_and_errors_name_the_path(tmp_path, capsys):
    rgba = tmp_path / "rgba.png"
    Image.fromarray(np.dstack([photo_like(20, 24), np.full((20, 24), 200, np.uint8)])).save(rgba)
    run(["encode", str(rgba), str(tmp_path / "a.lic")], capsys)
    out = tmp_path / "out.img"
    code, _, err = run(["decode", str(tmp_path / "a.lic"), str(out), "--format", "xbm"], capsys)
    assert_one_error_line(code, err, f"cannot write '{out}': XBM files cannot hold RGBA images")
    assert "'3'" not in err and not out.exists()
    code, _, err = run(["decode", str(tmp_path / "a.lic"), str(out), "--format", "nope"], capsys)
    assert_one_error_line(code, err, "unknown image format 'nope'")


def test_format_jpg_writes_a_jpeg(png, tmp_path, capsys):
    lic, out = tmp_path / "a.lic", tmp_path / "b.img"
    run(["encode", str(png), str(lic)], capsys)
    assert run(["decode", str(lic), str(out), "--format", "jpg"], capsys)[0] == 0
    assert Image.open(out).format == "JPEG"


def test_full_stdout_is_one_clear_error(png):
    if not os.path.exists("/dev/full"):
        pytest.skip("no /dev/full here")
    with open("/dev/full", "wb") as full:
        res = subprocess.run([sys.executable, "-m", "lccodec.cli", "encode", str(png), "-"],
                             stdout=full, stderr=subprocess.PIPE, timeout=300)
    assert_one_error_line(res.returncode, res.stderr.decode(), "cannot write to stdout: no space left on device")


def test_binary_output_to_a_terminal_is_refused(png, tmp_path):
    pty = pytest.importorskip("pty")
    leader, follower = pty.openpty()
    try:
        res = subprocess.run([sys.executable, "-m", "lccodec.cli", "encode", str(png), "-"],
                             stdout=follower, stderr=subprocess.PIPE, timeout=300)
    finally:
        os.close(follower)
        os.close(leader)
    assert_one_error_line(res.returncode, res.stderr.decode(), "refusing to write binary data to a terminal")


# --- conventions -----------------------------------------------------------------------------

def test_dash_o_names_the_output_file_and_dash_d_the_folder(png, tmp_path, capsys):
    assert run(["encode", str(png), "-o", str(tmp_path / "named.lic")], capsys)[0] == 0
    assert (tmp_path / "named.lic").read_bytes()[:4] == b"\x89LIC"
    assert run(["decode", str(tmp_path / "named.lic"), "-o", str(tmp_path / "named.png")], capsys)[0] == 0
    assert Image.open(tmp_path / "named.png").size == (56, 40)
    folder = tmp_path / "out"
    folder.mkdir()
    assert run(["encode", str(png), "-d", str(folder)], capsys)[0] == 0
    assert run(["encode", str(png), "-o", str(folder), "-f"], capsys)[0] == 0  # an existing folder
    assert sorted(os.listdir(folder)) == ["in.lic"]
    code, _, err = run(["encode", str(png), "-o", str(tmp_path / "x.lic"), "-d", str(folder)], capsys)
    assert_one_error_line(code, err, "not both")


def test_default_output_goes_beside_the_input_and_is_not_overwritten(png, tmp_path, capsys):
    assert run(["encode", str(png)], capsys)[0] == 0
    lic = tmp_path / "in.lic"
    first = lic.read_bytes()
    code, _, err = run(["encode", str(png), "-q", "2"], capsys)
    assert_one_error_line(code, err, "already exists")
    assert lic.read_bytes() == first
    assert run(["encode", str(png), "-q", "2", "--force"], capsys)[0] == 0
    assert lic.read_bytes() != first
    png.rename(tmp_path / "original.png")
    assert run(["decode", str(lic)], capsys)[0] == 0
    assert Image.open(tmp_path / "in.png").size == (56, 40)
    code, _, err = run(["decode", str(lic)], capsys)
    assert_one_error_line(code, err, "already exists")
    assert run(["decode", str(lic), "-f", "--format", "bmp"], capsys)[0] == 0
    assert Image.open(tmp_path / "in.bmp").format == "BMP"


def test_two_images_are_not_taken_for_input_and_output(png, tmp_path, capsys):
    other = tmp_path / "other.png"
    other.write_bytes(png.read_bytes())
    code, _, err = run(["encode", str(png), str(other)], capsys)
    assert_one_error_line(code, err, "looks like an image")
    assert other.read_bytes() == png.read_bytes()


def _sixteen_bit(tmp_path) -> Path:
    p = tmp_path / "wide.png"
    Image.fromarray(photo_like(24, 32)[..., 0].astype(np.uint16) * 257).save(p)
    return p


def test_quiet_silences_warnings(tmp_path, capsys):
    wide = _sixteen_bit(tmp_path)
    code, _, err = run(["encode", str(wide), str(tmp_path / "a.lic")], capsys)
    assert code == 0 and "lic: warning: 16-bit image reduced to 8 bits" in err
    code, _, err = run(["encode", str(wide), str(tmp_path / "b.lic"), "--quiet"], capsys)
    assert code == 0 and err == ""


def test_threads_and_jobs(png, tmp_path, capsys, monkeypatch):
    import torch

    seen = []
    monkeypatch.setattr(torch, "set_num_threads", seen.append)
    code, _, err = run(["encode", str(png), str(tmp_path / "a.lic"), "--threads", "1"], capsys)
    assert code == 0 and seen == [1] and err == ""
    folder = tmp_path / "out"
    folder.mkdir()
    assert run(["encode", str(png), "-d", str(folder), "--threads", "2"], capsys)[0] == 0
    assert seen == [1, 2]  # in this process when files run one after another
    code, _, err = run(["encode", str(png), str(tmp_path / "b.lic"), "-j", "2"], capsys)
    assert code == 0 and "lic: warning: -j/--jobs runs several files in parallel" in err
    code, text, _ = run(["encode", "--help"], capsys)
    assert "Files processed in parallel" in text and "--threads" in text


def test_bare_lic_prints_short_usage(capsys):
    code, text, err = run([], capsys)
    assert code == 0 and text.startswith("usage: lic encode") and err == ""
    assert len(text.splitlines()) < 10


def test_debug_works_after_the_subcommand(tmp_path, capsys):
    code, _, err = run(["encode", str(tmp_path / "missing.png"), str(tmp_path / "x.lic"), "--debug"], capsys)
    assert code == 1 and "Traceback" in err
    assert err.strip().splitlines()[-1].startswith("lic: error: no such file")


def test_size_target(png, tmp_path, capsys):
    out = tmp_path / "a.lic"
    code, _, err = run(["encode", str(png), str(out), "--size", "400"], capsys)
    assert code == 0 and out.stat().st_size <= 400 and "bytes" in err
    code, _, err = run(["encode", str(png), str(out), "--size", "400", "--bpp", "1"], capsys)
    assert_one_error_line(code, err, "only one of")


def test_bad_metadata_is_warned_and_strip_silences_it(tmp_path, capsys):
    p = tmp_path / "icc.png"
    Image.fromarray(photo_like(16, 16)).save(p, icc_profile=b"\0" * 128)
    code, _, err = run(["encode", str(p), str(tmp_path / "a.lic")], capsys)
    assert code == 0 and "lic: warning: ICC profile dropped: it is not an ICC profile" in err
    for strip in (["--strip"], ["--strip", "icc"]):
        code, _, err = run(["encode", str(p), str(tmp_path / "b.lic"), *strip], capsys)
        assert code == 0 and err == ""


# --- rough edges a new user hit (issue 30) -------------------------------------------------------

def _rgba_lic(tmp_path, capsys) -> Path:
    rgba = tmp_path / "rgba.png"
    alpha = np.zeros((20, 24), np.uint8)
    alpha[:, :12] = 255  # left half opaque, right half transparent
    Image.fromarray(np.dstack([photo_like(20, 24), alpha])).save(rgba)
    assert run(["encode", str(rgba), str(tmp_path / "rgba.lic"), "-m", "hyperprior"], capsys)[0] == 0
    return tmp_path / "rgba.lic"


def test_rgba_to_jpg_is_flattened_onto_white_with_a_warning(tmp_path, capsys):
    lic = _rgba_lic(tmp_path, capsys)
    code, _, err = run(["decode", str(lic), str(tmp_path / "out.jpg")], capsys)
    assert code == 0 and err.strip() == ("lic: warning: JPEG has no alpha channel: the RGBA image is "
                                         "flattened onto white (.png, .webp and .tiff keep alpha)")
    with Image.open(tmp_path / "out.jpg") as im:
        assert im.mode == "RGB" and np.asarray(im)[:, 20:].mean() > 240


def test_a_format_that_cannot_hold_the_image_is_refused_before_decoding(tmp_path, capsys, monkeypatch):
    import lccodec

    lic = _rgba_lic(tmp_path, capsys)
    monkeypatch.setattr(lccodec, "decode", lambda *a, **k: pytest.fail("decoded before refusing"))
    code, _, err = run(["decode", str(lic), str(tmp_path / "out.xbm")], capsys)
    assert_one_error_line(code, err, "XBM files cannot hold RGBA images")


def test_decoding_to_a_symlink_writes_through_it(png, tmp_path, capsys):
    lic = tmp_path / "a.lic"
    assert run(["encode", str(png), str(lic), "-m", "hyperprior"], capsys)[0] == 0
    (tmp_path / "real.png").write_bytes(b"old")
    (tmp_path / "link.png").symlink_to("real.png")
    assert run(["decode", str(lic), str(tmp_path / "link.png")], capsys)[0] == 0
    assert (tmp_path / "link.png").is_symlink() and (tmp_path / "real.png").read_bytes()[:4] == b"\x89PNG"
    (tmp_path / "dangling.png").symlink_to("made.png")
    assert run(["decode", str(lic), str(tmp_path / "dangling.png")], capsys)[0] == 0
    assert (tmp_path / "dangling.png").is_symlink() and (tmp_path / "made.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.skipif(os.geteuid() != 0, reason="mknod needs root (CI runs the suite as root)")
def test_decoding_to_a_device_a_fifo_or_dev_stdout_writes_in_place(png, tmp_path, capsys):
    import stat
    import threading

    lic = tmp_path / "a.lic"
    assert run(["encode", str(png), str(lic), "-m", "hyperprior"], capsys)[0] == 0
    dev = tmp_path / "null"
    os.mknod(dev, 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    assert run(["decode", str(lic), str(dev), "--format", "png"], capsys)[0] == 0
    assert stat.S_ISCHR(os.lstat(dev).st_mode)
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    got = []
    reader = threading.Thread(target=lambda: got.append(fifo.read_bytes()))
    reader.start()
    assert run(["decode", str(lic), str(fifo), "--format", "png"], capsys)[0] == 0
    reader.join(timeout=60)
    assert got and got[0][:4] == b"\x89PNG" and stat.S_ISFIFO(os.lstat(fifo).st_mode)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "src")}
    res = subprocess.run([sys.executable, "-m", "lccodec.cli", "decode", str(lic), "/dev/stdout", "--format", "png"],
                         capture_output=True, env=env, timeout=300)
    assert res.returncode == 0 and res.stdout[:4] == b"\x89PNG", res.stderr
    assert os.path.islink("/dev/stdout") or not os.path.isfile("/dev/stdout")
    assert sorted(os.listdir(tmp_path)) == ["a.lic", "fifo", "in.png", "null"]


def test_info_says_what_layers_and_params_mean(png, tmp_path, capsys):
    for model, params in (("hyperprior", "params: none (this model's files carry no parameters)"),
                          ("reference", "params: 20004000 (4 bytes of model parameters, hex: "
                                        "search_window_rows 32, search_window_cols 64)")):
        lic = tmp_path / f"{model}.lic"
        assert run(["encode", str(png), str(lic), "-m", model], capsys)[0] == 0
        code, text, _ = run(["info", str(lic)], capsys)
        assert code == 0 and "layers: z (hyper-latent), y (main latent)\n" in text
        assert params + "\n" in text and "search_window_rows: " not in text
        assert "metadata: none\n" in text


def test_a_failed_files_path_is_printed_once_in_a_batch(png, tmp_path, capsys):
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    bad, broken = tmp_path / "bad.png", tmp_path / "broken.lic"
    bad.write_bytes(b"not an image")  # its message names the file
    broken.write_bytes(b"\x89LIC" + bytes(40))  # its message does not
    for command, inputs in (("encode", [png, bad]), ("decode", [broken])):
        code, _, err = run([command, *map(str, inputs), "-d", str(out_dir)], capsys)
        line = err.splitlines()[0]
        assert code != 0 and line.startswith("lic: error: ") and line.count(inputs[-1].name) == 1, err


def test_shell_completion_is_documented_and_works():
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    for shell in ("bash", "zsh", "fish"):
        assert f"_LIC_COMPLETE={shell}_source lic" in readme, shell
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "src"),
           "_LIC_COMPLETE": "bash_complete", "COMP_WORDS": "lic enc", "COMP_CWORD": "1"}
    res = subprocess.run([sys.executable, "-m", "lccodec.cli"], capture_output=True, text=True, env=env, timeout=120)
    assert res.returncode == 0 and "plain,encode" in res.stdout.splitlines(), res.stdout
    env.update(_LIC_COMPLETE="bash_source")
    res = subprocess.run([sys.executable, "-m", "lccodec.cli"], capture_output=True, text=True, env=env, timeout=120)
    assert res.returncode == 0 and "complete " in res.stdout and "_lic_completion" in res.stdout


def test_a_library_warning_is_one_lic_warning_line(png, tmp_path, capsys, monkeypatch):
    import warnings

    import lccodec.batch

    real = lccodec.batch.encode_file

    def noisy(*args, **kwargs):
        warnings.warn("Corrupt EXIF data.  Expecting to read 2 bytes\n but only got 0.", UserWarning)
        return real(*args, **kwargs)

    monkeypatch.setattr(lccodec.batch, "encode_file", noisy)
    code, _, err = run(["encode", str(png), str(tmp_path / "a.lic"), "-m", "hyperprior"], capsys)
    assert code == 0 and err == "lic: warning: Corrupt EXIF data. Expecting to read 2 bytes but only got 0.\n"
