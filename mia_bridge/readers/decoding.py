"""Bytes to text: gzip, BOMs (UTF-8, UTF-16 LE/BE), BOM-less UTF-16, Windows ANSI, binary junk.

Windows PowerShell writes ``-Encoding Unicode`` as UTF-16 LE with a BOM and its default ``Export-Csv`` as
ASCII; PowerShell 7 writes UTF-8 without a BOM; the Sentinel portal writes UTF-8 with a BOM.
"""

from __future__ import annotations

import codecs
import gzip
import io
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, TextIO

from mia_bridge.errors import UnreadableInput

_GZIP_MAGIC = b"\x1f\x8b"
_PROBE = 64 * 1024


@dataclass(frozen=True)
class DecodedInput:
    """An input file with its container and text encoding worked out."""

    path: Path
    gzipped: bool
    encoding: str  # a Python codec name; "utf-8-sig"/"utf-16" consume the BOM

    def open_binary(self) -> BinaryIO:
        raw = self.path.open("rb")
        return gzip.GzipFile(fileobj=raw) if self.gzipped else raw  # type: ignore[return-value]

    def open_text(self) -> TextIO:
        # newline="" keeps CRLF and embedded newlines intact for the csv module.
        # errors="replace": a stray invalid byte must not abort the whole file; the bytes stay in the input.
        return io.TextIOWrapper(self.open_binary(), encoding=self.encoding, errors="replace", newline="")

    def head(self, size: int = _PROBE) -> str:
        with self.open_text() as handle:
            return handle.read(size)


def _looks_binary(sample: bytes) -> bool:
    if not sample:
        return False
    if b"\x00" in sample:
        return True
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


def decode_input(path: Path) -> DecodedInput:
    """Work out how to read ``path``; raise ``UnreadableInput`` for missing, empty or binary files."""
    name = str(path)
    if not path.exists():
        raise UnreadableInput(name, "no such file")
    if path.is_dir():
        raise UnreadableInput(name, "is a directory, not a file")
    try:
        with path.open("rb") as handle:
            magic = handle.read(2)
    except OSError as exc:
        raise UnreadableInput(name, f"cannot open: {exc.strerror or exc}") from None
    gzipped = magic == _GZIP_MAGIC
    try:
        if gzipped:
            with gzip.open(path, "rb") as handle:
                sample = handle.read(_PROBE)
        else:
            with path.open("rb") as handle:
                sample = handle.read(_PROBE)
    except (OSError, EOFError) as exc:
        raise UnreadableInput(name, f"corrupt gzip container: {exc}") from None
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
    return DecodedInput(path=path, gzipped=gzipped, encoding=encoding)
