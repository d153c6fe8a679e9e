"""Duplicates (same Id and parsed content, across formats) and conflicts (same Id, different content)."""

from __future__ import annotations

import json

from mia_builders import folder, mia

from mia_bridge.analysis.api import AnalysisOptions, analyze_records


def test_duplicate_in_any_key_order_or_as_json_string_is_removed() -> None:
    record = mia("2024-05-01T10:00:00", folders=[folder("\\Inbox", "<a@x>")])
    reordered = dict(reversed(list(record.items())))
    result = analyze_records([record, reordered, json.dumps(record)], AnalysisOptions(), source="test")
    s = result.summary
    assert (s["records_read"], s["records_parsed"], s["duplicates_removed"], s["records_unique"]) == (3, 3, 2, 1)
    assert s["records_parsed"] == s["records_unique"] + s["duplicates_removed"]


def test_same_id_different_content_is_a_conflict_and_both_are_kept() -> None:
    first = mia("2024-05-01T10:00:00", record_id="same-id", folders=[folder("\\Inbox", "<a@x>")])
    second = mia("2024-05-01T10:00:00", record_id="same-id", ip="203.0.113.9", folders=[folder("\\Inbox", "<a@x>")])
    result = analyze_records([first, second], AnalysisOptions(), source="live")
    s = result.summary
    assert s["duplicates_removed"] == 0 and s["records_unique"] == 2
    assert s["id_conflicts"] == 1
    detail = s["id_conflict_details"][0]
    assert detail["record_id"] == "same-id" and detail["where"] == ["live:1", "live:2"]


def test_records_without_id_are_only_duplicates_when_identical() -> None:
    a = {"CreationTime": "2024-05-01T10:00:00", "Operation": "Set-Mailbox", "UserId": "a",
         "Parameters": [{"Name": "Identity", "Value": "x"}]}
    b = dict(a, Parameters=[{"Name": "Identity", "Value": "y"}])
    s = analyze_records([a, b, dict(a)], AnalysisOptions(), source="t").summary
    assert (s["duplicates_removed"], s["records_unique"]) == (1, 2)


def test_copy_with_lost_message_ids_yields_to_the_complete_copy() -> None:
    complete = mia("2024-05-01T10:00:00", record_id="r-1", folders=[folder("\\Inbox", "<a@x>", "<b@x>")])
    degraded = dict(complete, Folders=["@{Id=LgAAAA\\Inbox; Path=\\Inbox; FolderItems=System.Object[]}"])
    result = analyze_records([degraded, complete], AnalysisOptions(), source="t")
    s = result.summary
    assert (s["duplicates_removed"], s["id_conflicts"]) == (1, 0)
    assert s["mail_items_accessed"]["items_accessed"] == 2
    assert not result.records["message_ids_lost"].any()


def test_only_records_sharing_an_id_are_fingerprinted_and_their_message_ids_count() -> None:
    """Fingerprints are computed for the records that are compared; message ids alone make a conflict."""
    first = mia("2024-05-01T10:00:00", record_id="shared", folders=[folder("\\Inbox", "<a@x>", "<b@x>")])
    other = mia("2024-05-01T10:00:30", folders=[folder("\\Inbox", "<a@x>", "<c@x>")])
    moved = mia("2024-05-01T10:00:00", record_id="shared", folders=[folder("\\Inbox", "<a@x>", "<c@x>")])
    # Sparrow strips the angle brackets: the same record; a case change is not an export's spelling.
    same = mia("2024-05-01T10:00:00", record_id="shared", folders=[folder("\\Inbox", "a@x", "b@x")])
    cased = mia("2024-05-01T10:00:00", record_id="shared", folders=[folder("\\INBOX", "<a@x>", "<b@x>")])
    result = analyze_records([first, other, moved, same, cased], AnalysisOptions(), source="t")
    s = result.summary
    assert (s["duplicates_removed"], s["records_unique"], s["id_conflicts"]) == (1, 4, 1)
    detail = s["id_conflict_details"][0]
    assert detail["versions"] == 3
    assert detail["fields"] == ["Folders.FolderItems[1].InternetMessageId", "Folders.Id", "Folders.Path"]
    fingerprints = result.records.set_index("record_id")["fingerprint"]
    assert fingerprints.loc["shared"].notna().all() and fingerprints.loc["shared"].nunique() == 3
    assert fingerprints.drop("shared").isna().all()
