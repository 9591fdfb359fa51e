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
