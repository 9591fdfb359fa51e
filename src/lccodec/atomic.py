"""Atomic file output: write to a temp file in the target's folder, fsync, then os.replace() it.

The one writer of the package: images, .lic files, weights, checkpoints and benchmark reports all
go through :func:`atomic_output` (a binary file) or :func:`atomic_path` (a temp path, for
writers that want a file name). A reader — or an interrupted run — only ever sees the complete
old file or the complete new one. An existing target keeps its permission bits; a new one gets
the usual ``0666 & ~umask``. :func:`terminate_on_signals` makes SIGTERM and SIGHUP unwind like
Ctrl-C, so the temp file is removed then too.

Special targets (:func:`output_target`): a symlink is written through, atomically at its
target (as cwebp and dwebp do); a character or block device, a FIFO, a socket and
``/dev/stdout``, ``/dev/stderr``, ``/dev/fd/N``, ``/proc/self/fd/N`` are written in place,
with no temp file and no rename (``/dev/null`` stays a device).
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import signal
import stat
import tempfile
from pathlib import Path
from typing import BinaryIO, Iterator

from .errors import LicError

_UMASK = os.umask(0o022)  # read once, at import: flipping it later would race other threads
os.umask(_UMASK)


class Terminated(KeyboardInterrupt):
    """SIGTERM or SIGHUP arrived: unwinds like Ctrl-C (temp files removed), then exits 128+signum."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def _raise_terminated(signum: int, frame: object) -> None:
    raise Terminated(signum)


TERMINATING_SIGNALS = tuple(getattr(signal, n) for n in ("SIGTERM", "SIGHUP") if hasattr(signal, n))


def install_signal_handlers() -> dict[int, object]:
    """Make SIGTERM and SIGHUP raise :class:`Terminated`; returns the handlers they replace."""
    previous = {}
    for sig in TERMINATING_SIGNALS:
        with contextlib.suppress(ValueError, OSError):  # not the main thread: leave it
            previous[sig] = signal.signal(sig, _raise_terminated)
    return previous


@contextlib.contextmanager
def terminate_on_signals() -> Iterator[None]:
    """Within the block SIGTERM and SIGHUP raise :class:`Terminated`; the old handlers come back after."""
    previous = install_signal_handlers()
    try:
        yield
    finally:
        for sig, handler in previous.items():
            with contextlib.suppress(ValueError, OSError, TypeError):
                signal.signal(sig, handler)


def reason(exc: OSError) -> str:
    """A short human reason for an OSError ('permission denied', 'no space left on device'…)."""
    if isinstance(exc, PermissionError):
        return "permission denied"
    if isinstance(exc, IsADirectoryError):
        return "it is a directory"
    if exc.errno == errno.ENOSPC:
        return "no space left on device"
    if exc.errno == errno.ELOOP:
        return "too many levels of symbolic links"
    return exc.strerror or str(exc)


_STDIO_PATHS = {"/dev/stdout": 1, "/dev/stderr": 2}
_FD_PATH = re.compile(r"/dev/fd/(\d+)|/proc/(?:self|thread-self)/fd/(\d+)")
_OPEN_FD_PATH = re.compile(r"/proc/\d+/fd/\d+")


def _open_descriptor(path: Path) -> int | None:
    """The descriptor of this process that `path` names (/dev/stdout, /dev/fd/N…), or None."""
    text = os.path.abspath(path)
    found = _FD_PATH.fullmatch(text)
    return _STDIO_PATHS.get(text, int(next(g for g in found.groups() if g)) if found else None)


