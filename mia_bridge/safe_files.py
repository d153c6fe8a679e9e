"""Writing inside a case folder: private modes, never through a symlink.

A case holds mail subjects, addresses and the tenant's audit trail: folders are created ``0700`` and files
``0600`` (whatever the umask). A file is opened with ``O_NOFOLLOW``, so a symlink planted in ``evidence/``
or ``state/`` (dangling or not) makes the write fail instead of redirecting it outside the case.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import IO, Any

from mia_bridge.errors import EvidenceError

DIR_MODE = 0o700
FILE_MODE = 0o600
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_FLAGS = {
    "w": os.O_WRONLY | os.O_CREAT | os.O_TRUNC,
    "a": os.O_WRONLY | os.O_CREAT | os.O_APPEND,
    "x": os.O_WRONLY | os.O_CREAT | os.O_EXCL,
    "r+": os.O_RDWR,
}


def _symlink_error(path: Path) -> EvidenceError:
    return EvidenceError(f"{path}: is a symbolic link; refusing to write through it",
                         hint="a case folder never holds links: someone planted it; inspect the folder")


def make_dir(path: Path) -> Path:
    """Create ``path`` (and missing parents) with mode 0700; refuse a symlink at ``path``."""
    path = Path(path)
    if path.is_symlink():
        raise _symlink_error(path)
    if not path.is_dir():
        path.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
        os.chmod(path, DIR_MODE)  # mkdir applies the umask; a case folder is private whatever it is
    return path


def open_private(path: Path, mode: str = "w", *, encoding: str | None = "utf-8", newline: str | None = None) -> IO[Any]:
    """Open ``path`` for writing (``w``, ``a``, ``x``, ``r+``; add ``b`` for bytes) with ``O_NOFOLLOW`` and mode
    0600 for a new file. The parent folder is created (0700) when missing."""
    path = Path(path)
    binary = "b" in mode
    base = mode.replace("b", "")
    make_dir(path.parent)
    try:
        fd = os.open(path, _FLAGS[base] | _NOFOLLOW | getattr(os, "O_CLOEXEC", 0), FILE_MODE)
    except OSError as exc:
        if path.is_symlink():
            raise _symlink_error(path) from None
        raise exc
    try:
        if stat.S_IMODE(os.fstat(fd).st_mode) != FILE_MODE:
            os.fchmod(fd, FILE_MODE)
        py_mode = {"w": "w", "a": "a", "x": "w", "r+": "r+"}[base] + ("b" if binary else "")
        if binary:
            return os.fdopen(fd, py_mode)
        return os.fdopen(fd, py_mode, encoding=encoding, newline=newline)
    except BaseException:
        os.close(fd)
        raise


def write_text(path: Path, text: str) -> Path:
    """``path.write_text`` through ``open_private``."""
    with open_private(path, "w") as handle:
        handle.write(text)
    return path


def write_bytes(path: Path, data: bytes) -> Path:
    with open_private(path, "wb") as handle:
        handle.write(data)
    return path


def make_private(path: Path) -> None:
    """Set 0600 on a file (0700 on a folder) written by a library that chose its own mode; links are left alone."""
    if path.is_symlink() or not path.exists():
        return
    os.chmod(path, DIR_MODE if path.is_dir() else FILE_MODE)
