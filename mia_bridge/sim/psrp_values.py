"""PSRP values for the simulated server: typed cmdlet parameters in, output objects and errors out.

``decode_parameters`` turns what psrpcore deserialized into what handlers get (str, int, bool for
switches, aware UTC datetime, list, ``Secret`` for a SecureString) and binds them as PowerShell would;
``encode_object`` and ``error_record`` build the psrpcore objects PowerShell would send.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable
from typing import Any

from psrpcore.types import (
    ErrorCategory,
    ErrorCategoryInfo,
    ErrorRecord,
    NETException,
    PSDateTime,
    PSDouble,
    PSInt64,
    PSList,
    PSNoteProperty,
    PSObject,
    PSSecureString,
)

from mia_bridge.bridge.backend import Secret
from mia_bridge.sim.clixml_writer import MULTI_VALUED_TYPE
from mia_bridge.sim.registry import SimCmdletError, SimObject


class ParameterBindingError(SimCmdletError):
    """The pipeline's parameters cannot be bound (duplicate or positional)."""


# --- parameters ---------------------------------------------------------------------------------


def decode_parameters(cmdlet: str, raw: Iterable[tuple[str | None, Any]]) -> dict[str, Any]:
    """Typed PSRP parameters → plain Python, binding them as PowerShell would (no duplicates)."""
    params: dict[str, Any] = {}
    seen: set[str] = set()
    for name, value in raw:
        if name is None:
            raise ParameterBindingError(
                f"A positional parameter cannot be found that accepts argument '{decode_value(value)}'.",
                category="InvalidArgument",
                error_id=f"PositionalParameterNotFound,{cmdlet}",
                exception_type="System.Management.Automation.ParameterBindingException",
            )
        key = name.lstrip("-")
        if key.lower() in seen:
            raise ParameterBindingError(
                f"Cannot bind parameter because parameter '{key}' is specified more than once.",
                category="InvalidArgument",
                error_id=f"ParameterAlreadyBound,{cmdlet}",
                exception_type="System.Management.Automation.ParameterBindingException",
            )
        seen.add(key.lower())
        # A parameter without a value is a present switch.
        params[key] = True if value is None else decode_value(value)
    return params


def decode_value(value: Any) -> Any:
    """One deserialized PSRP value → str/int/float/bool/aware UTC datetime/list/dict/Secret."""
    if isinstance(value, PSSecureString):
        return Secret(str(value.decrypt()))
    if isinstance(value, bool):
        return bool(value)
    if isinstance(value, PSDateTime | dt.datetime):
        if value.tzinfo is None:
            return dt.datetime(*value.timetuple()[:6], value.microsecond, tzinfo=dt.UTC)
        return dt.datetime.fromtimestamp(value.timestamp(), tz=dt.UTC).replace(microsecond=value.microsecond)
    if isinstance(value, str):
        return str(value)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    if isinstance(value, list | tuple):
        return [decode_value(v) for v in value]
    if isinstance(value, dict):
        return {str(decode_value(k)): decode_value(v) for k, v in value.items()}
    return value


# --- output objects and errors ------------------------------------------------------------------


def encode_object(obj: SimObject) -> PSObject:
    """A SimObject as a PowerShell object with its type names and adapted properties."""
    ps = PSObject()
    names = list(obj.type_names)
    # pypsrp returns a raw XML string for objects whose type chain lacks System.Object.
    if "System.Object" not in names:
        names.append("System.Object")
    ps.PSObject.type_names = names
    for key, value in obj.properties.items():
        ps.PSObject.adapted_properties.append(PSNoteProperty(key, encode_value(value)))
    return ps


def encode_value(value: Any) -> Any:
    if isinstance(value, SimObject):
        return encode_object(value)
    if isinstance(value, dt.datetime):
        aware = value if value.tzinfo is not None else value.replace(tzinfo=dt.UTC)
        return PSDateTime(*aware.astimezone(dt.UTC).timetuple()[:6], aware.microsecond, tzinfo=dt.UTC)
    if isinstance(value, list | tuple):
        items = PSList([encode_value(v) for v in value])
        items.PSObject.type_names = [MULTI_VALUED_TYPE, "System.Object"]
        return items
    if isinstance(value, Secret):
        return PSSecureString(value.reveal())
    if isinstance(value, int) and not isinstance(value, bool) and not -(2**31) <= value < 2**31:
        return PSInt64(value)
    if isinstance(value, float):
        return PSDouble(value)  # psrpcore would send a Python float as Single and lose precision
    return value


_CATEGORIES = {c.name: c for c in ErrorCategory}


_XML_INVALID = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f]")


def error_record(err: SimCmdletError) -> ErrorRecord:
    """A SimCmdletError as the ErrorRecord PowerShell would send."""
    # psrpcore writes the record's ToString unescaped; control characters there would make the whole
    # message unparseable XML for the client, so they are shown as U+FFFD in error text.
    exception = NETException(Message=_XML_INVALID.sub("\ufffd", err.message))
    type_names = [err.exception_type]
    if err.exception_type != "System.Exception":
        type_names.append("System.Exception")
    type_names.append("System.Object")
    exception.PSObject.type_names = type_names
    category = _CATEGORIES.get(err.category, ErrorCategory.NotSpecified)
    return ErrorRecord(
        Exception=exception,
        CategoryInfo=ErrorCategoryInfo(
            Category=category,
            Reason=err.exception_type.rsplit(".", 1)[-1],
            TargetName=err.target or None,
        ),
        TargetObject=err.target or None,
        FullyQualifiedErrorId=err.error_id or err.exception_type.rsplit(".", 1)[-1],
    )
