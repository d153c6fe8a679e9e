"""Streaming ingest (analysis/ingest.py): the base tables on disk equal what the in-memory intake and
dedup.py give today, record for record, whatever the block size, the number of worker processes or the
size of the de-duplication's Id partitions."""

from __future__ import annotations

import gzip
import json
import shutil
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from mia_builders import folder, mia, odd_records

from mia_bridge.analysis import api
from mia_bridge.analysis.api import AnalysisOptions
from mia_bridge.analysis.dedup import deduplicate
from mia_bridge.analysis.ingest import IngestError, ingest_files, ingest_records, read_quarantine, read_table
from mia_bridge.analysis.intake import BUILT_COLUMNS, Intake
from mia_bridge.errors import ReaderError, UnreadableInput
from mia_bridge.readers.registry import prepare

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
from conftest import realdata_path
from gen_records import generate, generate_realistic, write_jsonl, write_purview_csv

DEMO = Path(__file__).resolve().parents[2] / "mia_bridge" / "data" / "demo"
DATA = Path(__file__).resolve().parents[1] / "data"
OPTIONS = AnalysisOptions()


def _today(paths: list[Path], options: AnalysisOptions = OPTIONS) -> dict[str, Any]:
    """What analyze_files reads and de-duplicates today (the in-memory intake)."""
    intake = Intake()
    for path in paths:
        try:
            reader, src, sniffed = prepare(path, options.format, options.max_record_bytes)
        except UnreadableInput:
            continue
        api._read_one(intake, reader, src, sniffed)
    return _settle(intake)


def _settle(intake: Intake) -> dict[str, Any]:
    records, folders, items = intake.tables()
    keep, conflicts, fingerprint = deduplicate(records)
    return {"records": records, "folders": folders, "items": items, "keep": keep, "conflicts": conflicts,
            "fingerprint": fingerprint, "quarantine": intake.quarantine_frame(), "read": intake.read}


def _assert_same(tables: Any, today: dict[str, Any]) -> None:
    records = read_table(tables.records)
    n = len(today["records"])
    assert (tables.parsed, tables.read, tables.quarantined) == (n, today["read"], len(today["quarantine"]))
    assert tables.read == tables.parsed + tables.quarantined
    assert records["rec"].tolist() == list(range(n))
    pd.testing.assert_frame_equal(records[BUILT_COLUMNS], today["records"].reset_index(drop=True))
    pd.testing.assert_series_equal(records["fingerprint"], today["fingerprint"].reset_index(drop=True),
                                   check_names=False)
    assert records["duplicate"].tolist() == (~today["keep"]).tolist()
    for name in ("folders", "items"):
        mine = read_table(getattr(tables, name))
        theirs = today[name].reset_index(drop=True)
        assert mine["rec"].tolist() == theirs["rec"].astype("int64").tolist()
        for column in theirs.columns:
            left, right = mine[column].astype(object), theirs[column].astype(object)
            assert left.where(left.notna(), None).tolist() == right.where(right.notna(), None).tolist(), column
    pd.testing.assert_frame_equal(read_quarantine(tables.quarantine), today["quarantine"])
    assert tables.conflicts == today["conflicts"]


def _inputs(tmp_path: Path) -> list[Path]:
    """A JSON-lines dump, a Purview CSV overlapping it (duplicates across formats), the same dump gzipped,
    a conflicting copy and the odd records read one by one."""
    records = list(generate(600, seed=7, mailboxes=5))
    jsonl, csv_path = tmp_path / "dump.jsonl", tmp_path / "purview.csv"
    write_jsonl(jsonl, iter(records[:450]))
    write_purview_csv(csv_path, iter(records[300:]))
    gz = tmp_path / "dump.jsonl.gz"
    gz.write_bytes(gzip.compress(jsonl.read_bytes()))
    changed = [dict(r, ClientIPAddress="198.51.100.200") for r in records[10:13]]
    conflicting = tmp_path / "conflicting.jsonl"
    write_jsonl(conflicting, iter(changed))
    odd = tmp_path / "odd.jsonl"
    odd.write_text("".join(json.dumps(r) + "\n" for r in odd_records()) + "not json\n\n", encoding="utf-8")
    return [jsonl, csv_path, gz, conflicting, odd]


