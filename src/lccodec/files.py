"""Inputs and outputs by name: '-' for stdin/stdout, clear errors, refusals before any work.

Files are written atomically (:mod:`lccodec.atomic`); stdout is refused when it is a terminal
(binary data there helps nobody, as gzip and zstd say).
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

from .errors import LicError

STDIO = "-"  # the path that means stdin (as a source) or stdout (as a destination)


def read_input(source: str) -> bytes:
    """The bytes of a file, or of stdin for '-'."""
    return sys.stdin.buffer.read() if source == STDIO else read_file(source)


def read_file(source: str | os.PathLike) -> bytes:
    """The bytes of a file; LicError naming it when it cannot be read."""
    path = Path(source)
    if path.is_dir():
        raise LicError(f"'{source}' is a directory")
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise LicError(f"no such file: '{source}'") from None
    except PermissionError:
        raise LicError(f"cannot read '{source}': permission denied") from None
    except OSError as exc:
        raise LicError(f"cannot read '{source}': {exc.strerror or exc}") from None


def write_output(destination: str, data: bytes) -> None:
    """Write bytes atomically to a file, or to stdout for '-'."""
    from .atomic import reason, write_bytes_atomic

    if destination != STDIO:
        write_bytes_atomic(destination, data)
        return
    try:
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
    except BrokenPipeError:
        raise
    except OSError as exc:
        raise LicError(f"cannot write to stdout: {reason(exc)}") from None


def check_paths(source: str, destination: str, *, overwrite: bool = True, force: bool = False) -> None:
    """Refuse, before any work: input == output, an existing output when `overwrite` is false,
    and binary output to a terminal unless `force` (as gzip and zstd do)."""
    from .atomic import same_file

    if destination == STDIO:
        if not force and sys.stdout.isatty():
            raise LicError("refusing to write binary data to a terminal: redirect stdout, "
                           "or name an output file (-f forces)")
        return
    if source != STDIO and (os.path.abspath(source) == os.path.abspath(destination)
                            or same_file(source, destination)):
        raise LicError(f"input and output are the same file: '{source}'")
    if not overwrite and os.path.lexists(destination):
        raise LicError(f"'{destination}' already exists; not overwritten (-f/--force overwrites)")
