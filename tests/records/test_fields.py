"""The field accessors every package reads an AuditData dict with: the shapes exports give one field in,
hostile cells, and every real sample read without an exception."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from conftest import realdata_path
from hypothesis import given, settings
from hypothesis import strategies as st

from mia_bridge.readers.base import RawRecord
from mia_bridge.readers.registry import open_input
from mia_bridge.records import fields
from mia_bridge.records.cells import MAX_DEPTH


def test_client_address_as_written_and_as_compared() -> None:
    assert fields.client_ip({"ClientIP": "[2A01:110:8068::5F1F]:36185"}) == "[2A01:110:8068::5F1F]:36185"
    assert fields.record_ip({"ClientIP": "[2A01:110:8068::5F1F]:36185"}) == "2a01:110:8068::5f1f"
    record = {"ClientIPAddress": "", "ClientIP": "198.51.100.7:5000", "ActorIpAddress": "192.0.2.1"}
    assert fields.client_ip(record) == "198.51.100.7:5000" and fields.record_ip(record) == "198.51.100.7"
    assert fields.client_ip({}) == fields.record_ip({}) == ""


def test_operation_and_time() -> None:
    assert fields.operation_of({"Operation": " Consent to application. "}) == "consent to application"
    assert fields.operation_of({}) == ""
    assert fields.record_time({"CreationTime": "4/28/2021, 3:05:26.000 PM"}) == datetime(2021, 4, 28, 15, 5, 26,
                                                                                          tzinfo=UTC)
    assert fields.record_time({"CreationTime": "not a time"}) is None


def test_one_value_in_each_shape_exports_give_it() -> None:
    """OperationProperties as a list, a bare object, JSON text; Folders as PowerShell's @{...} strings."""
    props = [{"Name": "MailAccessType", "Value": "Sync"}, {"Name": "IsThrottled", "Value": "True"}]
    for value in (props, json.dumps(props), props[0]):
        assert fields.mail_access_type({"OperationProperties": value}) == "Sync"
    assert fields.is_throttled({"OperationProperties": props})
    sparrow = {"Folders": ["@{Path=\\Inbox; FolderItems=System.Object[]}",
                           {"Path": "\\Sent", "FolderItems": ["@{InternetMessageId=<a@x>; SizeInBytes=12}"]}],
               "Item": {"InternetMessageId": "<b@x>", "ParentFolder": {"Name": "Drafts"}}}  # fmt: skip
    assert list(fields.accessed_messages(sparrow)) == [("\\Sent", "<a@x>"), ("Drafts", "<b@x>")]
    assert fields.synced_folders({"Folders": json.dumps([{"Path": "\\Inbox"}])}) == ["\\Inbox"]
    assert fields.parameters({"Parameters": [{"Name": "ForwardTo", "Value": None}]}) == {"ForwardTo": ""}


def test_a_cell_nested_past_the_limit_is_text_not_a_recursion_error() -> None:
    deep = "[" * 5000 + "]" * 5000
    assert fields.as_list(deep) == [deep]
    assert list(fields.accessed_messages({"Folders": deep})) == []
    assert fields.name_values("[" * (MAX_DEPTH + 5) + "]" * (MAX_DEPTH + 5)) == {}


JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=20),
                    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner,
                                                                                max_size=4),
                    max_leaves=20)  # fmt: skip
KEYS = ["Folders", "Item", "OperationProperties", "Parameters", "ExtendedProperties", "ClientIP", "AppId",
        "AppAccessContext", "CreationTime", "Operation", "UserId", "MailboxOwnerUPN", "Id", "Target"]


def _every_accessor(record: dict[str, Any]) -> None:
    fields.record_time(record), fields.record_ip(record), fields.client_ip(record), fields.record_apps(record)
    fields.operation_of(record), fields.user_of(record), fields.mailbox_of(record), fields.record_id(record)
    fields.parameters(record), fields.mail_access_type(record), fields.is_throttled(record)
    list(fields.accessed_messages(record)), fields.synced_folders(record), fields.guids_in(record.get("Target"))


@settings(max_examples=300)
@given(st.dictionaries(st.sampled_from(KEYS), JSON | JSON.map(json.dumps)))
def test_accessors_never_raise(record: dict[str, Any]) -> None:
    _every_accessor(record)


@pytest.mark.parametrize("parts", [
    ("sentinel-training-lab", "office_activity.csv"), ("sentinel-training-lab", "office_activity_inbox_rule.csv"),
    ("otrf-goldensaml", "OfficeActivityEvents.json"), ("otrf-goldensaml", "Microsoft365DefenderEvents.json"),
    ("msticpy", "demo_exchange_data.csv"),
])  # fmt: skip
def test_every_real_sample_record_reads(parts: tuple[str, str]) -> None:
    _, records = open_input(realdata_path(*parts))
    read = [r for r in records if isinstance(r, RawRecord)]
    assert read
    for record in read:
        _every_accessor(record.data)


def test_record_type_by_number_or_name() -> None:
    assert fields.record_type_code(50) == fields.record_type_code(" 50 ") == 50
    assert fields.record_type_code("exchangeitemaggregated") == fields.RECORD_TYPE_NAMES["ExchangeItemAggregated"]
    assert fields.record_type_code("NoSuchType") is None and fields.record_type_code(None) is None
