"""A record's canonical content: the whole parsed AuditData, for deciding duplicates.

Every field takes part. Values are normalised only where the same value is known to be spelled
differently by different export paths:

- key order (objects are mappings);
- a number or a boolean written as a string (``"50"``/``50``, ``"False"``/``false``: Sentinel, CSV cells);
- a nested JSON document stored as a string (Sentinel's ``Folders``, Sparrow's cells) and its object;
- a one-element array written as the bare element, and PowerShell's ``@{Name=Value; ...}`` object string
  (both from a shallow ``ConvertTo-Json``); its ``System.Object[]`` is a value the export lost and matches
  any value, never a different one;
- Sentinel's/Defender's names for numeric enums (``RecordType`` ``ExchangeItemAggregated``/50, ``UserType``
  ``Regular``/0, ``LogonType`` ``Owner``/0) and its field names (mapped by the readers);
- times (fields whose name ends in ``Time`` or ``Date``): ``…07Z``, ``…07.0000000Z`` and the portal's
  US-locale form are one instant;
- ``InternetMessageId`` with or without its angle brackets (Sparrow strips them).

Nothing else: case, whitespace and every other field count. Empty values (``null``, ``""``, ``[]``,
``{}``) are absent values: CSV cells cannot tell them apart.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from dataclasses import dataclass
from typing import Any

from mia_bridge.records.cells import PS_OBJECT_ARRAY, parse_ps_hashtable
from mia_bridge.records.fields import LOGON_TYPES, RECORD_TYPE_NAMES
from mia_bridge.records.timestamps import parse_time

# Values nested deeper than this (JSON inside strings inside JSON ...) are compared as their text.
MAX_DEPTH = 64

_NUMBER = re.compile(r"-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?")
# https://learn.microsoft.com/office/office-365-management-api/office-365-management-activity-api-schema
# (Enum: User Type); Sentinel's OfficeActivity writes the names.
_USER_TYPES = {"Regular": 0, "Reserved": 1, "Admin": 2, "DcAdmin": 3, "System": 4, "Application": 5,
               "ServicePrincipal": 6, "CustomPolicy": 7, "SystemPolicy": 8}
_ENUMS: dict[str, dict[str, int]] = {
    "RecordType": RECORD_TYPE_NAMES,
    "UserType": _USER_TYPES,
    "LogonType": {name: int(number) for number, name in LOGON_TYPES.items()},
    "InternalLogonType": {name: int(number) for number, name in LOGON_TYPES.items()},
}


class _Lost:
    """A value the export did not keep (``System.Object[]``): it matches any value."""

    _instance: _Lost | None = None

    def __new__(cls) -> _Lost:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "<lost by the export>"


LOST = _Lost()


def _number(value: float | int) -> str:
    if isinstance(value, float):
        if math.isfinite(value) and value == int(value):
            return str(int(value))
        return repr(value)
    return str(value)


def _scalar(key: str | None, value: Any) -> Any:
    """The canonical form of a scalar (always a string), or a structure when a string holds one."""
    if isinstance(value, bool):
        return "true" if value else "false"
    text = _number(value) if isinstance(value, int | float) else str(value)
    if key is not None:
        if key in _ENUMS and text in _ENUMS[key]:
            return str(_ENUMS[key][text])
        if key == "InternetMessageId":
            return text.strip().strip("<>").strip() if text.strip().startswith("<") else text
        if key.endswith(("Time", "Date")):
            when = parse_time(text)
            if when is not None:
                return when.isoformat()
    lowered = text.lower()
    if lowered in ("true", "false"):
        return lowered
    if _NUMBER.fullmatch(text):
        try:
            return _number(int(text) if text.lstrip("-").isdigit() else float(text))
        except (ValueError, OverflowError):
            return text
    return text


def canonical(value: Any, key: str | None = None, depth: int = 0) -> Any:
    """The canonical form of ``value`` (under field ``key``); None when the value is empty."""
    if value is None:
        return None
    if depth > MAX_DEPTH:
        return json.dumps(value, sort_keys=True, default=str) if not isinstance(value, str) else value
    if isinstance(value, str):
        stripped = value.strip()
        if not stripped:
            return None
        if stripped == PS_OBJECT_ARRAY:
            return LOST
        if stripped[:1] in "[{" and stripped[-1:] in "]}":
            try:
                return canonical(json.loads(stripped), key, depth + 1)
            except (ValueError, RecursionError):
                pass
        if stripped.startswith("@{"):
            parsed = parse_ps_hashtable(stripped)
            if parsed is not None:
                return canonical(parsed, key, depth + 1)
        return _scalar(key, value)
    if isinstance(value, dict):
        result = {}
        for name, inner in value.items():
            form = canonical(inner, str(name), depth + 1)
            if form is not None:
                result[str(name)] = form
        return result or None
    if isinstance(value, list | tuple):
        items = [canonical(inner, key, depth + 1) for inner in value]
        if not items:
            return None
        return items[0] if len(items) == 1 else items
    return _scalar(key, value)


def count_lost(form: Any) -> int:
    if form is LOST:
        return 1
    if isinstance(form, dict):
        return sum(count_lost(v) for v in form.values())
    if isinstance(form, list):
        return sum(count_lost(v) for v in form)
    return 0


def _tagged(form: Any) -> Any:
    """``form`` with every string tagged, so the lost marker cannot be spelled by a record's own text."""
    if form is LOST:
        return ["lost"]
    if isinstance(form, dict):
        return {name: _tagged(value) for name, value in form.items()}
    if isinstance(form, list):
        return [_tagged(value) for value in form]
    return "s" + str(form)


