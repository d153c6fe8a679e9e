"""MailItemsAccessed tables: both record shapes, items, synced folders, throttled windows, contexts."""

from __future__ import annotations

from datetime import UTC, datetime

import pandas as pd
from mia_builders import folder, mia

from mia_bridge.analysis.api import AnalysisOptions, analyze_records


def test_bind_spanning_folders_with_repeats_and_missing_parts() -> None:
    record = mia("2024-05-01T10:00:00", folders=[
        folder("\\Inbox", "<A@x.example>", "<b@x.example>", "<A@x.example>"),
        folder("\\Sent Items", " <C@X.example> "),
        {"Id": "only-an-id"},  # a Folders element without Path or FolderItems
        {"FolderItems": [{"InternetMessageId": "<d@x.example>", "SizeInBytes": 99}]},  # items without Path
    ], OperationCount=5)
    result = analyze_records([record], AnalysisOptions(), source="test")
    mia_summary = result.summary["mail_items_accessed"]
    assert mia_summary["items_accessed"] == 5
    assert mia_summary["unique_internet_message_ids"] == 4
    assert sorted(result.items["internet_message_id"]) == ["a@x.example", "a@x.example", "b@x.example",
                                                           "c@x.example", "d@x.example"]
    event = result.events.iloc[0]
    assert (event["folder_count"], event["item_count"], event["operation_count"]) == (4, 5, 5)
    assert result.items["size_in_bytes"].dropna().tolist() == [99]


def test_record_type_2_sync_and_bind_shapes() -> None:
    sync = mia("2024-05-01T10:00:00", access="Sync", RecordType=2, client="Client=MSExchangeRPC",
               Item={"Id": "i1", "ParentFolder": {"Name": "Inbox", "Path": "\\Inbox"}})
    sync_name_only = mia("2024-05-01T11:00:00", access="Sync", RecordType="2",
                         Item={"ParentFolder": {"Name": "Archive"}})
    bind = mia("2024-05-01T12:00:00", RecordType=2,
               Item={"InternetMessageId": "<Z@x.example>", "ParentFolder": {"Path": "\\Drafts"}})
    result = analyze_records([sync, sync_name_only, bind], AnalysisOptions(), source="test")
    s = result.summary["mail_items_accessed"]
    assert (s["sync_events"], s["bind_events"], s["synced_folders"], s["items_accessed"]) == (2, 1, 2, 1)
    assert sorted(result.synced_folders["folder_path"]) == ["Archive", "\\Inbox"]
    assert result.items.iloc[0]["folder_path"] == "\\Drafts"


def test_operation_properties_any_order_strings_and_missing_throttle() -> None:
    reversed_order = mia("2024-05-01T10:00:00", OperationProperties=[
        {"Value": "True", "Name": "IsThrottled"}, {"Value": "bind", "Name": "MailAccessType"}])
    no_throttle = mia("2024-05-01T10:01:00", throttled=None)
    result = analyze_records([reversed_order, no_throttle], AnalysisOptions(), source="test")
    events = result.events.set_index("record_id")
    assert events.loc[reversed_order["Id"], "mail_access_type"] == "Bind"
    assert bool(events.loc[reversed_order["Id"], "is_throttled"]) is True
    assert pd.isna(events.loc[no_throttle["Id"], "is_throttled"])


def test_throttled_windows_merge_per_mailbox() -> None:
    records = [
        mia("2024-05-01T00:00:00", throttled="True"),
        mia("2024-05-01T20:00:00", throttled="True"),  # overlaps the first: merged
        mia("2024-05-03T00:00:00", throttled="True"),  # after the merged window ends
        mia("2024-05-01T05:00:00", throttled="True", mailbox="other@contoso.example"),
        mia("2024-05-01T06:00:00", throttled="False"),
    ]
    result = analyze_records(records, AnalysisOptions(), source="test")
    windows = result.throttled_windows
    assert result.summary["mail_items_accessed"]["throttled_windows"] == 3
    victim = windows[windows["mailbox"] == "victim@contoso.example"].reset_index(drop=True)
    assert str(victim.loc[0, "window_start"]) == "2024-05-01 00:00:00+00:00"
    assert str(victim.loc[0, "window_end"]) == "2024-05-02 20:00:00+00:00"
    assert victim.loc[0, "throttled_events"] == 2
    assert str(victim.loc[1, "window_start"]) == "2024-05-03 00:00:00+00:00"


def test_contexts_ips_sessions_and_summary_lists() -> None:
    records = [
        mia("2024-05-01T10:00:00", ip="198.51.100.7:50123", folders=[folder("\\Inbox", "<a@x>")]),
        mia("2024-05-01T10:05:00", ip="198.51.100.7", folders=[folder("\\Inbox", "<b@x>")]),
        mia("2024-05-01T11:00:00", ip="[2001:DB8::66]:443", session=None, app="5A95E683-08AD-424E-A441-1D1AEC52C02C",
            folders=[folder("\\Inbox", "<a@x>", "<c@x>")]),
        mia("2024-05-01T12:00:00", ip=None, session="", folders=[folder("\\Inbox", "<d@x>")]),
    ]
    result = analyze_records(records, AnalysisOptions(), source="test")
    s = result.summary["mail_items_accessed"]
    assert s["client_ips"] == ["198.51.100.7", "2001:db8::66"]
    assert s["sessions"] == 1
    assert s["app_ids"] == ["00000002-0000-0ff1-ce00-000000000000", "5a95e683-08ad-424e-a441-1d1aec52c02c"]
    contexts = result.contexts
    assert len(contexts) == 3  # the two owner events share a context (port removed)
    owner = contexts[contexts["client_ip"] == "198.51.100.7"].iloc[0]
    assert (owner["events"], owner["items_accessed"]) == (2, 2)
    assert str(owner["first_seen"]) == "2024-05-01 10:00:00+00:00"
    assert str(owner["last_seen"]) == "2024-05-01 10:05:00+00:00"
    # The reverse lookup: every id a chosen context read is in the item table.
    attacker_items = result.items[result.items["client_ip"] == "2001:db8::66"]
    assert sorted(attacker_items["internet_message_id"]) == ["a@x", "c@x"]


def test_period_restriction_counts_what_is_outside() -> None:
    records = [mia("2024-05-01T10:00:00"), mia("2024-05-02T10:00:00"), mia("2024-05-03T10:00:00"),
               {"CreationTime": "2024-04-01T00:00:00", "Id": "x-1", "Operation": "Set-Mailbox", "UserId": "a"}]
    options = AnalysisOptions(start=datetime(2024, 5, 2, tzinfo=UTC), end=datetime(2024, 5, 2, 23, tzinfo=UTC))
    result = analyze_records(records, options, source="test")
    s = result.summary
    assert s["records_unique"] == 4
    assert s["period"]["records_in_period"] == 1 and s["period"]["records_outside_period"] == 3
    assert s["mail_items_accessed"]["events"] == 1
    assert len(result.records) == 4 and int(result.records["in_period"].sum()) == 1  # nothing lost