@pytest.mark.parametrize(("workers", "block", "partition"), [(1, 32 << 20, 1_000_000), (1, 65536, 60),
                                                             (2, 65536, 1_000_000)])
def test_equals_todays_intake_and_dedup(tmp_path: Path, workers: int, block: int, partition: int) -> None:
    paths = _inputs(tmp_path)
    tables = ingest_files(paths, OPTIONS, tmp_path / "work", workers=workers, block_bytes=block, parallel_from=0,
                          dedup_partition_rows=partition)
    today = _today(paths)
    assert not today["keep"].all() and today["conflicts"]  # the corpus has both
    _assert_same(tables, today)
    assert [r.records_read for r in tables.inputs] == [450, 300, 450, 3, 9]
    if workers == 2:
        assert tables.worker_peaks  # the pool ran
    # The parts are named in rec order and each dataset is a folder of them.
    parts = sorted(tables.records.glob("*.parquet"))
    assert len(parts) > 1 or block > 1 << 20
    firsts = [int(pd.read_parquet(p, columns=["rec"])["rec"].iloc[0]) for p in parts]
    assert firsts == sorted(firsts)


def test_an_export_given_twice_is_decided_in_partitions(tmp_path: Path) -> None:
    jsonl = tmp_path / "a.jsonl"
    write_jsonl(jsonl, generate_realistic(400, seed=3))
    copy = tmp_path / "b.jsonl"
    shutil.copy(jsonl, copy)
    tables = ingest_files([jsonl, copy], OPTIONS, tmp_path / "work", dedup_partition_rows=100)
    records = read_table(tables.records)
    assert int(records["duplicate"].sum()) == 400 and records["fingerprint"].notna().all()
    _assert_same(tables, _today([jsonl, copy]))


def test_a_file_irregular_part_way_is_read_again_record_by_record(tmp_path: Path) -> None:
    records = list(generate(300, seed=5))
    path = tmp_path / "late_blank.jsonl"
    lines = [json.dumps(r) for r in records]
    path.write_text("\n".join(lines[:250]) + "\n\n" + "\n".join(lines[250:]) + "\n", encoding="utf-8")
    tables = ingest_files([path], OPTIONS, tmp_path / "work", workers=2, block_bytes=16384, parallel_from=0)
    _assert_same(tables, _today([path]))
    assert len(read_table(tables.records)) == 300  # the blocks written before the blank line were dropped


def test_real_samples_equal_today(tmp_path: Path) -> None:
    paths = [realdata_path("msticpy", "demo_exchange_data.csv"),
             realdata_path("otrf-goldensaml", "OfficeActivityEvents.json"),
             realdata_path("sentinel-training-lab", "office_activity.csv"),
             realdata_path("sentinel-training-lab", "office_activity_inbox_rule.csv")]
    tables = ingest_files(paths, OPTIONS, tmp_path / "work")
    _assert_same(tables, _today(paths))
    assert tables.parsed > 0


def test_demo_and_test_corpora_equal_today(tmp_path: Path) -> None:
    paths = [DEMO / "unified_audit_log.jsonl", DEMO / "purview_export.csv",
             *sorted(p for p in DATA.iterdir() if p.is_file() and p.name != "binary_junk.bin")]
    tables = ingest_files(paths, OPTIONS, tmp_path / "work")
    _assert_same(tables, _today(paths))
    assert tables.quarantined > 0
    assert any(r.error for r in tables.inputs)  # empty.csv and friends are reported, not raised


