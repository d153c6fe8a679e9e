"""Admin-API (InvokeCommand) error responses → the bridge's exception tree.

The body is OData-style: ``{"error":{"code","message","details":[{"code":<ErrorCategory int>,
"target","message":"<JSON {ClassName,Message,localizedString:{stringId}}>"}],"innererror":…}}``.
The module shows ``stringId|ClassName|Message``; some responses put exactly that text in
``error.message``. Both forms are read. 403 is often bodyless: ``x-ms-diagnostics`` then says why.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

import httpx
from psrpcore.types import ErrorCategory

from mia_bridge.bridge.backend import ErrorInfo
from mia_bridge.bridge.errors_map import cmdlet_error
from mia_bridge.bridge.rest_http import body_excerpt, describe_response, parse_json, retry_after_seconds
from mia_bridge.errors import (
    AccessDeniedError,
    BridgeAuthError,
    BridgeError,
    BridgeTransportError,
    CmdletError,
    ThrottledError,
)

# PowerShell's System.Management.Automation.ErrorCategory, value → name (details[].code is the value).
ERROR_CATEGORIES: dict[int, str] = {c.value: c.name for c in ErrorCategory}

# Exception names the module (RetryableExceptions) and other REST clients retry.
RETRYABLE_EXCEPTIONS = (
    "ServerBusyException",
    "TransientException",
    "BackendCommunicationException",
    "DCOverloadedException",
    "SuitabilityDirectoryException",
    "ServerInMMException",
    "ADServerSettingsChangedException",
    "StorageTransientException",
    "ServerSideErrorException",
    "ThrottlingException",
    "maximum number of concurrent requests",
)
NEEDS_PROXY = "cmdlet needs proxy"


@dataclass(frozen=True)
class AdminApiError:
    """What one error response says."""

    status: int
    message: str
    class_name: str = ""
    string_id: str = ""
    category: str = ""
    target: str = ""
    diagnostics: str = ""

    @property
    def text(self) -> str:
        return f"{self.class_name} {self.string_id} {self.message}"


def parse_error(response: httpx.Response) -> AdminApiError | None:
    """The error in a JSON error body; None when the body is empty or not JSON."""
    doc = parse_json(response)
    diagnostics = response.headers.get("x-ms-diagnostics", "")
    if not isinstance(doc, dict):
        return None
    err = doc.get("error")
    if not isinstance(err, dict):
        return AdminApiError(response.status_code, str(doc)[:300], diagnostics=diagnostics)
    message = str(err.get("message") or err.get("code") or "")
    class_name = string_id = category = target = ""
    details = err.get("details")
    if isinstance(details, list) and details and isinstance(details[0], dict):
        first = details[0]
        target = str(first.get("target") or "")
        code = first.get("code")
        if isinstance(code, int) and code in ERROR_CATEGORIES:
            category = ERROR_CATEGORIES[code]
        inner = first.get("message")
        parsed = _json_object(inner)
        if parsed is not None:
            class_name = str(parsed.get("ClassName") or "")
            message = str(parsed.get("Message") or message)
            loc = parsed.get("localizedString")
            if isinstance(loc, dict):
                string_id = str(loc.get("stringId") or "")
        elif isinstance(inner, str) and inner.count("|") >= 2:
            string_id, class_name, message = _split_pipes(inner)
    if not class_name and message.count("|") >= 2:
        string_id, class_name, message = _split_pipes(message)
    return AdminApiError(response.status_code, message.strip(), class_name, string_id, category, target, diagnostics)


def _json_object(text: Any) -> dict[str, Any] | None:
    if not isinstance(text, str) or not text.lstrip().startswith("{"):
        return None
    try:
        value = json.loads(text)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def _split_pipes(text: str) -> tuple[str, str, str]:
    string_id, class_name, message = text.split("|", 2)
    return string_id.strip(), class_name.strip(), message.strip()


def diagnostics_reason(header: str) -> str:
    """``2000008;reason="…";error_category=…`` → the reason text (or the header itself)."""
    match = re.search(r'reason="([^"]*)"', header)
    return match.group(1) if match else header.strip()


def is_retryable_error(response: httpx.Response) -> bool:
    """A 400 naming a transient exception (server busy, backend communication …)."""
    if response.status_code != 400:
        return False
    err = parse_error(response)
    return err is not None and _transient(err)


def _transient(err: AdminApiError) -> bool:
    text = err.text.lower()
    return any(name.lower() in text for name in RETRYABLE_EXCEPTIONS)


def error_for(response: httpx.Response, cmdlet: str, *, powershell_line: str) -> BridgeError:
    """The exception for a final (non-2xx) admin-API response."""
    status = response.status_code
    err = parse_error(response)
    host = response.request.url.host if response.request else ""
    if err is None and response.content:
        # Proxies and gateways answer with HTML; say so plainly instead of failing to parse.
        return BridgeTransportError(
            f"{cmdlet}: {describe_response(response)} from {host} with a non-JSON body: {body_excerpt(response)}",
            hint="a proxy or gateway answered instead of Exchange Online; retry later or check the network path",
        )
    diag = diagnostics_reason(response.headers.get("x-ms-diagnostics", ""))
    www = response.headers.get("WWW-Authenticate", "")
    if status == 401:
        reason = diag or (err.message if err else "") or www or "no reason given"
        return BridgeAuthError(
            f"{cmdlet}: the admin API refused the token (HTTP 401): {reason}",
            hint="check the app's Exchange.ManageAsApp permission (admin consent) "
            "and that the token is for this tenant",
        )
    if status == 403:
        reason = (err.message if err else "") or diag or "no body and no diagnostics"
        return AccessDeniedError(
            f"access denied (HTTP 403): {reason}",
            cmdlet=cmdlet,
            category="PermissionDenied",
            error_id=err.class_name if err else "Forbidden",
            hint="give the app's service principal an Exchange role that includes this cmdlet "
            "(e.g. View-Only Audit Logs or Exchange Administrator) and wait for it to apply",
        )
    if status == 429 or (err is not None and status == 400 and _transient(err)):
        wait = retry_after_seconds(response)
        return ThrottledError(
            f"throttled or busy after retries: {err.message if err else describe_response(response)}",
            cmdlet=cmdlet,
            retry_after=wait,
            category="LimitsExceeded" if status == 429 else (err.category if err else ""),
            error_id=(err.class_name if err else "") or "TooManyRequests",
        )
    if status >= 500 or err is None:
        detail = err.message if err else "empty body"
        return BridgeTransportError(f"{cmdlet}: {describe_response(response)} from {host}: {detail}")
    if NEEDS_PROXY in err.text.lower():
        return CmdletError(
            f"{err.message} — this cmdlet does not run over the REST admin API in this tenant",
            cmdlet=cmdlet,
            category=err.category or "NotImplemented",
            error_id=err.class_name or "CmdletProxyNotAvailableException",
            hint=f"run it with --backend psrp, or in PowerShell after Connect-ExchangeOnline: {powershell_line}",
        )
    # Same classification as the PSRP path, so both backends raise the same class for the same error.
    name = err.class_name.rsplit(".", 1)[-1]
    info = ErrorInfo(
        message=err.message,
        category=err.category or _category_from_name(name),
        error_id=err.string_id or name or "BadRequest",
        target=err.target,
    )
    return cmdlet_error(cmdlet, info)


def _category_from_name(name: str) -> str:
    if name.endswith("NotFoundException"):
        return "ObjectNotFound"
    if "Argument" in name or "ParameterBinding" in name:
        return "InvalidArgument"
    return ""
