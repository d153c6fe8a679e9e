"""The CLIXML re-read: the direct reader agrees with psrpcore's deserializer on every value kind."""

from __future__ import annotations

import datetime as dt
import uuid
import xml.etree.ElementTree as ET
from typing import Any

import psrpcore
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from psrpcore.types import (
    ErrorCategory,
    PSDict,
    PSDuration,
    PSGuid,
    PSInt64,
    PSList,
    PSNoteProperty,
    PSObject,
    deserialize,
    serialize,
)

from mia_bridge.bridge.clixml import (
    TYPE_NAMES_KEY,
    element_to_plain,
    normalise_type_names,
    output_to_record,
    reread,
    to_plain,
)
from mia_bridge.sim.clixml_writer import object_clixml
from mia_bridge.sim.psrp_values import encode_object
from mia_bridge.sim.registry import SimObject

CIPHER = psrpcore.PSRemotingCrypto()


def _both(value: Any) -> tuple[Any, Any]:
    xml = ET.tostring(serialize(value, CIPHER), encoding="unicode")
    fast = element_to_plain(ET.fromstring(xml), type_names=True)
    reference = to_plain(reread(xml), type_names=True)
    return fast, reference


def test_exchange_like_object() -> None:
    obj = encode_object(
        SimObject(
            ["Microsoft.Exchange.Management.SystemConfigurationTasks.UnifiedAuditLogEvent"],
            {
                "RecordType": "ExchangeItem",
                "CreationDate": dt.datetime(2024, 3, 4, 5, 6, 7, 890123, tzinfo=dt.UTC),
                "UserIds": ["alice@contoso.com", "bob@contoso.com"],
                "ResultIndex": 7,
                "ResultCount": 5000,
                "Big": 2**40,
                "Ratio": 0.25,
                "Flag": False,
                "Nothing": None,
                "Nested": SimObject(["Test.Inner"], {"K": "v", "When": dt.datetime(2020, 1, 1, tzinfo=dt.UTC)}),
                "Empty": [],
                "Text": "tab\\there\\n_x0041_ not an escape \U0001f600 \x00 \x1f ünï",
            },
        )
    )
    fast, reference = _both(obj)
    assert fast == reference
    assert fast["CreationDate"] == dt.datetime(2024, 3, 4, 5, 6, 7, 890123, tzinfo=dt.UTC)
    assert fast["UserIds"] == ["alice@contoso.com", "bob@contoso.com"]
    assert fast["Nested"]["When"].tzinfo == dt.UTC
    assert fast["Text"].endswith("\U0001f600 \x00 \x1f ünï")
    assert fast[TYPE_NAMES_KEY][0] == "Microsoft.Exchange.Management.SystemConfigurationTasks.UnifiedAuditLogEvent"


def test_collections_enums_and_exotic_primitives() -> None:
    obj = PSObject()
    obj.PSObject.type_names = ["Test.Bag", "System.Object"]
    values: dict[str, Any] = {
        "Dict": PSDict({"a": 1, "b": PSList(["x", "y"])}),
        "Guid": PSGuid(uuid.UUID("12345678-1234-5678-1234-567812345678")),
        "Duration": PSDuration(days=1, seconds=3, microseconds=500),
        "Long": PSInt64(-(2**62)),
        "Category": ErrorCategory.PermissionDenied,
        "Bytes": b"\x00\x01\xff",
    }
    for key, value in values.items():
        obj.PSObject.adapted_properties.append(PSNoteProperty(key, value))
    fast, reference = _both(obj)
    assert fast == reference
    assert fast["Dict"] == {"a": 1, "b": ["x", "y"]}
    assert fast["Duration"] == 86403.0005
    assert fast["Category"] == "PermissionDenied"
    assert fast["Guid"] == "12345678-1234-5678-1234-567812345678"


def test_repeated_object_references() -> None:
    inner = PSObject()
    inner.PSObject.type_names = ["Test.Shared", "System.Object"]
    inner.PSObject.extended_properties.append(PSNoteProperty("Id", 42))
    outer = PSObject()
    outer.PSObject.type_names = ["Test.Outer", "System.Object"]
    outer.PSObject.extended_properties.append(PSNoteProperty("First", inner))
    outer.PSObject.extended_properties.append(PSNoteProperty("Second", inner))
    fast, reference = _both(outer)
    assert fast == reference
    assert fast["First"]["Id"] == fast["Second"]["Id"] == 42