def test_records_path_equals_analyze_records(tmp_path: Path) -> None:
    first = mia("2024-05-01T10:00:00", record_id="same-id", folders=[folder("\\Inbox", "<a@x>")])
    second = dict(first, ClientIPAddress="203.0.113.9")
    records: list[Any] = [first, json.dumps(first), second, "not json", [1], *odd_records()]
    tables = ingest_records(records, "live", OPTIONS, tmp_path / "work")
    intake = Intake()
    intake.extend(api._records_from(records, "live"))
    _assert_same(tables, _settle(intake))
    assert tables.conflicts[0]["where"] == ["live:1", "live:3"]
    assert [(r.path, r.records_read, r.records_quarantined) for r in tables.inputs] == [("live", len(records), 2)]


def test_nothing_readable_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ReaderError, match="no input could be read"):
        ingest_files([DATA / "binary_junk.bin"], OPTIONS, tmp_path / "work")


def test_empty_input_gives_empty_tables_with_their_schema(tmp_path: Path) -> None:
    tables = ingest_records([], "live", OPTIONS, tmp_path / "work")
    assert (tables.read, tables.parsed, tables.quarantined) == (0, 0, 0)
    assert list(read_table(tables.records).columns) == [*BUILT_COLUMNS, "rec", "fingerprint", "duplicate"]
    assert list(read_table(tables.items).columns) == ["rec", "folder_path", "internet_message_id",
                                                      "internet_message_id_raw", "size_in_bytes"]


def test_an_unwritable_work_folder_is_an_error_not_a_traceback(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x", encoding="utf-8")
    with pytest.raises(IngestError, match="cannot create the base tables"):
        ingest_files([DEMO / "unified_audit_log.jsonl"], OPTIONS, blocker / "work")


def test_rec_is_global_across_inputs_and_paths(tmp_path: Path) -> None:
    paths = _inputs(tmp_path)
    tables = ingest_files(paths, OPTIONS, tmp_path / "work", workers=2, block_bytes=65536, parallel_from=0)
    records = read_table(tables.records, columns=["rec", "source_file", "source_line"])
    assert np.array_equal(records["rec"].to_numpy(), np.arange(len(records)))
    order = [str(p) for p in paths]
    assert records["source_file"].map(order.index).is_monotonic_increasing


def test_a_full_disk_while_writing_parts_is_an_ingest_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from mia_bridge.analysis import ingest

    def full(*_: object) -> int:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(ingest, "write_chunk", full)
    with pytest.raises(IngestError, match="No space left on device"):
        ingest_files([DEMO / "unified_audit_log.jsonl"], OPTIONS, tmp_path / "work", workers=1)
    with pytest.raises(IngestError, match="No space left on device"):
        ingest_records([json.dumps(mia("2024-05-01T10:00:00"))], "live", OPTIONS, tmp_path / "work")


def test_a_dead_worker_leaves_the_input_to_this_process(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from concurrent.futures.process import BrokenProcessPool

    from mia_bridge.analysis import ingest

    original = ingest._Pool.map_ordered

    def dying(self: Any, tasks: Any, parallel: bool) -> Any:
        if parallel:
            next(iter(tasks))  # a block was handed out (its part number taken) when the worker died
            raise BrokenProcessPool("a worker was killed")
        yield from original(self, tasks, parallel)

    monkeypatch.setattr(ingest._Pool, "map_ordered", dying)
    paths = _inputs(tmp_path)[:2]
    tables = ingest_files(paths, OPTIONS, tmp_path / "work", workers=2, block_bytes=65536, parallel_from=0)
    _assert_same(tables, _today(paths))


def test_ids_whose_hashes_collide_are_left_as_today(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Shared Ids are found by a 64-bit hash: Ids that occur once but collide must stay unmarked."""
    from mia_bridge.analysis import ingest

    monkeypatch.setattr(ingest, "_ID_HASH", "hash(coalesce(record_id, '')) % 3")  # everything collides
    paths = _inputs(tmp_path)
    tables = ingest_files(paths, OPTIONS, tmp_path / "work", dedup_partition_rows=400)
    _assert_same(tables, _today(paths))
