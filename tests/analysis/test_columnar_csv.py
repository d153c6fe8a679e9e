"""The columnar AuditData-CSV read (reader + ``columnar.build_chunk``) gives exactly the rows of the row-by-row
path, or steps aside."""

from __future__ import annotations

import gzip
import json
import sys
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from conftest import write_csv_export
from mia_builders import folder, mia, odd_records

from mia_bridge.analysis.api import AnalysisOptions, analyze_files
from mia_bridge.analysis.columnar import read_csv_chunks
from mia_bridge.analysis.intake import Chunk, Intake, join_chunks
from mia_bridge.readers import auditdata_csv, open_input
from mia_bridge.readers.registry import prepare

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
from gen_records import generate, purview_date

PURVIEW = ["RecordId", "CreationDate", "RecordType", "Operation", "UserId", "AuditData", "AssociatedAdminUnits",
           "AssociatedAdminUnitsNames"]
UAL = ["RecordType", "CreationDate", "UserIds", "Operations", "AuditData", "ResultIndex", "ResultCount",
       "Identity", "IsValid", "ObjectState"]
CLASSIC = ["CreationDate", "UserIds", "Operations", "AuditData"]


def _row(header: list[str], record: dict[str, Any], audit: str | None = None) -> list[str]:
    values = {"RecordId": record.get("Id", ""), "Identity": record.get("Id", ""),
              "CreationDate": purview_date(record["CreationTime"]), "RecordType": str(record.get("RecordType", "")),
              "Operation": record.get("Operation", ""), "Operations": record.get("Operation", ""),
              "UserId": record.get("UserId", ""), "UserIds": record.get("UserId", ""),
              "AuditData": json.dumps(record, separators=(",", ":")) if audit is None else audit,
              "ResultIndex": "1", "ResultCount": "1", "IsValid": "True", "ObjectState": "Unchanged"}
    return [values.get(name, "") for name in header]




def _fast(path: Path) -> Chunk | None:
    reader, src, sniffed = prepare(path, None)
    chunks = read_csv_chunks(src, sniffed, reader.NAME)
    return None if chunks is None else join_chunks(chunks)


def _assert_same(path: Path) -> Chunk:
    chunk = _fast(path)
    assert chunk is not None
    intake = Intake()
    _, items = open_input(path)
    intake.extend(items)
    records, folders, item_rows = intake.tables()
    columns = [c for c in records.columns if c != "raw_json"]  # fast names the row, slow keeps the parsed record
    pd.testing.assert_frame_equal(chunk.records[columns], records[columns], check_dtype=False)
    pd.testing.assert_frame_equal(chunk.folders, folders, check_dtype=False)
    pd.testing.assert_frame_equal(chunk.items, item_rows, check_dtype=False)
    return chunk


def _odd() -> list[dict[str, Any]]:
    # A comma, quotes and a semicolon inside the JSON: quoted CSV cells.
    quoted = mia("2024-05-01T10:07:00", client='Client=OWA;Action="ViaProxy", x', folders=[folder("\\Inbox", "<d@x>")])
    return [*odd_records(), quoted]


@pytest.mark.parametrize(("header", "type_line"), [(PURVIEW, False), (UAL, True), (UAL, False), (CLASSIC, False)])
def test_generated_and_odd_records_match_the_row_reader(tmp_path: Path, header: list[str], type_line: bool) -> None:
    records = [*generate(300, seed=5), *_odd()]
    path = write_csv_export(tmp_path / "export.csv", header, [_row(header, r) for r in records], type_line)
    chunk = _assert_same(path)
    assert chunk.records["source_line"].iloc[0] == (3 if type_line else 2)


def test_gzip_and_plain_utf8_take_the_fast_path(tmp_path: Path) -> None:
    records = list(generate(50, seed=6))
    path = write_csv_export(tmp_path / "export.csv", PURVIEW, [_row(PURVIEW, r) for r in records], encoding="utf-8")
    _assert_same(path)
    gz = tmp_path / "export.csv.gz"
    gz.write_bytes(gzip.compress(path.read_bytes()))
    assert _fast(gz) is not None


def _irregular(records: list[dict[str, Any]]) -> dict[str, list[list[str]]]:
    good = [_row(PURVIEW, r) for r in records]
    no_user = dict(records[0], Id="no-user")
    del no_user["UserId"]
    return {
        "pretty-printed AuditData": [*good, _row(PURVIEW, records[1], json.dumps(records[1], indent=1))],
        "empty AuditData": [*good, _row(PURVIEW, records[1], "  ")],
        "invalid JSON": [*good, _row(PURVIEW, records[1], '{"Id": "x", ')],
        "UserId only in the column": [*good, [*_row(PURVIEW, no_user)[:4], "user@x", *_row(PURVIEW, no_user)[5:]]],
        "blank line": [*good[:2], [], *good[2:]],
        "short row": [*good, ["only", "three", "cells"]],
    }


@pytest.mark.parametrize("case", ["pretty-printed AuditData", "empty AuditData", "invalid JSON",
                                  "UserId only in the column", "blank line", "short row"])
def test_irregular_exports_step_aside_and_the_row_reader_accounts_for_every_row(tmp_path: Path, case: str) -> None:
    records = list(generate(20, seed=7))
    path = write_csv_export(tmp_path / "export.csv", PURVIEW, _irregular(records)[case])
    assert _fast(path) is None
    s = analyze_files([path], AnalysisOptions()).summary
    assert s["records_read"] == s["records_parsed"] + s["records_quarantined"]
    assert s["records_parsed"] == s["records_unique"] + s["duplicates_removed"]
    assert s["records_read"] == (20 if case == "blank line" else 21)


def test_many_small_blocks_keep_the_line_numbers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(auditdata_csv, "_BLOCK", 64 << 10)
    records = list(generate(300, seed=11))
    path = write_csv_export(tmp_path / "export.csv", PURVIEW, [_row(PURVIEW, r) for r in records])
    chunk = _assert_same(path)
    assert chunk.records["source_line"].tolist() == list(range(2, 302))
