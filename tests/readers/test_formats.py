"""Formats without public real files, built from realistic records: every encoding, delimiter and container."""

from __future__ import annotations

import csv
import gzip
import io
import json
from pathlib import Path

import pytest

from mia_bridge.analysis.api import AnalysisOptions, analyze_files
from mia_bridge.errors import UnreadableInput, UsageError
from mia_bridge.readers import format_names, open_input
from mia_bridge.readers.base import Quarantined, RawRecord

DATA = Path(__file__).resolve().parent.parent / "data"
BIND = json.loads((DATA / "bind_record.json").read_text(encoding="utf-8"))
PURVIEW_HEADER = ["RecordId", "CreationDate", "RecordType", "Operation", "UserId", "AuditData",
                  "AssociatedAdminUnits", "AssociatedAdminUnitsNames"]


def _purview_text(delimiter: str = ",", pretty: bool = False) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter=delimiter, lineterminator="\r\n")
    writer.writerow(PURVIEW_HEADER)
    audit = json.dumps(BIND, indent=2 if pretty else None)  # pretty: multi-line quoted cell
    writer.writerow([BIND["Id"], "10/25/2022 6:23:04 PM", "50", "MailItemsAccessed", BIND["UserId"], audit, "", ""])
    second = dict(BIND, Id="22222222-0000-4000-8000-000000000002", CreationTime="2022-10-25T19:00:00")
    writer.writerow([second["Id"], "10/25/2022 7:00:00 PM", "50", "MailItemsAccessed", BIND["UserId"],
                     json.dumps(second), "", ""])
    return buffer.getvalue()


def _records(path: Path, fmt: str | None = None) -> tuple[str, list[RawRecord], list[Quarantined]]:
    reader, items = open_input(path, fmt)
    everything = list(items)
    return (reader.NAME, [i for i in everything if isinstance(i, RawRecord)],
            [i for i in everything if isinstance(i, Quarantined)])


@pytest.mark.parametrize(
    ("encoding", "delimiter", "pretty", "gz"),
    [
        ("utf-8", ",", False, False),
        ("utf-8-sig", ",", True, False),
        ("utf-16", ",", True, False),  # Windows PowerShell -Encoding Unicode: UTF-16 LE with BOM
        ("utf-16-be-bom", ";", False, False),
        ("ascii", "\t", False, False),
        ("utf-8", ";", True, True),
    ],
)
def test_purview_csv_variants(tmp_path: Path, encoding: str, delimiter: str, pretty: bool, gz: bool) -> None:
    text = _purview_text(delimiter, pretty)
    data = b"\xfe\xff" + text.encode("utf-16-be") if encoding == "utf-16-be-bom" else text.encode(encoding)
    if gz:
        data = gzip.compress(data)
    path = tmp_path / ("export.bin")
    path.write_bytes(data)
    name, records, quarantined = _records(path)
    assert name == "purview_audit_csv"
    assert (len(records), len(quarantined)) == (2, 0)
    assert records[0].data["Folders"][0]["Path"] == "\\Inbox"
    assert records[0].line == 2
    result = analyze_files([path], AnalysisOptions())
    assert result.summary["mail_items_accessed"]["items_accessed"] == 8
    assert result.summary["mail_items_accessed"]["client_ips"] == ["2001:db8::7"]


def test_classic_and_export_csv(tmp_path: Path) -> None:
    audit = json.dumps(BIND)
    classic = tmp_path / "classic.csv"
    with classic.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["CreationDate", "UserIds", "Operations", "AuditData"])
        writer.writerow(["2022-10-25T18:23:04.0000000Z ", BIND["UserId"], "MailItemsAccessed", audit])
    exported = tmp_path / "search.csv"
    with exported.open("w", newline="", encoding="ascii") as handle:
        handle.write("#TYPE Deserialized.Microsoft.Exchange.Management.UnifiedAuditLogResult\r\n")
        writer = csv.writer(handle, quoting=csv.QUOTE_ALL, lineterminator="\r\n")
        writer.writerow(["RecordType", "CreationDate", "UserIds", "Operations", "AuditData", "ResultIndex",
                         "ResultCount", "Identity", "IsValid", "ObjectState"])
        writer.writerow(["ExchangeItemAggregated", "10/25/2022 6:23:04 PM", BIND["UserId"], "MailItemsAccessed",
                         audit, "1", "1", BIND["Id"], "True", "Unchanged"])
    assert _records(classic)[0] == "purview_classic_csv"
    assert _records(exported)[0] == "unified_audit_log_csv"
    s = analyze_files([classic, exported], AnalysisOptions()).summary
    # The same record from two formats: one duplicate, no conflict.
    assert (s["records_parsed"], s["duplicates_removed"], s["id_conflicts"]) == (2, 1, 0)