def digest(form: Any) -> str:
    """A hash of a canonical form: equal forms have equal digests, a lost value only equals a lost value."""
    text = json.dumps(_tagged(form), sort_keys=True, ensure_ascii=False)
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).hexdigest()


def differences(a: Any, b: Any, path: str = "", out: list[str] | None = None) -> list[str]:
    """Where two canonical forms differ (dotted paths, ``[i]`` for list positions); a lost value matches."""
    found = [] if out is None else out
    if a is LOST or b is LOST:
        return found
    if isinstance(a, dict) and isinstance(b, dict):
        for name in sorted(a.keys() | b.keys()):
            differences(a.get(name), b.get(name), f"{path}.{name}" if path else name, found)
        return found
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        for index, (x, y) in enumerate(zip(a, b, strict=True)):
            differences(x, y, f"{path}[{index}]", found)
        return found
    if a != b:
        found.append(path or "(record)")
    return found


@dataclass(frozen=True)
class Content:
    """One record's canonical content and how completely its export kept it."""

    form: dict[str, Any]
    partial: bool  # from an export that projects the record onto its own columns: absent fields unknown
    lost: int  # values the export lost (System.Object[])

    def differs_from(self, other: Content) -> list[str]:
        """The fields in which the two records differ; empty when they are the same record."""
        a, b = self.form, other.form
        if self.partial or other.partial:
            shared = a.keys() & b.keys()  # a field one export cannot carry is not evidence of a difference
            a = {k: v for k, v in a.items() if k in shared}
            b = {k: v for k, v in b.items() if k in shared}
        return differences(a, b)

    def better_than(self, other: Content) -> bool:
        """Whether this copy keeps more of the record than ``other`` (fewer lost values, then all fields)."""
        return (self.lost, self.partial) < (other.lost, other.partial)


def content(data: dict[str, Any], *, partial: bool = False, drop: frozenset[str] = frozenset()) -> Content:
    """The ``Content`` of one parsed record; ``drop`` names fields its export only guessed."""
    form = canonical({k: v for k, v in data.items() if k not in drop}) or {}
    if not isinstance(form, dict):  # a record is an object; canonical() only unwraps lists
        form = {"": form}
    return Content(form=form, partial=partial, lost=count_lost(form))
