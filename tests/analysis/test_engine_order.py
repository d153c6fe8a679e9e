"""The embedded engine's shortcuts on data already in order give the same tables as sorting it."""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mia_bridge.analysis.api import AnalysisOptions
from mia_bridge.analysis.base_tables import BaseTables
from mia_bridge.analysis.engines import embedded
from mia_bridge.analysis.engines.embedded import EmbeddedEngine, Parameters
from mia_bridge.analysis.ingest import ingest_records

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
from gen_records import generate, generate_realistic

PERIOD = Parameters(start=datetime(2024, 5, 3, tzinfo=UTC), end=datetime(2024, 5, 20, tzinfo=UTC))


@pytest.fixture(scope="module", params=["realistic", "uniform"])
def base(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> BaseTables:
    """Base tables whose records dataset is several files of small row groups (DuckDB scans them in parallel).
    The uniform shape is in time order (its items need no sort either), the realistic one is not."""
    work = tmp_path_factory.mktemp("ingest")
    make = generate_realistic if request.param == "realistic" else generate
    records = [json.dumps(r) for r in make(6000, seed=3)]
    tables = ingest_records(records, "live", AnalysisOptions(), work / "base")
    table = pq.read_table(tables.records)
    parts = work / "records"
    parts.mkdir()
    for number, start in enumerate(range(0, table.num_rows, 1500)):
        pq.write_table(table.slice(start, 1500), parts / f"part-{number:06d}.parquet", row_group_size=100)
    return BaseTables(records=parts, folders=tables.folders, items=tables.items, quarantine=tables.quarantine,
                      read=tables.read, parsed=tables.parsed, quarantined=tables.quarantined)


def _tables(base: BaseTables, work: Path) -> dict[str, pa.Table]:
    run = EmbeddedEngine(work).run(base, PERIOD)
    return {name: pq.read_table(path) for name, path in run.files.items()}


def test_tables_streamed_in_scan_order_equal_sorted_ones(base: BaseTables, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch,
                                                         request: pytest.FixtureRequest) -> None:
    assert embedded._in_rec_order(base.records)
    monkeypatch.setattr(embedded, "BATCH_ROWS", 97)  # many batches, each checked to follow on
    scanned: list[str] = []
    in_scan_order = EmbeddedEngine._batches_in_scan_order
    monkeypatch.setattr(EmbeddedEngine, "_batches_in_scan_order",
                        lambda self, con, statement, schema: scanned.append(statement)
                        or in_scan_order(self, con, statement, schema))
    fast = _tables(base, tmp_path / "fast")
    assert scanned == ["unique_records", "bind_items"][:1 + (request.node.callspec.params["base"] == "uniform")]
    monkeypatch.setattr(embedded, "_in_rec_order", lambda path, strict=True: False)
    sorted_ = _tables(base, tmp_path / "sorted")
    assert fast["records"].num_rows > 97 * 10
    in_period = fast["records"].column("in_period").to_pylist()
    assert True in in_period and False in in_period  # the period's join is exercised
    for name in ("records", "events", "items"):
        assert fast[name].equals(sorted_[name]), name
    assert fast["items"].num_rows > 97 * 10


def test_records_out_of_rec_order_are_sorted(base: BaseTables, tmp_path: Path) -> None:
    table = pq.read_table(base.records)
    table = table.cast(pq.read_schema(next(base.records.glob("*.parquet"))))
    shuffled = table.take(np.random.default_rng(5).permutation(table.num_rows))
    path = tmp_path / "records.parquet"
    pq.write_table(shuffled, path)
    assert not embedded._in_rec_order(path)
    moved = BaseTables(records=path, folders=base.folders, items=base.items, quarantine=base.quarantine,
                       read=base.read, parsed=base.parsed, quarantined=base.quarantined)
    assert _tables(moved, tmp_path / "moved")["records"].equals(_tables(base, tmp_path / "kept")["records"])


def test_follows() -> None:
    assert embedded._follows([np.array([3, 4, 9])], (2,))
    assert embedded._follows([np.array([], dtype=np.int64)], (5,))
    assert not embedded._follows([np.array([3, 4, 9])], (3,))
    assert not embedded._follows([np.array([3, 5, 4])], None)
    assert embedded._follows([np.array([1, 1, 2]), np.array([5, 6, 0])], (0, 9))
    assert not embedded._follows([np.array([1, 1, 2]), np.array([5, 5, 0])], None)
    assert not embedded._follows([np.array([1, 1]), np.array([5, 6])], (1, 5))
