"""Re-read PSRP output from its CLIXML and turn it into plain Python.

pypsrp's own deserializer leaves dates as strings and hands back Exchange multi-valued properties
(and objects whose type chain lacks System.Object) as raw CLIXML text. Every pypsrp complex object
keeps its source XML, so we read that again: dicts for objects, lists for collections, aware UTC
datetimes for DateTime, int/float/bool/str for primitives.

Two readers give the same result: ``to_plain(reread(obj))`` builds psrpcore PSObjects first (the
reference), ``element_to_plain`` walks the XML directly with psrpcore's primitive decoders and is
several times faster (see benchmarks/bench_clixml.py); ``output_to_record`` uses the fast one.
"""

from __future__ import annotations

import base64
import datetime as dt
import decimal
import enum
import uuid
import xml.etree.ElementTree as ET
from typing import Any

import psrpcore
from psrpcore.types import PSDictBase, PSListBase, PSObject, PSQueueBase, PSStackBase, deserialize

# psrpcore's own primitive decoders (private, hence the pin <0.4): the same parsing as the reference.
from psrpcore.types._serializer import _deserialize_datetime as _psrp_datetime
from psrpcore.types._serializer import _deserialize_duration as _psrp_duration
from psrpcore.types._serializer import _deserialize_string as _psrp_string

DESERIALIZED = "Deserialized."
TYPE_NAMES_KEY = "__type_names__"


def output_to_record(obj: Any, *, type_names: bool = False) -> dict[str, Any]:
    """One pypsrp output object → a dict of plain values (a bare value becomes ``{"Value": v}``)."""
    element = _source_element(obj)
    plain = element_to_plain(element, type_names=type_names) if element is not None else to_plain(obj)
    return plain if isinstance(plain, dict) else {"Value": plain}


class RawClixml(str):
    """Pipeline output left as its CLIXML text (the backend skips pypsrp's own reading)."""


def _source_element(obj: Any) -> ET.Element | None:
    if isinstance(obj, RawClixml):
        return ET.fromstring(obj)
    xml = getattr(obj, "_xml", None)
    if xml is None and isinstance(obj, str) and obj.startswith("<") and obj.rstrip().endswith(">"):
        xml = obj  # pypsrp gave up and returned the element as text
    if xml is None:
        return None
    try:
        return ET.fromstring(xml)
    except ET.ParseError:
        return None


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
            if text is not None:
                return str(text)
        out: dict[str, Any] = {}
        for prop in props:
            out[prop.name] = to_plain(prop.get_value(value), type_names=type_names, _depth=nxt)
        if type_names:
            out[TYPE_NAMES_KEY] = normalise_type_names(list(meta.type_names))
        return out
    return value


# --- the direct reader ---------------------------------------------------------------------------

_INTEGERS = frozenset({"By", "SB", "U16", "I16", "U32", "I32", "U64", "I64"})
_FLOATS = frozenset({"Sg", "Db", "D"})
_TEXTS = frozenset({"S", "URI", "XD", "SBK", "Version"})
_COLLECTIONS = ("LST", "IE", "STK", "QUE")


def _text(value: str | None) -> str:
    if not value:
        return ""
    return _psrp_string(value) if ("_x" in value or "_X" in value) else value


def element_to_plain(element: ET.Element, *, type_names: bool = False) -> Any:
    """A CLIXML element → plain Python, as ``to_plain(reread(...))`` would give, without PSObjects."""
    return _Reader(type_names).read(element)


def _datetime(text: str) -> dt.datetime:
    """A .NET DateTime as aware UTC; fromisoformat reads the usual forms (7-digit fractions truncated
    as psrpcore does), psrpcore's parser the rest."""
    try:
        value = dt.datetime.fromisoformat(text)
        return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)
    except (ValueError, OverflowError):
        result: dt.datetime = to_plain(_psrp_datetime(text))
        return result


class _Reader:
    def __init__(self, type_names: bool) -> None:
        self.type_names = type_names
        self.refs: dict[str, Any] = {}
        self.tn_refs: dict[str, list[str]] = {}

    def read(self, el: ET.Element, depth: int = 0) -> Any:
        if depth > 50:
            raise ValueError("object nesting deeper than 50 levels")
        tag = el.tag
        if tag == "S":
            return _text(el.text)
        if tag in _INTEGERS:
            return int(el.text or "0")
        if tag == "Nil":
            return None
        if tag == "B":
            return (el.text or "").lower() == "true"
        if tag == "DT":
            return _datetime(el.text or "")
        if tag == "Obj":
            return self._obj(el, depth)
        if tag == "Ref":
            return self.refs.get(el.attrib.get("RefId", ""))
        if tag in _FLOATS:
            return float(el.text or "0")
        if tag in _TEXTS:
            return _text(el.text)
        if tag == "G":
            return str(uuid.UUID(el.text or ""))
        if tag == "TS":
            return _psrp_duration(el.text or "").total_seconds()
        if tag == "C":
            return chr(int(el.text or "0"))
        if tag == "BA":
            return base64.b64decode(el.text or "").hex()
        if tag == "ToString":
            return _text(el.text)
        # SecureString and anything exotic: let psrpcore decide.
        return to_plain(deserialize(el, psrpcore.PSRemotingCrypto()))

    def _obj(self, el: ET.Element, depth: int) -> Any:
        names: list[str] = []
        tn = el.find("TN")
        if tn is not None:
            names = [t.text or "" for t in tn.findall("T")]
            self.tn_refs[tn.attrib.get("RefId", "")] = names
        else:
            ref = el.find("TNRef")
            if ref is not None:
                names = self.tn_refs.get(ref.attrib.get("RefId", ""), [])
        ref_id = el.attrib.get("RefId", "")
        props: dict[str, Any] | None = None
        value: Any = _MISSING
        to_string: str | None = None
        for child in el:
            tag = child.tag
            if tag in ("TN", "TNRef"):
                continue
            if tag in ("Props", "MS"):
                if props is None:
                    props = {}
                for prop in child:
                    props[_text(prop.attrib.get("N", ""))] = self.read(prop, depth + 1)
            elif tag in _COLLECTIONS:
                value = [self.read(item, depth + 1) for item in child]
            elif tag == "DCT":
                value = {}
                for entry in child.findall("En"):
                    key = val = None
                    for part in entry:
                        if part.attrib.get("N") == "Key":
                            key = self.read(part, depth + 1)
                        elif part.attrib.get("N") == "Value":
                            val = self.read(part, depth + 1)
                    value[str(key)] = val
            elif tag == "ToString":
                to_string = _text(child.text)
            else:
                value = self.read(child, depth + 1)
        if props:
            result: Any = props
            if self.type_names:
                props[TYPE_NAMES_KEY] = normalise_type_names(names)
        elif value is not _MISSING:
            is_enum = "System.Enum" in names or "Deserialized.System.Enum" in names
            result = to_string if is_enum and to_string is not None else value
        elif to_string is not None:
            result = to_string
        else:
            result = {TYPE_NAMES_KEY: normalise_type_names(names)} if self.type_names else {}
        if ref_id:
            self.refs[ref_id] = result
        return result


_MISSING = object()
