"""Bad input: every problem named by file and record, quarantined, the rest processed, counts reconciled."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from mia_bridge.analysis.api import AnalysisOptions, analyze_files, analyze_records, write_outputs

DATA = Path(__file__).resolve().parent.parent / "data"


def _reconciled(summary: dict[str, object]) -> None:
    assert summary["records_read"] == summary["records_parsed"] + summary["records_quarantined"]  # type: ignore[operator]
    assert summary["records_parsed"] == summary["records_unique"] + summary["duplicates_removed"]  # type: ignore[operator]


def test_bad_files_alongside_good_ones(tmp_path: Path) -> None:
    paths = [DATA / n for n in ("truncated.jsonl", "truncated_array.json", "invalid_auditdata_json.csv",
                                "missing_timestamp.jsonl", "short_row.csv", "binary_junk.bin", "empty.csv",
                                "wrong_columns.csv")]
    result = analyze_files(paths, AnalysisOptions())
    s = result.summary
    _reconciled(s)
    quarantine = result.quarantine
    where = {f"{Path(f).name}:{ln}": reason for f, ln, reason in zip(quarantine["file"], quarantine["line"],
                                                                      quarantine["reason"], strict=True)}
    assert where["truncated.jsonl:3"].startswith("invalid JSON")
    assert "the file is truncated" in where["truncated_array.json:3"]
    assert where["invalid_auditdata_json.csv:3"].startswith("invalid JSON in AuditData")
    assert where["missing_timestamp.jsonl:2"] == "missing timestamp"
    assert where["missing_timestamp.jsonl:3"].startswith("unrecognised timestamp 'yesterday'")
    assert where["short_row.csv:3"] == "row has 2 fields, the header has 8"
    assert s["records_quarantined"] == 6
    # The unknown operation is a normal record; the multi-line cell was read whole.
    assert s["operations"]["NoSuchOperationEver"] == 1 and s["operations"]["Send"] >= 1
    errors = [entry["error"] for entry in s["inputs"] if entry["error"]]
    assert len(errors) == 3 and any("binary_junk.bin" in e for e in errors)
    written = write_outputs(result, tmp_path / "out")
    lines = [json.loads(x) for x in written["quarantine.jsonl"].read_text(encoding="utf-8").splitlines()]
    assert len(lines) == 6 and {"file", "line", "reason", "raw"} <= set(lines[0])
    assert any("BROKEN" in entry["raw"] for entry in lines)  # the raw text is kept


def test_huge_cell_is_read(tmp_path: Path) -> None:
    record = json.loads((DATA / "bind_record.json").read_text(encoding="utf-8"))
    record["Folders"] = [{"Path": "\\Inbox", "FolderItems": [{"InternetMessageId": f"<m{i}@x.example>"}
                                                             for i in range(60_000)]}]
    path = tmp_path / "huge.csv"
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["CreationDate", "UserIds", "Operations", "AuditData"])
        writer.writerow(["2022-10-25T18:23:04", "u", "MailItemsAccessed", json.dumps(record)])
    assert path.stat().st_size > 1_500_000
    s = analyze_files([path], AnalysisOptions()).summary
    assert s["mail_items_accessed"]["items_accessed"] == 60_000


def test_live_records_with_junk() -> None:
    good = json.loads((DATA / "bind_record.json").read_text(encoding="utf-8"))
    result = analyze_records([json.dumps(good), "{not json", "[1, 2]", {"Operation": "X"}, good],
                             AnalysisOptions(), source="collector")
    s = result.summary
    _reconciled(s)
    assert (s["records_read"], s["records_quarantined"], s["duplicates_removed"]) == (5, 3, 1)
    assert list(result.quarantine["line"]) == [2, 3, 4]
    assert set(result.quarantine["file"]) == {"collector"}
