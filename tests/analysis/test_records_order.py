"""records.parquet comes out in input order without a sort when the base records are provably in ``rec`` order
(embedded.SCAN_ORDERED), sorted otherwise, and a scan that lost the order stops the run."""

from __future__ import annotations

import dataclasses
import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mia_bridge.analysis.api import AnalysisOptions
from mia_bridge.analysis.base_tables import BaseTables
from mia_bridge.analysis.engines import embedded
from mia_bridge.analysis.ingest import ingest_files
from mia_bridge.errors import ExportError

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
from gen_records import generate


def _base(tmp_path: Path) -> BaseTables:
    """3,000 generated records (a tenth repeated, so de-duplication removes rows) parsed by two workers in
    blocks of 64 KB: dozens of record parts, written as the workers finish."""
    records = list(generate(3000, seed=5))
    records += records[::10]
    path = tmp_path / "in.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in records) + "\n", encoding="utf-8")
    return ingest_files([path], AnalysisOptions(), tmp_path / "work", workers=2, block_bytes=64 << 10,
                        parallel_from=0)


def _records(base: BaseTables, work: Path) -> tuple[pa.Table, embedded.EmbeddedEngine]:
    engine = embedded.EmbeddedEngine(work, threads=2)
    result = engine.run(base, embedded.Parameters())
    return pq.read_table(result.files["records"]), engine


def _expected(base: BaseTables) -> pa.Table:
    """The straightforward answer: every kept record, sorted by rec."""
    table = pq.read_table(base.records)
    kept = table.filter(pa.compute.invert(pa.compute.fill_null(table.column("duplicate"), False)))
    return kept.sort_by("rec")


def test_the_scan_gives_the_records_in_input_order(tmp_path: Path) -> None:
    base = _base(tmp_path)
    assert len(list(base.records.glob("*.parquet"))) > 10
    records, engine = _records(base, tmp_path / "engine")
    assert engine._records_in_order  # the sort was skipped
    expected = _expected(base)
    assert 3000 == records.num_rows == expected.num_rows  # the 300 copies removed
    assert records.column("record_id").to_pylist() == expected.column("record_id").to_pylist()
    assert records.column("raw_json").to_pylist() == expected.column("raw_json").to_pylist()


def test_parts_whose_names_do_not_follow_rec_are_sorted(tmp_path: Path) -> None:
    """A base whose file names run against rec (e.g. written by another tool) takes the sort: same output."""
    base = _base(tmp_path)
    reordered = tmp_path / "reordered"
    reordered.mkdir()
    parts = sorted(base.records.glob("*.parquet"))
    for index, part in enumerate(reversed(parts)):
        shutil.copy(part, reordered / f"part-{index:06d}.parquet")
    assert not embedded._in_rec_order(reordered)
    base = dataclasses.replace(base, records=reordered)
    records, engine = _records(base, tmp_path / "engine")
    assert not engine._records_in_order
    assert records.column("record_id").to_pylist() == _expected(base).column("record_id").to_pylist()


def test_rec_order_needs_statistics_and_no_overlap(tmp_path: Path) -> None:
    rows = pa.table({"rec": pa.array(np.arange(10, dtype=np.int64)), "x": pa.array(range(10))})
    (tmp_path / "ok").mkdir()
    pq.write_table(rows.slice(0, 5), tmp_path / "ok" / "part-1.parquet")
    pq.write_table(rows.slice(5), tmp_path / "ok" / "part-2.parquet")
    assert embedded._in_rec_order(tmp_path / "ok")
    (tmp_path / "overlap").mkdir()
    pq.write_table(rows.slice(0, 6), tmp_path / "overlap" / "part-1.parquet")
    pq.write_table(rows.slice(5), tmp_path / "overlap" / "part-2.parquet")
    assert not embedded._in_rec_order(tmp_path / "overlap")
    (tmp_path / "nostats").mkdir()
    pq.write_table(rows, tmp_path / "nostats" / "part-1.parquet", write_statistics=False)
    assert not embedded._in_rec_order(tmp_path / "nostats")
    pq.write_table(rows.drop(["rec"]), tmp_path / "norec.parquet")
    assert not embedded._in_rec_order(tmp_path / "norec.parquet")


def test_a_batch_out_of_order_stops_the_run() -> None:
    def batches(*runs: list[int]) -> list[pa.RecordBatch]:
        return [pa.record_batch({"rec": pa.array(run, pa.int64())}) for run in runs]

    assert len(list(embedded._scan_ordered(iter(batches([0, 1, 2], [], [3, 7])), 0))) == 3
    with pytest.raises(ExportError, match="out of input order"):
        list(embedded._scan_ordered(iter(batches([0, 1, 2], [2, 3])), 0))  # across batches
    with pytest.raises(ExportError, match="out of input order"):
        list(embedded._scan_ordered(iter(batches([0, 5, 4])), 0))  # inside a batch
