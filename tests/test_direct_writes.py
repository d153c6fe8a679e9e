"""safe_files.open_private_direct: big outputs written past the page cache, byte for byte what was given."""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
import pytest

from mia_bridge import safe_files
from mia_bridge.errors import EvidenceError
from mia_bridge.safe_files import DIRECT_IO_ENV, open_private_direct

CHUNK = safe_files._DIRECT_CHUNK
needs_direct = pytest.mark.skipif(not safe_files.direct_io_wanted(), reason="no O_DIRECT on this system")


def _pattern(size: int, seed: int = 7) -> bytes:
    """Bytes that differ from one position to the next, so a chunk written twice or out of place shows."""
    return bytes((index * 31 + seed + index // 251) % 256 for index in range(size))


@needs_direct
@pytest.mark.parametrize("sizes", [
    [0], [1], [CHUNK - 1], [CHUNK], [CHUNK + 1], [3 * CHUNK + 12_345],
    [4096] * 3000, [1, CHUNK, 7, CHUNK - 8, 100_000],
])
def test_the_file_holds_every_byte_in_order(tmp_path: Path, sizes: list[int]) -> None:
    path = tmp_path / "table.csv"
    parts = [_pattern(size, seed) for seed, size in enumerate(sizes)]
    handle = open_private_direct(path)
    for part in parts:
        assert handle.write(part) == len(part)
    assert handle.tell() == sum(sizes)
    handle.close()
    assert path.read_bytes() == b"".join(parts)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


@needs_direct
def test_whole_chunks_go_out_directly_where_the_file_system_takes_them(tmp_path: Path) -> None:
    handle = open_private_direct(tmp_path / "t.bin")
    assert isinstance(handle, safe_files._DirectWriter)
    flags = safe_files.fcntl.fcntl(handle._fd, safe_files.fcntl.F_GETFL)
    handle.write(_pattern(2 * CHUNK + 5))
    # a file system that refuses O_DIRECT makes the writer fall back; either way the flag and the state agree
    still = safe_files.fcntl.fcntl(handle._fd, safe_files.fcntl.F_GETFL) & os.O_DIRECT
    assert bool(still) == handle._direct
    assert flags & os.O_DIRECT or not handle._direct
    handle.close()
    assert (tmp_path / "t.bin").read_bytes() == _pattern(2 * CHUNK + 5)


@needs_direct
def test_a_refused_direct_write_falls_back_and_loses_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A file system without O_DIRECT answers EINVAL at the first direct write (e.g. some FUSE and network
    file systems): the same bytes go through the page cache."""
    real_write = os.write
    refused: list[int] = []

    def write(fd: int, data: memoryview) -> int:
        if safe_files.fcntl.fcntl(fd, safe_files.fcntl.F_GETFL) & os.O_DIRECT:
            refused.append(len(data))
            raise OSError(errno.EINVAL, "Invalid argument")
        return real_write(fd, data)

    monkeypatch.setattr(safe_files.os, "write", write)
    data = _pattern(2 * CHUNK + 99)
    with open_private_direct(tmp_path / "t.bin") as handle:
        handle.write(data)
    assert refused == [CHUNK]  # refused once, then never asked again
    assert (tmp_path / "t.bin").read_bytes() == data


@needs_direct
def test_a_short_direct_write_finishes_the_file_through_the_page_cache(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """After a short write the next offset is unaligned, so O_DIRECT would refuse it: the writer drops it."""
    real_write = os.write
    calls: list[bool] = []

    def write(fd: int, data: memoryview) -> int:
        direct = bool(safe_files.fcntl.fcntl(fd, safe_files.fcntl.F_GETFL) & os.O_DIRECT)
        calls.append(direct)
        if direct and len(calls) == 1:
            return real_write(fd, data[:4096 + 512])  # the kernel may write less than asked
        return real_write(fd, data)

    monkeypatch.setattr(safe_files.os, "write", write)
    data = _pattern(3 * CHUNK + 1)
    with open_private_direct(tmp_path / "t.bin") as handle:
        handle.write(data)
    assert calls[0] is True and not any(calls[1:])
    assert (tmp_path / "t.bin").read_bytes() == data


def test_the_switch_off_gives_an_ordinary_private_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(DIRECT_IO_ENV, "0")
    handle = open_private_direct(tmp_path / "t.bin")
    assert not isinstance(handle, safe_files._DirectWriter)
    with handle:
        handle.write(b"abc")
    assert (tmp_path / "t.bin").read_bytes() == b"abc"
    assert stat.S_IMODE((tmp_path / "t.bin").stat().st_mode) == 0o600


def test_a_planted_symlink_is_refused_as_before(tmp_path: Path) -> None:
    target = tmp_path / "elsewhere.csv"
    (tmp_path / "items.csv").symlink_to(target)
    with pytest.raises(EvidenceError, match="symbolic link"):
        open_private_direct(tmp_path / "items.csv")
    assert not target.exists()


@needs_direct
def test_pyarrow_writers_through_it_write_what_they_write_to_a_plain_file(tmp_path: Path) -> None:
    """The two writers of the output contract (CSV, Parquet) over ``pa.PythonFile``, as outputs.py uses them."""
    rows = range(300_000)
    table = pa.table({"id": pa.array(rows), "text": pa.array([f"<m{i}@x>" * (i % 5) for i in rows])})
    for name, write in (("t.csv", pa_csv.write_csv), ("t.parquet", pq.write_table)):
        with pa.PythonFile(open_private_direct(tmp_path / f"direct-{name}"), mode="w") as sink:
            write(table, sink)
        with pa.PythonFile(open(tmp_path / f"plain-{name}", "wb"), mode="w") as sink:
            write(table, sink)
        assert (tmp_path / f"direct-{name}").read_bytes() == (tmp_path / f"plain-{name}").read_bytes()
    assert pq.read_table(tmp_path / "direct-t.parquet").equals(table)