def output_target(path: str | os.PathLike) -> tuple[Path, bool]:
    """Where an output named `path` is written, and whether in place (no temp file, no rename).

    In place: a descriptor path (/dev/stdout…) and an existing target that is not a regular file
    or folder (a device, a FIFO). A symlink resolves to its final target (which may not exist
    yet); a loop is a LicError.
    """
    path = Path(path)
    if _open_descriptor(path) is not None or _OPEN_FD_PATH.fullmatch(os.path.abspath(path)):
        return path, True
    try:
        mode = os.stat(path).st_mode  # follows symlinks
    except FileNotFoundError:
        mode = None
    except OSError as exc:
        raise LicError(f"cannot write '{path}': {reason(exc)}") from exc
    if mode is not None and not stat.S_ISREG(mode) and not stat.S_ISDIR(mode):
        return path, True
    if path.is_symlink():  # a loop failed os.stat above (ELOOP)
        return Path(os.path.realpath(path)), False
    return path, False


@contextlib.contextmanager
def _in_place(path: Path) -> Iterator[BinaryIO]:
    """`path` opened for writing as it is: a descriptor path gets a duplicate of that descriptor."""
    fd = _open_descriptor(path)
    try:
        f = os.fdopen(os.dup(fd), "wb") if fd is not None else open(path, "wb")
    except OSError as exc:
        raise LicError(f"cannot write '{path}': {reason(exc)}") from exc
    with f:
        yield f


def _check_target(path: Path) -> None:
    folder = path.parent
    if not folder.is_dir():
        raise LicError(f"cannot write '{path}': no such directory '{folder}'")
    if path.is_dir():
        raise LicError(f"cannot write '{path}': it is a directory")


def _mode_for(path: Path) -> int:
    """The permission bits the new file gets: the target's own, else 0666 & ~umask."""
    try:
        return stat.S_IMODE(path.stat().st_mode)
    except OSError:
        return 0o666 & ~_UMASK


def _install(tmp: str, path: Path) -> None:
    """fsync the finished temp file, give it its permission bits and move it over `path`."""
    try:
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.chmod(tmp, _mode_for(path))
        os.replace(tmp, path)
    except OSError as exc:
        raise LicError(f"cannot write '{path}': {reason(exc)}") from exc


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temp path beside `path` to write to; it replaces `path` if the block completes.

    For writers that want a file name (matplotlib, safetensors). On any exception the temp file
    is removed and `path` is left untouched; failures to create or install the file raise LicError.
    A target written in place (:func:`output_target`) is yielded itself.
    """
    path, in_place = output_target(path)
    if in_place:
        yield path
        return
    _check_target(path)
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        os.close(fd)
    except OSError as exc:
        raise LicError(f"cannot write '{path}': {reason(exc)}") from exc
    try:
        yield Path(tmp)
        _install(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike) -> Iterator[BinaryIO]:
    """Yield a binary file that replaces `path` only if the with-block completes.

    On any exception the temp file is removed and `path` is left untouched; exceptions from
    the block propagate unchanged, failures to create or install the file raise LicError.
    A target written in place (:func:`output_target`: a device, a FIFO, /dev/stdout) is not
    atomic: it gets the bytes as they are written.
    """
    target, in_place = output_target(path)
    with _in_place(target) if in_place else _temp_file(target) as f:
        yield f
        try:
            f.flush()
        except OSError as exc:
            raise LicError(f"cannot write '{path}': {reason(exc)}") from exc


@contextlib.contextmanager
def _temp_file(path: Path) -> Iterator[BinaryIO]:
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        yield f


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> None:
    """Write `data` to `path` atomically; raise LicError when that is impossible."""
    with atomic_output(path) as f:
        try:
            f.write(data)
        except OSError as exc:
            raise LicError(f"cannot write '{path}': {reason(exc)}") from exc


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    """Write UTF-8 `text` to `path` atomically (newlines as given)."""
    write_bytes_atomic(path, text.encode("utf-8"))


def same_file(a: str | os.PathLike, b: str | os.PathLike) -> bool:
    """True when `a` and `b` name the same existing file (used to refuse input == output)."""
    try:
        return os.path.samefile(a, b)
    except OSError:  # one of them does not exist (or cannot be inspected)
        return False
