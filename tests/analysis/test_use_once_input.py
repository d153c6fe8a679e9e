"""A plain JSON-lines input larger than a quarter of physical memory is read once: each block's pages leave the
page cache once parsed (``ingest._use_once``), so they do not push out the work folder's tables. The base tables
are the same either way; smaller inputs keep their pages."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from pytest_mock import MockerFixture

from mia_bridge.analysis.api import AnalysisOptions
from mia_bridge.analysis.ingest import ingest_files

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
from gen_records import generate_realistic, write_jsonl

pytestmark = pytest.mark.skipif(not hasattr(os, "posix_fadvise"), reason="no posix_fadvise on this system")
BLOCK = 65536


def _input(tmp_path: Path) -> Path:
    path = tmp_path / "records.jsonl"
    write_jsonl(path, iter(generate_realistic(600, seed=5)))
    return path


def _tables(path: Path, work: Path) -> dict[str, list[dict[str, object]]]:
    tables = ingest_files([path], AnalysisOptions(), work, workers=1, block_bytes=BLOCK, parallel_from=0)
    return {name: pq.read_table(getattr(tables, name)).to_pylist() for name in ("records", "folders", "items")}


def test_a_large_input_leaves_the_page_cache_block_by_block(tmp_path: Path, mocker: MockerFixture) -> None:
    path = _input(tmp_path)
    kept = _tables(path, tmp_path / "kept")
    size = path.stat().st_size
    real_sysconf = os.sysconf
    pages = size // os.sysconf("SC_PAGE_SIZE")  # physical memory: about the input's size, so it is "large"
    mocker.patch("os.sysconf", side_effect=lambda name: pages if name == "SC_PHYS_PAGES" else real_sysconf(name))
    advise = mocker.spy(os, "posix_fadvise")
    forgot = _tables(path, tmp_path / "forgot")
    assert forgot == kept
    calls = [c.args[1:] for c in advise.call_args_list]
    assert len(calls) >= size // BLOCK and all(c[2] == os.POSIX_FADV_DONTNEED for c in calls)
    covered = 0
    for start, length, _ in calls:  # block after block, the whole file, once
        assert start == covered and length > 0
        covered += length
    assert covered == size


def test_a_small_input_keeps_its_pages(tmp_path: Path, mocker: MockerFixture) -> None:
    path = _input(tmp_path)
    advise = mocker.spy(os, "posix_fadvise")
    _tables(path, tmp_path / "work")
    assert advise.call_count == 0
