"""Bytes to text: gzip, BOMs (UTF-8, UTF-16 LE/BE), BOM-less UTF-16, Windows ANSI, binary junk.

Windows PowerShell writes ``-Encoding Unicode`` as UTF-16 LE with a BOM and its default ``Export-Csv`` as
ASCII; PowerShell 7 writes UTF-8 without a BOM; the Sentinel portal writes UTF-8 with a BOM.
"""

from __future__ import annotations

import codecs
import gzip
import io
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, TextIO

from mia_bridge.errors import UnreadableInput
from mia_bridge.readers.values import DEFAULT_MAX_RECORD_BYTES

_GZIP_MAGIC = b"\x1f\x8b"
_PROBE = 64 * 1024
# A gzip input may expand this many times its compressed size (audit-log JSON and CSV compress 5-20x),
# checked once the output passes GZIP_RATIO_FLOOR: a 2 MB file expanding to gigabytes is a bomb.
MAX_GZIP_RATIO = 200
GZIP_RATIO_FLOOR = 64 << 20


class DecompressionLimit(OSError):
    """A gzip input expands past ``MAX_GZIP_RATIO`` times its compressed size."""


class _BoundedGzip(io.RawIOBase):
    """A gzip stream that stops with ``DecompressionLimit`` when its output outgrows the allowed ratio."""

    def __init__(self, raw: BinaryIO, damage: list[str]) -> None:
        super().__init__()
        self._raw = raw
        self._gzip = gzip.GzipFile(fileobj=raw)
        self._damage = damage
        self._ended = False
        self.produced = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        if self._ended:
            return 0
        # read1: one decompression step. Damage ends the stream like its end would (a buffered reader would
        # throw away what it had gathered), and is recorded in ``DecodedInput.damage`` for the reader to report.
        try:
            data = self._gzip.read1(len(buffer))
        except (EOFError, OSError) as exc:
            self._ended = True
            self._damage.append(f"damaged gzip data after {self.produced:,} decompressed bytes "
                                f"(compressed byte {self._raw.tell():,}): {exc}")
            return 0
        count = len(data)
        buffer[:count] = data
        self.produced += count
        if self.produced > GZIP_RATIO_FLOOR and self.produced > MAX_GZIP_RATIO * max(self._raw.tell(), 1):
            raise DecompressionLimit(
                f"decompressed data passed {MAX_GZIP_RATIO}x the compressed size at byte {self.produced:,} "
                f"(compressed byte {self._raw.tell():,}): a decompression bomb, or not an export"
            )
        return count

    def close(self) -> None:
        try:
            self._gzip.close()
        finally:
            self._raw.close()
            super().close()


def file_kind(path: Path) -> str | None:
    """None for a regular file (or a link to one), else what it is; never opens it (a FIFO would block)."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return "no such file"
    except OSError as exc:
        return f"cannot be read: {exc.strerror or exc}"
    if stat.S_ISREG(mode):
        return None
    for test, kind in ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO (named pipe)"),
                       (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                       (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return kind
    return "not a regular file"


@dataclass(frozen=True)
class DecodedInput:
    """An input file with its container and text encoding worked out."""

    path: Path
    gzipped: bool
    encoding: str  # a Python codec name; "utf-8-sig"/"utf-16" consume the BOM
    max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES
    # Damage found while reading (a truncated or corrupt gzip stream ends early): one entry per time found.
    damage: list[str] = field(default_factory=list, compare=False, repr=False)

    def open_binary(self) -> BinaryIO:
        raw = self.path.open("rb")
        if not self.gzipped:
            return raw
        return io.BufferedReader(_BoundedGzip(raw, self.damage), 1 << 20)  # type: ignore[return-value]

    def open_text(self) -> TextIO:
        # newline="" keeps CRLF and embedded newlines intact for the csv module.
        # errors="replace": a stray invalid byte must not abort the whole file; the bytes stay in the input.
        return io.TextIOWrapper(self.open_binary(), encoding=self.encoding, errors="replace", newline="")

    def head(self, size: int = _PROBE) -> str:
        with self.open_text() as handle:
            return handle.read(size)


def _looks_binary(sample: bytes) -> bool:
    """Mostly control bytes. A NUL byte alone does not make a file binary: it is the problem of the record
    that holds it, wherever it is (quarantined), not of the whole file."""
    if not sample:
        return False
    controls = sum(1 for b in sample if b < 32 and b not in (9, 10, 13, 12))
    return controls / len(sample) > 0.05


def _bomless_utf16(sample: bytes) -> str | None:
    """Guess UTF-16 without a BOM from where the zero bytes sit (ASCII-heavy text)."""
    if len(sample) < 4:
        return None
    even = sample[0::2].count(0) / (len(sample) / 2)
    odd = sample[1::2].count(0) / (len(sample) / 2)
    if odd > 0.4 and even < 0.05:
        return "utf-16-le"
    if even > 0.4 and odd < 0.05:
        return "utf-16-be"
    return None


def decode_input(path: Path, max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES) -> DecodedInput:
    """Work out how to read ``path``; raise ``UnreadableInput`` for missing, empty, binary or non-regular
    files (a FIFO or a device is refused before it is opened)."""
    name = str(path)
    kind = file_kind(path)
    if kind is not None:
        raise UnreadableInput(name, kind if kind.startswith(("no such", "cannot")) else f"is {kind}, not a file")
    try:
        with path.open("rb") as handle:
            magic = handle.read(2)
    except OSError as exc:
        raise UnreadableInput(name, f"cannot open: {exc.strerror or exc}") from None
    gzipped = magic == _GZIP_MAGIC
    sample = b""
    try:
        probe = DecodedInput(path, gzipped, "latin-1", max_record_bytes)
        with probe.open_binary() as handle:
            while len(sample) < _PROBE and (piece := handle.read(4096)):
                sample += piece
    except (OSError, EOFError) as exc:
        raise UnreadableInput(name, f"corrupt gzip container: {exc}") from None
    if probe.damage and not sample:  # a damaged container after a readable start is read up to the damage
        raise UnreadableInput(name, f"corrupt gzip container: {probe.damage[0]}")
    if not sample.strip():
        raise UnreadableInput(name, "empty file (no records)")
    if sample.startswith(codecs.BOM_UTF8):
        encoding = "utf-8-sig"
    elif sample.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        encoding = "utf-16"
    elif (guess := _bomless_utf16(sample)) is not None:
        encoding = guess
    elif _looks_binary(sample):
        raise UnreadableInput(name, "binary data, not a text audit-log export", hint="is it a zip? unzip it first")
    else:
        try:
            sample.decode("utf-8")
            encoding = "utf-8"
        except UnicodeDecodeError as exc:
            # A cut multi-byte sequence at the probe's end is still UTF-8.
            encoding = "utf-8" if exc.start >= len(sample) - 3 else "cp1252"
    return DecodedInput(path=path, gzipped=gzipped, encoding=encoding, max_record_bytes=max_record_bytes)
