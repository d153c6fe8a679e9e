"""pypsrp, requests, TLS and SPNEGO exceptions, and PowerShell ErrorRecords → ``mia_bridge.errors``.

The only place that knows transport exception types. Messages say what happened in a responder's
words, ``retryable`` says whether waiting and trying again can help, and no secret ever appears:
every message goes through ``scrub`` with the secrets of the connection.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

import requests
from psrpcore.types import ErrorCategory
from pypsrp.exceptions import (
    AuthenticationError,
    WinRMError,
    WinRMTransportError,
    WSManFaultError,
)

from mia_bridge.bridge.backend import ErrorInfo, Secret
from mia_bridge.errors import (
    AccessDeniedError,
    BridgeAuthError,
    BridgeError,
    BridgeTimeoutError,
    BridgeTLSError,
    BridgeTransportError,
    CmdletError,
    CommandNotFoundError,
    IngestionDisabledError,
    MiaError,
    ThrottledError,
)

WSMAN_OPERATION_TIMEOUT = 0x80338029
WSMAN_ACCESS_DENIED = 5
WSMAN_INVALID_RESOURCE_URI = 0x8033803B
WSMAN_SHELL_NOT_FOUND = 0x8033805B

_CATEGORY_NAMES = {c.value: c.name for c in ErrorCategory}
_THROTTLE_RE = re.compile(r"throttl|server ?busy|too many (concurrent )?requests|try again later|backoff", re.I)
_DENIED_RE = re.compile(r"access (is )?denied|AccessDenied|UnauthorizedAccess", re.I)
_INGESTION_RE = re.compile(r"ingestion|UnifiedAuditLogIngestionEnabled", re.I)
_WRONG_PASSWORD_RE = re.compile(r"integrity check failed|preauthentication failed", re.I)
_KERBEROS_RE = re.compile(
    r"kerberos|\bKDC\b|krb5|credentials cache|cache collection|preauthentication|ticket|GSSAPI credential", re.I
)


def scrub(text: str, secrets: Iterable[Secret | str | None]) -> str:
    """``text`` with every secret value replaced by ``***``."""
    for secret in secrets:
        if secret is None:
            continue
        value = secret.reveal() if isinstance(secret, Secret) else secret
        if value:
            text = text.replace(value, "***")
    return text


def map_transport_error(
    exc: BaseException, *, endpoint: str, username: str | None, secrets: Iterable[Secret | str | None] = ()
) -> MiaError:
    """A transport-level exception raised while talking to ``endpoint`` → a BridgeError."""
    secrets = list(secrets)
    detail = scrub(_short(exc), secrets)
    who = f" as {username}" if username else ""
    if isinstance(exc, MiaError):
        return exc
    if _is_kerberos_error(exc):
        # The client's own Kerberos library failed (no ticket, unknown SPN, KDC unreachable, wrong
        # password): say so, not "the server refused", and keep the library's reason.
        if _WRONG_PASSWORD_RE.search(detail):
            detail += " (usually a wrong password)"
        return BridgeAuthError(
            f"Kerberos logon to {endpoint}{who} failed: {detail}",
            hint="kinit user@REALM (or give --username and the password), check that the jump host's SPN is "
            "HOST/<server> in the realm (use --spn-host NAME when --server is an IP address or an alias) and "
            "that KRB5_CONFIG names a reachable KDC",
            endpoint=endpoint,
        )
    if isinstance(exc, AuthenticationError) or _is_spnego_error(exc):
        return BridgeAuthError(
            f"the WinRM server at {endpoint} refused the logon{who}",
            hint="check the user name (DOMAIN\\user for NTLM), the password (MIA_WINRM_PASSWORD or the keyring) "
            "and --auth; the account must be allowed on the session configuration",
            endpoint=endpoint,
        )
    if isinstance(exc, requests.exceptions.SSLError):
        return BridgeTLSError(
            f"TLS certificate verification failed for {endpoint}: {detail}",
            hint="pass --ca-bundle FILE with the CA that issued the jump host's WinRM HTTPS certificate",
            endpoint=endpoint,
        )
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return BridgeTimeoutError(
            f"connecting to {endpoint} timed out",
            hint="check the host name, the port (5986 for HTTPS) and firewalls between here and the jump host",
            endpoint=endpoint,
        )
    if isinstance(exc, requests.exceptions.ReadTimeout | TimeoutError):
        return BridgeTimeoutError(
            f"the WinRM server at {endpoint} did not answer in time",
            hint="the jump host may be overloaded; retry, or raise the read timeout",
            endpoint=endpoint,
        )
    if isinstance(exc, requests.exceptions.ConnectionError):
        if "refused" in detail.lower():
            return BridgeTransportError(
                f"connection refused by {endpoint}",
                hint="is WinRM listening there? (winrm quickconfig; HTTPS listener on 5986)",
                endpoint=endpoint,
            )
        return BridgeTransportError(
            f"the connection to {endpoint} failed or was dropped: {detail}", endpoint=endpoint
        )
    if isinstance(exc, WSManFaultError):
        return _map_wsman_fault(exc, endpoint, secrets)
    if isinstance(exc, WinRMTransportError):
        return BridgeTransportError(
            f"the WinRM server at {endpoint} answered HTTP {exc.code}", endpoint=endpoint, http_status=exc.code
        )
    if isinstance(exc, WinRMError):
        err = BridgeError(f"PowerShell remoting protocol error with {endpoint}: {detail}", endpoint=endpoint)
        return err
    return BridgeError(f"unexpected error talking to {endpoint}: {type(exc).__name__}: {detail}", endpoint=endpoint)


def _map_wsman_fault(exc: WSManFaultError, endpoint: str, secrets: list[Secret | str | None]) -> MiaError:
    code = exc.code if isinstance(exc.code, int) else -1
    reason = scrub(str(exc.reason or "").strip(), secrets)
    if code == WSMAN_ACCESS_DENIED:
        return BridgeAuthError(
            f"access denied by the WinRM server at {endpoint}: {reason}",
            hint="the account must be allowed on the session configuration (JEA role mapping)",
            endpoint=endpoint,
        )
    if code == WSMAN_INVALID_RESOURCE_URI:
        err = BridgeError(
            f"the session configuration does not exist on {endpoint}: {reason}",
            hint="check --configuration-name against Get-PSSessionConfiguration on the jump host",
            endpoint=endpoint,
        )
        return err
    if code == WSMAN_OPERATION_TIMEOUT:
        return BridgeTimeoutError(f"the WinRM operation on {endpoint} timed out: {reason}", endpoint=endpoint)
    if code == WSMAN_SHELL_NOT_FOUND:
        return BridgeTransportError(
            f"the remote PowerShell session on {endpoint} no longer exists: {reason}",
            hint="the jump host closed the session (idle timeout or restart); reconnect",
            endpoint=endpoint,
        )
    return BridgeTransportError(
        f"WSMan fault 0x{code & 0xFFFFFFFF:08X} from {endpoint}: {reason}", endpoint=endpoint, wsman_code=code
    )


def _is_spnego_error(exc: BaseException) -> bool:
    return type(exc).__module__.startswith("spnego")


def _is_kerberos_error(exc: BaseException) -> bool:
    """Raised by python-krb5/gssapi, or by pyspnego about Kerberos (not an NTLM refusal)."""
    if type(exc).__module__.startswith(("krb5", "gssapi")):
        return True
    text = str(exc)  # the whole message: _short keeps only the minor status, which may not name Kerberos
    return _is_spnego_error(exc) and "NTLM" not in text and bool(_KERBEROS_RE.search(text))


def _short(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    # requests nests urllib3 reprs; keep the innermost reason.
    match = re.search(r"\(Caused by \w+\((?:'[^']*', )?['\"]?(.*?)['\"]?\)\)", text)
    if match:
        text = match.group(1)
    # GSSAPI: "SpnegoError (…): Major (…): Unspecified GSS failure. …, Minor (…): <the reason>, Context: …"
    minor = re.search(r"Minor \(\d+\): (.+?)(?:, Context: .*)?$", text)
    if minor:
        text = minor.group(1)
    return text[:300]


# --- PowerShell error records -------------------------------------------------------------------


def error_info(record: Any, secrets: Iterable[Secret | str | None] = ()) -> ErrorInfo:
    """A pypsrp ErrorRecord (non-terminating) → ErrorInfo."""
    category = record.category
    category_name = _CATEGORY_NAMES.get(category, str(category or "")) if isinstance(category, int) else str(category)
    return ErrorInfo(
        message=scrub(_record_message(record), list(secrets)),
        category=category_name,
        error_id=str(record.fq_error or ""),
        target=str(record.target_name or ""),
    )


def _record_message(record: Any) -> str:
    # pypsrp: str(record) is the exception message (ToString); .message is the category line.
    for candidate in (getattr(record, "details_message", None), str(record), getattr(record, "message", None)):
        if candidate and str(candidate) != "None":
            return str(candidate)
    return "unknown error"


def cmdlet_error(cmdlet: str, info: ErrorInfo) -> CmdletError:
    """A terminating error of ``cmdlet`` → the most specific CmdletError."""
    text = f"{info.error_id} {info.category} {info.message}"
    kwargs: dict[str, Any] = {"cmdlet": cmdlet, "category": info.category, "error_id": info.error_id}
    if "CommandNotFoundException" in text:
        return CommandNotFoundError(
            f"the command is not available on the endpoint: {info.message}",
            hint="it may be retired by Microsoft, missing from the module, or outside the JEA role capability",
            **kwargs,
        )
    if info.category in ("PermissionDenied", "SecurityError") or _DENIED_RE.search(text):
        return AccessDeniedError(
            info.message,
            hint="the app's service principal needs the Exchange role this cmdlet requires "
            "(e.g. View-Only Audit Logs for audit searches)",
            **kwargs,
        )
    if _INGESTION_RE.search(text):
        return IngestionDisabledError(
            info.message,
            hint="unified audit log ingestion is off for this tenant: nothing was recorded while it was off",
            **kwargs,
        )
    if info.category in ("LimitsExceeded", "ResourceBusy", "OperationTimeout") or _THROTTLE_RE.search(text):
        return ThrottledError(info.message, **kwargs)
    return CmdletError(info.message, **kwargs)
