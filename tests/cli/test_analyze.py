"""``mia analyze``: outputs, exit codes, messages naming file and record, the demo."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from conftest import realdata_path

from mia_bridge.cli.app import main

DATA = Path(__file__).resolve().parent.parent / "data"
CONTRACT_MIA_KEYS = {"events", "bind_events", "sync_events", "throttled_events", "items_accessed",
                     "unique_internet_message_ids", "synced_folders", "throttled_windows", "mailboxes", "sessions",
                     "client_ips", "app_ids"}


def test_demo_writes_the_output_contract(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "demo"
    assert main(["analyze", "--demo", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert f"results written to {out}" in printed
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    assert summary["records_read"] == summary["records_parsed"] + summary["records_quarantined"]
    assert summary["records_parsed"] == summary["records_unique"] + summary["duplicates_removed"]
    assert summary["duplicates_removed"] == 50  # the Purview CSV overlaps the JSONL dump by 50 records
    assert set(summary["mail_items_accessed"]) >= CONTRACT_MIA_KEYS
    assert summary["message_lookup"] == {"accessed": 1, "possibly_exposed": 1}  # the demo has syncs
    for table in ("events", "items", "synced_folders", "throttled_windows", "contexts", "leads", "message_lookup"):
        csv_frame = pd.read_csv(out / f"{table}.csv")
        parquet_frame = pd.read_parquet(out / f"{table}.parquet")
        assert len(csv_frame) == len(parquet_frame), table
    items = pd.read_parquet(out / "items.parquet")
    assert len(items) == summary["mail_items_accessed"]["items_accessed"]
    records = pd.read_parquet(out / "records.parquet")
    assert len(records) == summary["records_unique"]
    assert (out / "quarantine.jsonl").read_text(encoding="utf-8") == ""


def test_real_files_and_json_summary(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    inputs = [realdata_path("sentinel-training-lab", "office_activity.csv"),
              realdata_path("otrf-goldensaml", "OfficeActivityEvents.json"),
              realdata_path("otrf-goldensaml", "AADAuditEvents.json")]
    code = main(["analyze", *map(str, inputs), "--out", str(tmp_path / "o"), "--json",
                 "--suspicious-ip", "175.45.176.99", "--start", "2021-04-01", "--end", "2021-12-31T23:59:59Z"])
    assert code == 0
    captured = capsys.readouterr()
    summary = json.loads(captured.out)
    assert summary["records_read"] == 267
    assert summary["mail_items_accessed"]["bind_events"] == 4
    assert "warning: skipped" in captured.err and "AADAuditEvents.json: unsupported format" in captured.err
    assert summary["top_leads"][0]["client_ip"] == "175.45.176.99"


def test_quarantined_records_are_reported_on_stderr(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["analyze", str(DATA / "invalid_auditdata_json.csv"), "--out", str(tmp_path / "o")]) == 0
    err = capsys.readouterr().err
    assert "1 record(s) quarantined" in err
    assert "invalid_auditdata_json.csv:3: invalid JSON in AuditData" in err
    assert "Traceback" not in err


def test_no_readable_input_exits_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["analyze", str(DATA / "binary_junk.bin"), str(DATA / "empty.csv"), "--out", str(tmp_path / "o")])
    assert code == 1
    err = capsys.readouterr().err
    assert "no input could be read" in err and "binary_junk.bin" in err and "empty.csv" in err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "no input files given"),
        (["x.csv", "--format", "nope"], "unknown format 'nope'"),
        (["x.csv", "--start", "soon"], "--start: 'soon' is not a date/time"),
        (["x.csv", "--start", "2024-05-02", "--end", "2024-05-01"], "--start is after --end"),
        (["x.csv", "--message-ids", "/nonexistent/ids.txt"], "cannot read the message-id list"),
    ],
)
def test_usage_errors_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str) -> None:
    assert main(["analyze", *args, "--out", str(tmp_path / "o")]) == 2
    assert message in capsys.readouterr().err


def test_missing_out_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["analyze", str(DATA / "bind_record.json")]) == 2
    assert "--out" in capsys.readouterr().err


def test_forced_format(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "o"
    assert main(["analyze", str(DATA / "bind_record.json"), "--format", "raw_auditdata_json", "--out", str(out)]) == 0
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    assert summary["inputs"][0]["format"] == "raw_auditdata_json"
    assert summary["mail_items_accessed"]["items_accessed"] == 4


def test_end_date_includes_that_whole_day(tmp_path: Path) -> None:
    out = tmp_path / "o"
    assert main(["analyze", str(DATA / "bind_record.json"), "--start", "2022-10-25", "--end", "2022-10-25",
                 "--out", str(out)]) == 0
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    assert summary["period"]["records_in_period"] == 1  # the record is at 18:23 that day
