"""Property test: real records, mutated at random, never crash the analysis and always reconcile."""

from __future__ import annotations

import csv
import json
from collections.abc import Callable
from typing import Any

from conftest import realdata_path
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mia_bridge.analysis.api import AnalysisOptions, analyze_files, analyze_records
from mia_bridge.readers.sentinel_officeactivity import to_auditdata


def _real_records() -> list[dict[str, Any]]:
    """AuditData-shaped dicts of the real MailItemsAccessed records (Sentinel JSON and Defender RawEventData)."""
    records = []
    sentinel = realdata_path("otrf-goldensaml", "OfficeActivityEvents.json", module_level=True)
    for line in sentinel.read_text(encoding="utf-8").splitlines():
        if line.strip():
            records.append(to_auditdata(json.loads(line)))
    defender = realdata_path("otrf-goldensaml", "Microsoft365DefenderEvents.json", module_level=True)
    for line in defender.read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        if isinstance(row.get("RawEventData"), dict):
            records.append(row["RawEventData"])
    assert len(records) == 2, f"real sample data changed: {sentinel}, {defender}"
    return records


REAL = _real_records()
JUNK = st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=30), st.floats(allow_nan=True),
                 st.lists(st.text(max_size=5), max_size=3), st.dictionaries(st.text(max_size=5), st.text(max_size=5),
                                                                             max_size=3))


@st.composite
def mutated(draw: Callable[..., Any]) -> dict[str, Any] | str:
    record = json.loads(json.dumps(draw(st.sampled_from(REAL))))
    for _ in range(draw(st.integers(0, 4))):
        keys = [*sorted(record), "Folders", "OperationProperties", "CreationTime", "Item", "Id"]
        key = draw(st.sampled_from(keys))
        action = draw(st.sampled_from(["delete", "junk", "stringify", "nest"]))
        if action == "delete":
            record.pop(key, None)
        elif action == "junk":
            record[key] = draw(JUNK)
        elif action == "stringify":
            record[key] = json.dumps(record.get(key))
        else:
            record[key] = [record.get(key), draw(JUNK)]
    if draw(st.booleans()):
        text = json.dumps(record)
        cut = draw(st.integers(0, len(text)))
        return text[:cut] if draw(st.booleans()) else text
    return record


def _check(summary: dict[str, Any], n: int) -> None:
    assert summary["records_read"] == n
    assert summary["records_read"] == summary["records_parsed"] + summary["records_quarantined"]
    assert summary["records_parsed"] == summary["records_unique"] + summary["duplicates_removed"]
    mia = summary["mail_items_accessed"]
    assert mia["bind_events"] + mia["sync_events"] + mia["other_access_type_events"] == mia["events"]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(mutated(), min_size=1, max_size=8))
def test_mutated_real_records_reconcile(records: list[dict[str, Any] | str]) -> None:
    _check(analyze_records(records, AnalysisOptions(), source="fuzz").summary, len(records))


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(st.lists(mutated(), min_size=1, max_size=6), st.sampled_from([",", ";", "\t"]))
def test_mutated_records_in_a_purview_csv_reconcile(
    tmp_path_factory: Any, records: list[dict[str, Any] | str], delimiter: str
) -> None:
    path = tmp_path_factory.mktemp("fuzz") / "export.csv"
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, delimiter=delimiter)
        writer.writerow(["RecordId", "CreationDate", "RecordType", "Operation", "UserId", "AuditData"])
        for record in records:
            writer.writerow(["", "", "", "", "", record if isinstance(record, str) else json.dumps(record)])
    _check(analyze_files([path], AnalysisOptions()).summary, len(records))