def test_raw_json_array_and_wrappers(tmp_path: Path) -> None:
    array = tmp_path / "records.json"
    inner = {"RecordType": 50, "MailboxOwnerUPN": "g@contoso.example", "Folders": [{"Path": "\\Inbox"}],
             "OperationProperties": [{"Name": "MailAccessType", "Value": "Sync"}]}
    graph = {"id": "g-1", "createdDateTime": "2024-05-01T10:00:00Z", "operation": "MailItemsAccessed",
             "userPrincipalName": "g@contoso.example", "auditData": inner}
    wrapped = {"CreationDate": "2022-10-25T18:23:04", "AuditData": json.dumps(BIND)}
    array.write_text(json.dumps([BIND, graph, wrapped], indent=1), encoding="utf-8")
    name, records, quarantined = _records(array)
    assert name == "raw_auditdata_json" and len(records) == 3 and not quarantined
    assert records[1].data["Id"] == "g-1" and records[1].line == 2
    s = analyze_files([array], AnalysisOptions()).summary
    assert s["duplicates_removed"] == 1  # the wrapped copy of BIND
    assert s["mail_items_accessed"]["sync_events"] == 1


def test_sparrow_all_four_column_sets() -> None:
    names = ["sparrow_mailitems_exo.csv", "sparrow_psmailbox_exo2.csv", "sparrow_consent_aad.csv",
             "sparrow_fileitems_sharepoint.csv"]
    for name in names:
        assert _records(DATA / name)[0] == "sparrow_csv", name
    result = analyze_files([DATA / n for n in names], AnalysisOptions())
    s = result.summary
    assert s["records_read"] == 6 and s["records_quarantined"] == 0
    assert s["operations"] == {"Consent to application.": 1, "FileDownloaded": 1, "MailItemsAccessed": 3,
                               "Set-Mailbox": 1}
    mia = s["mail_items_accessed"]
    # bare-object Folders, @{...} stringified items, ids without angle brackets, bare-object OperationProperties
    assert (mia["bind_events"], mia["sync_events"], mia["items_accessed"], mia["throttled_windows"]) == (2, 1, 5, 1)
    sizes = dict(zip(result.items["internet_message_id"], result.items["size_in_bytes"], strict=True))
    assert sizes["three@contoso.example"] == 5120
    assert set(result.synced_folders["folder_path"]) == {"\\Inbox"}
    set_mailbox = result.records[result.records["operation"] == "Set-Mailbox"].iloc[0]
    assert set_mailbox["client_ip"] == "203.0.113.66"  # ClientIPAddress wins over ClientIP


def test_mailbox_audit_log_utf16_with_type_line() -> None:
    name, records, quarantined = _records(DATA / "mailbox_audit_log.csv")
    assert name == "mailbox_audit_log_csv" and len(records) == 2 and not quarantined
    result = analyze_files([DATA / "mailbox_audit_log.csv"], AnalysisOptions())
    events = result.events
    assert list(events["mail_access_type"]) == ["Sync", "Bind"]
    assert list(events["logon_type"]) == ["Owner", "Delegated"]
    assert events.iloc[1]["user_id"] == "attacker@contoso.example"
    assert sorted(result.items["internet_message_id"]) == ["one@contoso.example", "six@contoso.example"]
    assert str(events.iloc[0]["creation_time"]) == "2020-12-20 15:15:00+00:00"


def test_forced_format_and_unknown_format(tmp_path: Path) -> None:
    path = tmp_path / "data.csv"
    path.write_text(_purview_text(), encoding="utf-8")
    assert _records(path, "purview_classic_csv")[0] == "purview_classic_csv"
    with pytest.raises(UsageError):
        open_input(path, "no_such_format")
    assert len(format_names()) == 9


@pytest.mark.parametrize(
    ("name", "reason"),
    [("binary_junk.bin", "binary data"), ("empty.csv", "empty file"), ("wrong_columns.csv", "unsupported format")],
)
def test_unreadable_inputs_name_the_file(name: str, reason: str) -> None:
    with pytest.raises(UnreadableInput) as info:
        open_input(DATA / name)
    assert reason in info.value.message and name in info.value.message


def test_missing_file() -> None:
    with pytest.raises(UnreadableInput, match="no such file"):
        open_input(DATA / "does-not-exist.csv")


def test_broken_first_line_does_not_misroute_a_sentinel_file(tmp_path: Path) -> None:
    row = {"TimeGenerated": "2021-08-02T13:32:07Z", "OfficeId": "699e0b10-0000-4000-8000-000000000001",
           "Operation": "Send", "OfficeWorkload": "Exchange", "UserId": "a@contoso.example", "Type": "OfficeActivity"}
    path = tmp_path / "sentinel.json"
    path.write_text('{"TimeGenerated": "2021-08-02T13:3\n' + json.dumps(row) + "\n", encoding="utf-8")
    name, records, quarantined = _records(path)
    assert name == "sentinel_officeactivity_json"
    assert len(records) == 1 and len(quarantined) == 1 and quarantined[0].line == 1
