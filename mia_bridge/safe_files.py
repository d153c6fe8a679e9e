"""Writing inside a case folder: private modes, never through a symlink.

A case holds mail subjects, addresses and the tenant's audit trail: folders are created ``0700`` and files
``0600`` (whatever the umask). A file is opened with ``O_NOFOLLOW``, so a symlink planted in ``evidence/``
or ``state/`` (dangling or not) makes the write fail instead of redirecting it outside the case.
"""

from __future__ import annotations

import errno
import io
import mmap
import os
import stat
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

try:
    import fcntl
except ImportError:  # Windows: no O_DIRECT either
    fcntl = None  # type: ignore[assignment]

if TYPE_CHECKING:
    from _typeshed import ReadableBuffer

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


DIRECT_IO_ENV = "MIA_DIRECT_IO"  # "0": write big outputs through the page cache, as every other file
_DIRECT_CHUNK = 8 << 20  # bytes per direct write: a multiple of any block size, from a page-aligned buffer


def direct_io_wanted() -> bool:
    """Whether big outputs are written past the page cache (``open_private_direct``)."""
    return fcntl is not None and hasattr(os, "O_DIRECT") and os.environ.get(DIRECT_IO_ENV, "1") != "0"


class _DirectWriter(io.RawIOBase):
    """A write-only file that sends whole chunks of a page-aligned buffer with ``O_DIRECT`` (what it needs:
    aligned memory, offsets and sizes) and the last, partial chunk without it.

    Where a direct write is refused (a file system without ``O_DIRECT`` says EINVAL) or comes back short (the
    next offset would be unaligned), the rest of the file is written through the page cache instead: the bytes
    and their order are the same either way. Used by one thread at a time.
    """

    def __init__(self, fd: int) -> None:
        super().__init__()
        self._fd = fd
        self._buffer = mmap.mmap(-1, _DIRECT_CHUNK)  # page-aligned
        self._view = memoryview(self._buffer)
        self._fill = 0
        self._position = 0
        self._direct = self._set_direct(True)

    def _set_direct(self, on: bool) -> bool:
        try:
            flags = fcntl.fcntl(self._fd, fcntl.F_GETFL)
            fcntl.fcntl(self._fd, fcntl.F_SETFL, flags | os.O_DIRECT if on else flags & ~os.O_DIRECT)
        except OSError:
            return False
        return on

    def writable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._position

    def write(self, data: ReadableBuffer) -> int:
        source = memoryview(data).cast("B")
        size, done = len(source), 0
        while done < size:
            take = min(_DIRECT_CHUNK - self._fill, size - done)
            self._view[self._fill:self._fill + take] = source[done:done + take]
            self._fill += take
            done += take
            if self._fill == _DIRECT_CHUNK:
                self._send()
        self._position += size
        return size

    def _send(self) -> None:
        """Write the buffer's ``_fill`` bytes (directly while that works) and empty it."""
        sent = 0
        while sent < self._fill:
            with self._view[sent:self._fill] as rest:
                try:
                    written = os.write(self._fd, rest)
                except OSError as exc:
                    if not (self._direct and exc.errno == errno.EINVAL):
                        raise
                    self._direct = self._set_direct(False)  # a file system without O_DIRECT
                    continue
            sent += written
            if self._direct and (written % mmap.PAGESIZE or sent < self._fill):
                self._direct = self._set_direct(False)  # short: the next offset is not aligned
        self._fill = 0

    def close(self) -> None:
        if self.closed:
            return
        try:
            if self._direct:
                self._direct = self._set_direct(False)  # the partial chunk: any size
            self._send()
        finally:
            self._view.release()
            self._buffer.close()
            os.close(self._fd)
            super().close()


def open_private_direct(path: Path) -> IO[bytes] | io.RawIOBase:
    """``open_private(path, "wb")`` for a big output written once from start to end (an analysis table): past
    the page cache where the system has ``O_DIRECT`` (Linux) and ``MIA_DIRECT_IO`` is not "0".

    Why: through the page cache each byte costs the kernel a copy and fresh pages to hold it. On the 2-core
    virtual machine of BENCHMARKS.md (issue 14, 2026-12-03 morning) a 1,000,000-record analysis writes 2.5 GB
    of tables; its system time was 14-44 s through the page cache and 9-15 s written directly, its median wall
    time 2 and 7 s less in two sets of runs.
    """
    handle = open_private(path, "wb")
    if not direct_io_wanted():
        return handle
    fd = os.dup(handle.fileno())
    handle.close()
    try:
        return _DirectWriter(fd)
    except BaseException:
        os.close(fd)
        raise


def make_private(path: Path) -> None:
    """Set 0600 on a file (0700 on a folder) written by a library that chose its own mode; links are left alone."""
    if path.is_symlink() or not path.exists():
        return
    os.chmod(path, DIR_MODE if path.is_dir() else FILE_MODE)