def test_raw_xml_string_from_pypsrp_is_read() -> None:
    """pypsrp returns a raw XML string for objects without System.Object in their type chain."""
    obj = PSObject()
    obj.PSObject.type_names = ["Microsoft.Exchange.Data.Directory.Recipient.Mailbox"]
    obj.PSObject.adapted_properties.append(PSNoteProperty("AuditEnabled", True))
    xml = ET.tostring(serialize(obj, CIPHER), encoding="unicode")
    assert output_to_record(xml) == {"AuditEnabled": True}


def test_primitive_output_becomes_a_value_record() -> None:
    assert output_to_record("plain text") == {"Value": "plain text"}
    assert output_to_record(5) == {"Value": 5}


def test_deserialized_prefixes_are_removed() -> None:
    assert normalise_type_names(["Deserialized.Deserialized.A.B", "System.Object"]) == ["A.B", "System.Object"]


_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=30),
    st.datetimes(timezones=st.just(dt.UTC), min_value=dt.datetime(1900, 1, 1), max_value=dt.datetime(2200, 1, 1)),
)


@settings(max_examples=60, deadline=None)
@given(st.dictionaries(st.text(min_size=1, max_size=10).filter(str.isidentifier),
                       st.one_of(_SCALARS, st.lists(st.text(max_size=10), max_size=4)), max_size=6))
def test_readers_agree_on_random_objects(props: dict[str, Any]) -> None:
    fast, reference = _both(encode_object(SimObject(["Test.Random"], props)))
    assert fast == reference
    # and both give back exactly what the handler put in
    assert {key: fast[key] for key in props} == props


@settings(max_examples=80, deadline=None)
@given(st.dictionaries(st.text(min_size=1, max_size=10),
                       st.one_of(_SCALARS, st.lists(st.text(max_size=10), max_size=4)), max_size=6))
def test_simulator_writer_matches_psrpcore(props: dict[str, Any]) -> None:
    """The server's direct CLIXML writer reads back exactly like psrpcore's serialization."""
    obj = SimObject(["Test.Random"], {**props, "Inner": SimObject(["Test.Inner"], dict(props)), "Again":
                                      SimObject(["Test.Inner"], {"K": ["x"]})})
    direct = object_clixml(obj)
    assert direct is not None
    via_psrpcore = ET.tostring(serialize(encode_object(obj), CIPHER), encoding="unicode")
    assert element_to_plain(ET.fromstring(direct), type_names=True) == element_to_plain(
        ET.fromstring(via_psrpcore), type_names=True)
    assert to_plain(reread(direct.decode())) == to_plain(reread(via_psrpcore))


def test_simulator_writer_is_byte_identical_on_an_audit_record() -> None:
    obj = SimObject(["Microsoft.Exchange.Management.SystemConfigurationTasks.UnifiedAuditLogEvent"], {
        "RecordType": "ExchangeItem", "CreationDate": dt.datetime(2024, 1, 2, 3, 4, 5, tzinfo=dt.UTC),
        "UserIds": "alice@contoso.com", "Operations": "MailItemsAccessed", "AuditData": '{"a": "<&_x>"}',
        "ResultIndex": 1, "ResultCount": 2, "Identity": "5d3e", "IsValid": True, "ObjectState": "Unchanged",
        "Tags": ["a", "b"], "Empty": [], "Nothing": None, "Big": 2**40, "Ratio": 0.5,
        "Escapes": "\x00\x1f\x7f\x85\x9f \U0001f600 _X _x tab\t",
    })
    expected = ET.tostring(serialize(encode_object(obj), CIPHER), encoding="unicode")
    assert object_clixml(obj) == ET.tostring(ET.fromstring(expected), encoding="utf-8").replace(
        b"<?xml version='1.0' encoding='utf-8'?>\n", b"")


@pytest.mark.parametrize(
    "text",
    ["2024-01-02T03:04:05.1234567Z", "2024-01-02T03:04:05Z", "2024-01-02T03:04:05.5+02:00", "2024-01-02T03:04:05",
     "2024-01-02T03:04:05.0000001-05:30", "0001-01-01T00:00:00", "9999-12-31T23:59:59.9999999Z"],
)
def test_datetime_forms_read_like_psrpcore(text: str) -> None:
    element = ET.fromstring(f"<DT>{text}</DT>")
    assert element_to_plain(element) == to_plain(deserialize(element, CIPHER))
    assert element_to_plain(element).tzinfo == dt.UTC
