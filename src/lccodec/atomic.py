"""Atomic file output: write to a temp file in the target's folder, then os.replace() it."""

from __future__ import annotations

import contextlib
import errno
import os
import tempfile
from pathlib import Path
from typing import BinaryIO, Iterator

from .errors import LicError

_UMASK = os.umask(0o022)
os.umask(_UMASK)


def _reason(exc: OSError) -> str:
    if isinstance(exc, PermissionError):
        return "permission denied"
    if isinstance(exc, IsADirectoryError):
        return "it is a directory"
    if exc.errno == errno.ENOSPC:
        return "no space left on device"
    return exc.strerror or str(exc)


def _check_target(path: Path) -> None:
    folder = path.parent
    if not folder.is_dir():
        raise LicError(f"cannot write '{path}': no such directory '{folder}'")
    if path.is_dir():
        raise LicError(f"cannot write '{path}': it is a directory")


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike) -> Iterator[BinaryIO]:
    """Yield a binary file that replaces `path` only if the with-block completes.

    On any exception the temp file is removed and `path` is left untouched; exceptions from
    the block propagate unchanged, failures to create or install the file raise LicError.
    """
    path = Path(path)
    _check_target(path)
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as exc:
        raise LicError(f"cannot write '{path}': {_reason(exc)}") from exc
    try:
        with os.fdopen(fd, "wb") as f:
            yield f
            try:
                f.flush()
                os.fsync(f.fileno())
            except OSError as exc:
                raise LicError(f"cannot write '{path}': {_reason(exc)}") from exc
        try:
            os.chmod(tmp, 0o666 & ~_UMASK)
            os.replace(tmp, path)
        except OSError as exc:
            raise LicError(f"cannot write '{path}': {_reason(exc)}") from exc
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> None:
    """Write `data` to `path` atomically; raise LicError when that is impossible."""
    with atomic_output(path) as f:
        try:
            f.write(data)
        except OSError as exc:
            raise LicError(f"cannot write '{path}': {_reason(exc)}") from exc


def same_file(a: str | os.PathLike, b: str | os.PathLike) -> bool:
    """True when `a` and `b` name the same existing file (used to refuse input == output)."""
    try:
        return os.path.samefile(a, b)
    except OSError:  # one of them does not exist (or cannot be inspected)
        return False
