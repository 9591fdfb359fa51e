import os

import pytest

from lccodec import atomic
from lccodec.atomic import atomic_output, same_file, write_bytes_atomic
from lccodec.errors import LicError


def test_write_and_replace(tmp_path):
    p = tmp_path / "out.bin"
    write_bytes_atomic(p, b"one")
    write_bytes_atomic(str(p), b"two")
    assert p.read_bytes() == b"two"
    assert os.listdir(tmp_path) == ["out.bin"]
    assert p.stat().st_mode & 0o777 == 0o666 & ~atomic._UMASK  # usual permissions, not mkstemp's 0600


def test_failure_leaves_nothing_behind(tmp_path):
    p = tmp_path / "out.bin"
    p.write_bytes(b"old")
    with pytest.raises(RuntimeError):
        with atomic_output(p) as f:
            f.write(b"partial")
            raise RuntimeError("boom")
    assert p.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["out.bin"]


def test_missing_directory(tmp_path):
    with pytest.raises(LicError, match="no such directory"):
        write_bytes_atomic(tmp_path / "nope" / "x.bin", b"")


def test_target_is_directory(tmp_path):
    with pytest.raises(LicError, match="it is a directory"):
        write_bytes_atomic(tmp_path, b"")


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root ignores permissions")
def test_permission_denied(tmp_path):
    d = tmp_path / "ro"
    d.mkdir()
    d.chmod(0o500)
    try:
        with pytest.raises(LicError, match=r"cannot write '.*x\.bin': permission denied"):
            write_bytes_atomic(d / "x.bin", b"data")
    finally:
        d.chmod(0o700)
    assert os.listdir(d) == []


def test_same_file(tmp_path):
    a = tmp_path / "a"
    a.write_bytes(b"")
    assert same_file(a, tmp_path / "." / "a")
    assert not same_file(a, tmp_path / "b")
    (tmp_path / "b").write_bytes(b"")
    assert not same_file(a, tmp_path / "b")
    os.link(a, tmp_path / "hard")
    assert same_file(a, tmp_path / "hard")


def test_permission_denied_message(tmp_path, monkeypatch):
    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(atomic.tempfile, "mkstemp", refuse)
    with pytest.raises(LicError, match=r"cannot write '.*x\.bin': permission denied"):
        write_bytes_atomic(tmp_path / "x.bin", b"data")


def test_existing_target_keeps_its_permission_bits(tmp_path):
    p = tmp_path / "private.bin"
    p.write_bytes(b"old")
    p.chmod(0o600)
    write_bytes_atomic(p, b"new")
    assert p.read_bytes() == b"new" and p.stat().st_mode & 0o777 == 0o600


def test_writers_never_flip_the_umask(tmp_path, monkeypatch):
    """The process umask is read once at import: flipping it per write races other threads."""
    from lccodec.bench.report import write_json

    def no_umask(*args):
        raise AssertionError("os.umask called")

    monkeypatch.setattr(os, "umask", no_umask)
    atomic.write_text_atomic(tmp_path / "a.txt", "héllo\n")
    with atomic.atomic_path(tmp_path / "b.bin") as tmp:
        tmp.write_bytes(b"b")
    write_json(tmp_path / "c.json", {"x": 1})
    assert (tmp_path / "a.txt").read_text(encoding="utf-8") == "héllo\n"
    assert sorted(os.listdir(tmp_path)) == ["a.txt", "b.bin", "c.json"]
    assert (tmp_path / "b.bin").stat().st_mode & 0o777 == 0o666 & ~atomic._UMASK


def test_every_write_is_fsynced(tmp_path, monkeypatch):
    synced = []
    real = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (synced.append(fd), real(fd)))
    write_bytes_atomic(tmp_path / "a", b"a")
    with atomic.atomic_path(tmp_path / "b") as tmp:
        tmp.write_bytes(b"b")
    assert len(synced) == 2


@pytest.mark.parametrize("sig", ["SIGTERM", "SIGHUP"])
def test_termination_signals_remove_the_temp_file(tmp_path, sig):
    import signal
    import subprocess
    import sys

    if not hasattr(signal, sig):
        pytest.skip(f"no {sig} here")
    script = f"""
import os, signal, sys, time
from lccodec import atomic
with atomic.terminate_on_signals():
    try:
        with atomic.atomic_output(sys.argv[1]) as f:
            f.write(b"partial")
            os.kill(os.getpid(), signal.{sig})
            time.sleep(10)
    except atomic.Terminated as exc:
        sys.exit(128 + exc.signum)
"""
    out = tmp_path / "out.bin"
    res = subprocess.run([sys.executable, "-c", script, str(out)], timeout=60)
    assert res.returncode == 128 + getattr(signal, sig)
    assert os.listdir(tmp_path) == []
