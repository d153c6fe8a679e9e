"""What the pypsrp backend sends for a ``CmdletCall`` on each kind of jump-host endpoint.

Remoting serializes output at depth 1: objects inside properties and collections (the service plans of
a SKU, a message's sender and recipients, a service principal's app roles) arrive as their ToString()
text, the type name. So whatever the product reads below depth 1 comes back as JSON text made on the
jump host, on both endpoints:

- ``plain``: a standard endpoint (``Microsoft.PowerShell`` or any unrestricted configuration, restricted
  to an admin group). The real cmdlets are called; for ``NESTED`` cmdlets a second pipeline command
  ``ConvertTo-Json -Depth 10 -Compress`` (typed parameters, never script text) is added, and its one
  string (an array, or a single object) is parsed here.
- ``jea``: the JEA endpoint of ps_scripts/ (``MiaBridge``). Exchange and Graph commands are private
  there; the role capability defines one function per command (``Verb-MiaNoun``: ``Search-UnifiedAuditLog``
  → ``Search-MiaUnifiedAuditLog``) that connects on first use with the LocalMachine certificate, runs the
  cmdlet and emits flat objects; the Graph functions emit one compressed JSON string per item.
  ``Connect-MiaTenant`` replaces Connect-ExchangeOnline / Connect-MgGraph.

The kind is the ``endpoint_kind`` setting (``--endpoint-kind``); ``auto`` (the default) picks ``jea`` when
the configuration name is ``MiaBridge`` (what ps_scripts/Install-MiaJumpHost.ps1 registers), else ``plain``.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Iterable, Mapping
from typing import Any

from mia_bridge.bridge.backend import CmdletCall
from mia_bridge.errors import BridgeError, UsageError

ENDPOINT_KINDS = ("auto", "plain", "jea")
JEA_CONFIGURATION = "MiaBridge"
JSON_DEPTH = 10

# Cmdlets whose output the product reads below depth 1 (nested objects): they come back as JSON.
NESTED = frozenset({
    "get-mgsubscribedsku",  # ServicePlans → licence detection (Audit Premium)
    "get-mgdomain",  # State, PasswordValidityPeriod … (the raw inventory keeps all of it)
    "get-mgserviceprincipal",  # AppRoles → Graph permission names
    "get-mgusermessage",  # From / ToRecipients / CcRecipients / BccRecipients
    "get-mgdomainfederationconfiguration",  # federation settings (nested signing certificates)
})

JEA_CONNECT = "Connect-MiaTenant"
JEA_DISCONNECT = "Disconnect-MiaTenant"
# The connection cmdlets the bridge sends on a plain endpoint; the JEA functions connect themselves.
_CONNECTIONS = frozenset({"connect-exchangeonline", "disconnect-exchangeonline", "connect-mggraph"})
_MESSAGE_ID_FILTER = re.compile(r"^internetMessageId eq '((?:[^']|'')*)'$", re.IGNORECASE)
_RECEIVED_FILTER = re.compile(r"^receivedDateTime lt (\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ)$", re.IGNORECASE)
# Windows PowerShell 5.1 (JavaScriptSerializer) writes a DateTime as the JSON text "\/Date(<ms>)\/" -- with
# escaped slashes, which it never writes inside an ordinary string -- so only that exact token is a date:
# a hostile subject "/Date(0)/" stays text.
_MS_DATE_TOKEN = re.compile(r'"\\/Date\((-?\d+)(?:[+-]\d{4})?\)\\/"')
_DATE_KEY = "\u0000mia-date"
_ISO_DATE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)?$")


def resolve_kind(kind: str, configuration_name: str) -> str:
    """``plain`` or ``jea`` for a setting (``auto`` decides by the configuration name)."""
    if kind not in ENDPOINT_KINDS:
        raise UsageError(f"endpoint kind must be one of {', '.join(ENDPOINT_KINDS)}, not {kind!r}")
    if kind != "auto":
        return kind
    return "jea" if configuration_name.lower() == JEA_CONFIGURATION.lower() else "plain"


def jea_function(cmdlet: str) -> str:
    """The role capability's function for a cmdlet: ``Verb-Noun`` → ``Verb-MiaNoun``."""
    verb, _, noun = cmdlet.partition("-")
    return f"{verb}-Mia{noun}"


def jea_call(call: CmdletCall) -> CmdletCall:
    """The call as the JEA endpoint takes it: the function's name and its (validated) parameters."""
    params = dict(call.parameters)
    if call.name.lower() == "get-mgusermessage":
        # The function builds the anchored, quote-escaped filter itself and always selects the fixed
        # metadata properties: the bridge sends the message id or the time, never a filter or -Property.
        params.pop("Property", None)
        text = str(params.pop("Filter", "") or "")
        by_id, by_time = _MESSAGE_ID_FILTER.match(text), _RECEIVED_FILTER.match(text)
        if by_id is not None:
            params["InternetMessageId"] = by_id.group(1).replace("''", "'")
        elif by_time is not None:
            params["ReceivedBefore"] = dt.datetime.fromisoformat(by_time.group(1).replace("Z", "+00:00"))
        elif text:
            raise UsageError(f"the JEA endpoint has no Get-MgUserMessage filter like {text!r}")
    elif call.name.lower() in ("get-mgusermailfolder", "get-mgusermailfolderchildfolder"):
        params.pop("Property", None)  # the function selects id, displayName and childFolderCount itself
    return CmdletCall(jea_function(call.name), params, select=call.select)


def is_connection(cmdlet: str) -> bool:
    return cmdlet.lower() in _CONNECTIONS


def decode_json_output(output: Iterable[Mapping[str, Any]], *, what: str) -> list[dict[str, Any]]:
    """Records from JSON strings (``{"Value": text}`` each): one array or object per string."""
    records: list[dict[str, Any]] = []
    for item in output:
        text = item.get("Value")
        if not isinstance(text, str):
            raise BridgeError(f"{what}: expected JSON text from the jump host, got an object")
        text = _MS_DATE_TOKEN.sub(lambda m: '{"\\u0000mia-date":' + m.group(1) + "}", text)
        try:
            doc = json.loads(text)
        except json.JSONDecodeError as exc:
            raise BridgeError(f"{what}: the jump host sent JSON that does not parse ({exc.msg} at {exc.pos})") from None
        for entry in doc if isinstance(doc, list) else [doc]:
            if not isinstance(entry, dict):
                raise BridgeError(f"{what}: expected JSON objects from the jump host, got {type(entry).__name__}")
            records.append(_dates(entry))
    return records


def _dates(value: Any, key: str = "") -> Any:
    """DateTime values back to aware UTC datetimes: ``\\/Date(ms)\\/`` (Windows PowerShell 5.1, marked before
    parsing) or ISO 8601 (PowerShell 7) in properties whose name ends in DateTime."""
    if isinstance(value, dict):
        if len(value) == 1 and isinstance(value.get(_DATE_KEY), int):
            return dt.datetime(1970, 1, 1, tzinfo=dt.UTC) + dt.timedelta(milliseconds=value[_DATE_KEY])
        return {k: _dates(v, str(k)) for k, v in value.items()}
    if isinstance(value, list):
        return [_dates(v, key) for v in value]
    if isinstance(value, str) and key.lower().endswith("datetime") and _ISO_DATE.match(value):
        parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
        return parsed.replace(tzinfo=dt.UTC) if parsed.tzinfo is None else parsed.astimezone(dt.UTC)
    return value
