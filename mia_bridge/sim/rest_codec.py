"""Wire formats of the simulated REST endpoints: InvokeCommand values and errors, Graph JSON.

``exo_object`` writes a cmdlet's output object as the admin API does (DateTime as
``2022-09-21T08:07:47.0000000+00:00`` with ``@data.type``, collections annotated);
``decode_rest_parameters`` binds request parameters leniently (strings or JSON types, offset-less
UTC dates); ``cmdlet_error_body`` is the OData error shape the module's ``Get-ErrorMessage`` parses;
``graph_json`` turns a Get-Mg* object into Graph's camelCase JSON.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import uuid
from typing import Any

from psrpcore.types import ErrorCategory

from mia_bridge.bridge.backend import Secret
from mia_bridge.sim.registry import SimCmdletError, SimObject

JSON_CONTENT_TYPE = "application/json;odata.metadata=minimal;odata.streaming=true;IEEE754Compatible=false;charset=utf-8"
_DATE_PARAM = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)?$")

# PowerShell's System.Management.Automation.ErrorCategory, name → value (what details[].code carries).
ERROR_CATEGORY_VALUES: dict[str, int] = {c.name: c.value for c in ErrorCategory}


# --- value encoding -----------------------------------------------------------------------------


def dotnet_utc(value: dt.datetime) -> str:
    """A DateTime as EXO's REST layer writes it: 7 fraction digits and an explicit +00:00."""
    aware = value if value.tzinfo is not None else value.replace(tzinfo=dt.UTC)
    utc = aware.astimezone(dt.UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond:06d}0+00:00"


def exo_object(obj: SimObject | dict[str, Any]) -> dict[str, Any]:
    """A cmdlet output object as one ``value`` entry with the module's type annotations."""
    props = obj.properties if isinstance(obj, SimObject) else obj
    out: dict[str, Any] = {}
    for key, value in props.items():
        if isinstance(value, dt.datetime):
            out[f"{key}@data.type"] = "System.DateTime"
        elif isinstance(value, list | tuple):
            out[f"{key}@odata.type"] = _collection_type(value)
        elif isinstance(value, uuid.UUID):
            out[f"{key}@odata.type"] = "#Guid"
        out[key] = _exo_value(value)
    return out


def _collection_type(items: list[Any] | tuple[Any, ...]) -> str:
    """``#Collection(String)`` as captured for string lists; dates and numbers say what they hold."""
    if items and all(isinstance(v, dt.datetime) for v in items):
        return "#Collection(DateTimeOffset)"
    if items and all(isinstance(v, int) and not isinstance(v, bool) for v in items):
        return "#Collection(Int64)"
    return "#Collection(String)"


def _exo_value(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return dotnet_utc(value)
    if isinstance(value, list | tuple):
        return [_exo_value(v) for v in value]
    if isinstance(value, SimObject | dict):
        return exo_object(value)
    if isinstance(value, Secret):
        return "System.Security.SecureString"  # what ToString() of a SecureString gives
    if isinstance(value, uuid.UUID):
        return str(value)
    return value


def decode_rest_parameters(raw: Any) -> dict[str, Any]:
    """InvokeCommand ``Parameters`` → handler parameters, leniently, as the service binds them."""
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise SimCmdletError("Parameters must be a JSON object.", category="InvalidArgument", error_id="BadRequest")
    return {str(k): _decode_param(v) for k, v in raw.items() if "@" not in str(k)}


def _decode_param(value: Any) -> Any:
    if isinstance(value, str) and _DATE_PARAM.match(value):
        text = value[:-1] + "+00:00" if value.endswith("Z") else value
        parsed = dt.datetime.fromisoformat(text)
        return parsed.replace(tzinfo=dt.UTC) if parsed.tzinfo is None else parsed.astimezone(dt.UTC)
    if isinstance(value, list):
        return [_decode_param(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _decode_param(v) for k, v in value.items() if not str(k).startswith("@odata")}
    return value


def graph_json(value: Any) -> Any:
    """A Get-Mg* output value as Graph JSON: camelCase names, ISO-8601 Z dates, AdditionalProperties merged."""
    if isinstance(value, SimObject):
        value = value.properties
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, item in value.items():
            if key == "AdditionalProperties" and isinstance(item, dict):
                out.update({str(k): graph_json(v) for k, v in item.items()})
                continue
            out[_camel(str(key))] = graph_json(item)
        return out
    if isinstance(value, list | tuple):
        return [graph_json(v) for v in value]
    if isinstance(value, dt.datetime):
        aware = value if value.tzinfo is not None else value.replace(tzinfo=dt.UTC)
        return aware.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")
    if isinstance(value, uuid.UUID):
        return str(value)
    return value


def _camel(name: str) -> str:
    return name[:1].lower() + name[1:] if name else name


# --- errors -------------------------------------------------------------------------------------


def cmdlet_error_body(err: SimCmdletError) -> dict[str, Any]:
    """A terminating cmdlet error in the shape the module's ``Get-ErrorMessage`` parses."""
    category = ERROR_CATEGORY_VALUES.get(err.category, 0)
    string_id = err.error_id.split(",")[0] if err.error_id else ""
    detail = {"ClassName": err.exception_type, "Message": err.message, "localizedString": {"stringId": string_id}}
    return {
        "error": {
            "code": "BadRequest",
            "message": err.message,
            "details": [{"code": category, "target": err.target or "", "message": json.dumps(detail)}],
            "innererror": {
                "message": err.message,
                "type": err.exception_type,
                "internalexception": {"message": err.message},
            },
        }
    }


def is_throttle(err: SimCmdletError) -> bool:
    text = f"{err.exception_type} {err.error_id} {err.message}".lower()
    return err.category in ("LimitsExceeded", "QuotaExceeded") or "throttl" in text or "micro delay" in text
