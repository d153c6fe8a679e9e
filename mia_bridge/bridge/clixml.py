"""Re-read PSRP output with psrpcore and turn it into plain Python.

pypsrp's own deserializer leaves dates as strings and hands back Exchange multi-valued properties
(and objects whose type chain lacks System.Object) as raw CLIXML text. Every pypsrp complex object
keeps its source XML, so we deserialize that again with psrpcore, then convert: dicts for objects,
lists for collections, aware UTC datetimes for DateTime, int/float/bool/str for primitives.
"""

from __future__ import annotations

import datetime as dt
import decimal
import enum
import uuid
import xml.etree.ElementTree as ET
from typing import Any

import psrpcore
from psrpcore.types import PSDictBase, PSListBase, PSObject, PSQueueBase, PSStackBase, deserialize

DESERIALIZED = "Deserialized."
TYPE_NAMES_KEY = "__type_names__"


def output_to_record(obj: Any, *, type_names: bool = False) -> dict[str, Any]:
    """One pypsrp output object → a dict of plain values (a bare value becomes ``{"Value": v}``)."""
    plain = to_plain(reread(obj), type_names=type_names)
    return plain if isinstance(plain, dict) else {"Value": plain}


def reread(obj: Any) -> Any:
    """The psrpcore view of a pypsrp value: deserialize its source XML when it has one."""
    xml = getattr(obj, "_xml", None)
    if xml is None and isinstance(obj, str) and obj.startswith("<") and obj.rstrip().endswith(">"):
        xml = obj  # pypsrp gave up and returned the element as text
    if xml is None:
        return obj
    try:
        element = ET.fromstring(xml)
    except ET.ParseError:
        return obj
    return deserialize(element, psrpcore.PSRemotingCrypto())


def normalise_type_names(names: list[str]) -> list[str]:
    """Drop the ``Deserialized.`` prefixes remoting adds (psrpcore adds a second one)."""
    out = []
    for name in names:
        while name.startswith(DESERIALIZED):
            name = name[len(DESERIALIZED):]
        out.append(name)
    return out


def to_plain(value: Any, *, type_names: bool = False, _depth: int = 0) -> Any:
    """psrpcore values → str/int/float/bool/None/aware UTC datetime/list/dict."""
    if _depth > 50:
        raise ValueError("object nesting deeper than 50 levels")
    nxt = _depth + 1
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            return dt.datetime(*value.timetuple()[:6], value.microsecond, tzinfo=dt.UTC)
        return dt.datetime(*value.astimezone(dt.UTC).timetuple()[:6], value.microsecond, tzinfo=dt.UTC)
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    if isinstance(value, enum.Enum):
        return value.name
    if isinstance(value, str):
        return str(value)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    if isinstance(value, decimal.Decimal):
        return float(value)
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, bytes | bytearray):
        return bytes(value).hex()
    if isinstance(value, PSDictBase | dict):
        return {str(to_plain(k, _depth=nxt)): to_plain(v, type_names=type_names, _depth=nxt) for k, v in value.items()}
    if isinstance(value, PSQueueBase):
        return [to_plain(v, type_names=type_names, _depth=nxt) for v in list(value.queue)]
    if isinstance(value, PSListBase | PSStackBase | list | tuple):
        return [to_plain(v, type_names=type_names, _depth=nxt) for v in value]
    if isinstance(value, PSObject):
        meta = value.PSObject
        props = list(meta.adapted_properties) + list(meta.extended_properties)
        if not props:
            text = getattr(meta, "to_string", None)
            return str(text) if text is not None else str(value)
        out: dict[str, Any] = {}
        for prop in props:
            out[prop.name] = to_plain(prop.get_value(value), type_names=type_names, _depth=nxt)
        if type_names:
            out[TYPE_NAMES_KEY] = normalise_type_names(list(meta.type_names))
        return out
    return value
