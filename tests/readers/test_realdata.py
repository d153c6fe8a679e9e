"""Every real audit-log export in ../shared/realdata: detected by content, every record accounted for."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from mia_bridge.analysis.api import AnalysisOptions, analyze_files
from mia_bridge.errors import UnreadableInput
from mia_bridge.readers import open_input
from mia_bridge.readers.base import FLAG_MESSAGE_IDS_LOST, FLAG_NO_RAW_EVENT, Quarantined, RawRecord

RealData = Callable[..., Path]


def _read(path: Path) -> tuple[str, list[RawRecord], list[Quarantined]]:
    reader, items = open_input(path)
    everything = list(items)
    records = [i for i in everything if isinstance(i, RawRecord)]
    quarantined = [i for i in everything if isinstance(i, Quarantined)]
    assert len(records) + len(quarantined) == len(everything)
    return reader.NAME, records, quarantined


def test_sentinel_officeactivity_csv(realdata: RealData) -> None:
    name, records, quarantined = _read(realdata("sentinel-training-lab", "office_activity.csv"))
    assert name == "sentinel_officeactivity_csv"
    assert (len(records), len(quarantined)) == (266, 0)
    result = analyze_files([realdata("sentinel-training-lab", "office_activity.csv")], AnalysisOptions())
    s = result.summary
    assert s["records_read"] == s["records_parsed"] + s["records_quarantined"] == 266
    mia = s["mail_items_accessed"]
    assert (mia["events"], mia["bind_events"], mia["sync_events"], mia["throttled_events"]) == (3, 3, 0, 0)
    assert "175.45.176.99" in mia["client_ips"]
    assert "2603:10b6:5:345::11" in mia["client_ips"]
    # The double-encoded Folders of record 2ad854c0: Inbox 1 item, Sent Items 2 items.
    items = result.items[result.items["record_id"] == "2ad854c0-d9c3-43b5-95d8-826aea0d10ca"]
    assert sorted(items["folder_path"]) == ["\\Inbox", "\\Sent Items", "\\Sent Items"]
    assert "mwhpr06mb3440f17c12bf790009f16851d9409@mwhpr06mb3440.namprd06.prod.outlook.com" in set(
        items["internet_message_id"]
    )
    event = result.events.set_index("record_id").loc["2ad854c0-d9c3-43b5-95d8-826aea0d10ca"]
    assert event["mail_access_type"] == "Bind" and not event["is_throttled"]
    assert event["app_id"] == "8a18aa92-0a1e-4e06-abd0-e118fa4787b1"
    assert str(event["creation_time"]) == "2021-04-28 14:54:37+00:00"
    assert event["logon_type"] == "Owner"
    # RecordType mixes enum names and numbers in one column.
    assert set(result.records["record_type"].dropna()) >= {2, 4, 6, 50}


def test_sentinel_inbox_rule_csv_without_timegenerated(realdata: RealData) -> None:
    path = realdata("sentinel-training-lab", "office_activity_inbox_rule.csv")
    name, records, quarantined = _read(path)
    assert name == "sentinel_officeactivity_csv" and len(records) == 2 and not quarantined
    result = analyze_files([path], AnalysisOptions())
    rec = result.records.set_index("record_id").loc["d28096ba-03b1-4c2a-1503-08d908826606"]
    assert rec["operation"] == "New-InboxRule"
    assert str(rec["creation_time"]) == "2021-04-26 07:17:10+00:00"  # from Start_Time
    assert rec["client_ip"] == "2a01:110:8068:7:9bf8:aa87:e00a:5f1f"  # brackets and port removed
    assert rec["record_type"] == 1


def test_otrf_officeactivity_json(realdata: RealData) -> None:
    name, records, _ = _read(realdata("otrf-goldensaml", "OfficeActivityEvents.json"))
    assert name == "sentinel_officeactivity_json" and len(records) == 1
    result = analyze_files([realdata("otrf-goldensaml", "OfficeActivityEvents.json")], AnalysisOptions())
    mia = result.summary["mail_items_accessed"]
    # 7 FolderItems, one id repeated: repeats count as items, not as unique ids.
    assert (mia["bind_events"], mia["items_accessed"], mia["unique_internet_message_ids"]) == (1, 7, 6)
    assert mia["app_ids"] == ["00000003-0000-0000-c000-000000000000"]
    assert result.events.iloc[0]["client_app_id"] == "5a95e683-08ad-424e-a441-1d1aec52c02c"


def test_otrf_defender_cloudappevents_stringified(realdata: RealData) -> None:
    path = realdata("otrf-goldensaml", "Microsoft365DefenderEvents.json")
    name, records, quarantined = _read(path)
    assert name == "defender_cloudappevents"
    assert (len(records), len(quarantined)) == (9, 0)
    assert sum(FLAG_NO_RAW_EVENT in r.flags for r in records) == 8  # hunting rows without RawEventData
    result = analyze_files([path], AnalysisOptions())
    event = result.events.iloc[0]
    assert event["mail_access_type"] == "Bind" and event["is_throttled"] == False  # noqa: E712
    assert bool(event["message_ids_lost"]) and event["folder_count"] == 1 and event["item_count"] == 0
    assert FLAG_MESSAGE_IDS_LOST in result.records.set_index("record_id").loc[event["record_id"], "flags"]
    assert result.summary["mail_items_accessed"]["events_with_message_ids_lost"] == 1
    assert result.summary["mail_items_accessed"]["items_accessed"] == 0  # not invented


def test_same_record_from_sentinel_and_defender_is_one_record(realdata: RealData) -> None:
    paths = [realdata("otrf-goldensaml", "Microsoft365DefenderEvents.json"),
             realdata("otrf-goldensaml", "OfficeActivityEvents.json")]
    s = analyze_files(paths, AnalysisOptions()).summary
    assert s["records_parsed"] == 10 and s["duplicates_removed"] == 1 and s["id_conflicts"] == 0
    assert s["mail_items_accessed"]["items_accessed"] == 7  # the complete copy was kept


def test_msticpy_projection_reads_as_officeactivity(realdata: RealData) -> None:
    path = realdata("msticpy", "demo_exchange_data.csv")
    name, records, quarantined = _read(path)
    assert name == "sentinel_officeactivity_csv" and (len(records), len(quarantined)) == (1334, 0)
    s = analyze_files([path], AnalysisOptions()).summary
    # No record ids: only byte-identical rows (26 of them) are duplicates.
    assert s["duplicates_removed"] == 26 and s["records_unique"] == 1308
    assert s["operations"]["Add-MailboxPermission"] == 5


@pytest.mark.parametrize(
    "parts", [("otrf-goldensaml", "AADAuditEvents.json"), ("sentinel-training-lab", "AuditLogs_Hunting.csv")]
)
def test_entra_auditlogs_are_reported_unsupported(realdata: RealData, parts: tuple[str, str]) -> None:
    with pytest.raises(UnreadableInput) as info:
        open_input(realdata(*parts))
    assert "unsupported format: Entra ID AuditLogs" in info.value.message
    assert parts[1] in info.value.message


@pytest.mark.parametrize(("column", "value", "field"), [
    ("Client_IPAddress", "203.0.113.66", "ClientIPAddress"),
    ("MailboxOwnerUPN", "someone-else@simulandlabs.com", "MailboxOwnerUPN"),
    ("ClientInfoString", "Client=REST;;evil", "ClientInfoString"),
    ("Operation", "MailItemsAccessed ", "Operation"),  # whitespace is a difference too
])
def test_real_sentinel_copy_changed_in_one_field_is_a_conflict(
    realdata: RealData, tmp_path: Path, column: str, value: str, field: str,
) -> None:
    """The real Sentinel/Defender pair is one record only while every field both carry agrees."""
    import json

    sentinel = json.loads(realdata("otrf-goldensaml", "OfficeActivityEvents.json").read_text(encoding="utf-8"))
    changed = tmp_path / "OfficeActivityEvents.json"
    changed.write_text(json.dumps(dict(sentinel, **{column: value})) + "\n", encoding="utf-8")
    s = analyze_files([realdata("otrf-goldensaml", "Microsoft365DefenderEvents.json"), changed],
                      AnalysisOptions()).summary
    assert (s["records_parsed"], s["duplicates_removed"], s["id_conflicts"]) == (10, 0, 1)
    assert s["id_conflict_details"][0]["fields"] == [field]
