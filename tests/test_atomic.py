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


# --- special targets: devices, FIFOs, /dev/stdout in place; symlinks written through -------------

needs_root = pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0,
                                reason="mknod needs root (CI runs the suite as root)")


@needs_root
def test_a_character_device_is_written_in_place(tmp_path):
    import stat

    dev = tmp_path / "null"
    os.mknod(dev, 0o666 | stat.S_IFCHR, os.makedev(1, 3))  # a /dev/null of our own
    write_bytes_atomic(dev, b"data")
    with atomic.atomic_path(dev) as name:
        assert name == dev  # no temp path
        name.write_bytes(b"more")
    assert stat.S_ISCHR(os.lstat(dev).st_mode)
    assert os.listdir(tmp_path) == ["null"]


def test_a_fifo_is_written_in_place(tmp_path):
    import stat
    import threading

    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    got = []
    reader = threading.Thread(target=lambda: got.append(fifo.read_bytes()))
    reader.start()
    write_bytes_atomic(fifo, b"through the pipe")
    reader.join(timeout=30)
    assert got == [b"through the pipe"]
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode) and os.listdir(tmp_path) == ["fifo"]


def test_dev_stdout_is_written_to_the_descriptor(tmp_path):
    import subprocess
    import sys

    script = "from lccodec.atomic import write_bytes_atomic as w; w('/dev/stdout', b'to stdout'); w('/dev/fd/1', b'!')"
    out = tmp_path / "captured"
    with open(out, "wb") as f:  # a regular file behind stdout: not replaced, appended to by fd
        f.write(b"> ")
        f.flush()
        res = subprocess.run([sys.executable, "-c", script], stdout=f, stderr=subprocess.PIPE, timeout=60)
    assert res.returncode == 0, res.stderr
    assert out.read_bytes() == b"> to stdout!"
    assert atomic.output_target("/dev/stdout") == (atomic.Path("/dev/stdout"), True)
    assert atomic.output_target("/proc/self/fd/1")[1] and atomic.output_target("/dev/null")[1]


def test_a_symlink_is_written_through_atomically_at_its_target(tmp_path):
    target = tmp_path / "real.png"
    target.write_bytes(b"old")
    target.chmod(0o600)
    (tmp_path / "link.png").symlink_to("real.png")
    (tmp_path / "chain.png").symlink_to("link.png")
    write_bytes_atomic(tmp_path / "chain.png", b"new")
    assert (tmp_path / "link.png").is_symlink() and (tmp_path / "chain.png").is_symlink()
    assert target.read_bytes() == b"new" and target.stat().st_mode & 0o777 == 0o600
    assert sorted(os.listdir(tmp_path)) == ["chain.png", "link.png", "real.png"]


def test_a_dangling_symlink_creates_its_target_and_a_loop_is_refused(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "dangling").symlink_to("sub/new.bin")
    write_bytes_atomic(tmp_path / "dangling", b"made")
    assert (tmp_path / "sub" / "new.bin").read_bytes() == b"made" and (tmp_path / "dangling").is_symlink()
    (tmp_path / "a").symlink_to("b")
    (tmp_path / "b").symlink_to("a")
    with pytest.raises(LicError, match="cannot write .*a': too many levels of symbolic links"):
        write_bytes_atomic(tmp_path / "a", b"x")
    (tmp_path / "nowhere").symlink_to("missing/x.bin")
    with pytest.raises(LicError, match="no such directory"):
        write_bytes_atomic(tmp_path / "nowhere", b"x")
