"""ErrorRecord fields → the project's exception classes, and secrets scrubbed from every message."""

from __future__ import annotations

import pytest

from mia_bridge.bridge.backend import ErrorInfo, Secret
from mia_bridge.bridge.errors_map import cmdlet_error, scrub
from mia_bridge.bridge.winrm import WinRMBackend, WinRMSettings
from mia_bridge.errors import (
    AccessDeniedError,
    BridgeError,
    CmdletError,
    CommandNotFoundError,
    IngestionDisabledError,
    ThrottledError,
)
from mia_bridge.sim.server import SimServer
from mia_bridge.sim.tenant import Tenant, TenantConfig


@pytest.mark.parametrize(
    ("info", "expected", "retryable"),
    [
        (ErrorInfo("The term 'Search-MailboxAuditLog' is not recognized", "ObjectNotFound",
                   "CommandNotFoundException"), CommandNotFoundError, False),
        (ErrorInfo("The user isn't assigned to any management roles", "PermissionDenied", "x"), AccessDeniedError,
         False),
        (ErrorInfo("Access is denied.", "NotSpecified", "RestClientException"), AccessDeniedError, False),
        (ErrorInfo("UnifiedAuditLogIngestionEnabled is False", "InvalidOperation", "x"), IngestionDisabledError,
         False),
        (ErrorInfo("The server is busy. Please retry", "ResourceBusy", "ServerBusyException"), ThrottledError, True),
        (ErrorInfo("Request was throttled. Expected backoff 30s", "NotSpecified", "x"), ThrottledError, True),
        (ErrorInfo("Cannot validate argument on parameter 'ResultSize'", "InvalidData", "x"), CmdletError, False),
    ],
)
def test_error_records_pick_the_class(info: ErrorInfo, expected: type[CmdletError], retryable: bool) -> None:
    error = cmdlet_error("Some-Cmdlet", info)
    assert type(error) is expected
    assert error.retryable is retryable
    assert error.cmdlet == "Some-Cmdlet" and error.category == info.category
    assert "Some-Cmdlet" in error.render()


def test_scrub_removes_every_secret() -> None:
    text = "logon as bob with Hunter2 and cert pw s3cr3t failed"
    cleaned = scrub(text, [Secret("Hunter2"), "s3cr3t", None, Secret("")])
    assert cleaned == "logon as bob with *** and cert pw *** failed"


def test_unknown_session_configuration_has_a_hint() -> None:
    with SimServer(Tenant(TenantConfig()), auth="basic", password="pw") as sim:
        settings = WinRMSettings(server="127.0.0.1", port=sim.port, transport="http", auth="basic", username="mia",
                                 password=Secret("pw"), configuration_name="NoSuchJEA", reconnection_retries=0)
        with pytest.raises(BridgeError) as info:
            WinRMBackend(settings).open()
    assert "session configuration" in info.value.message and "NoSuchJEA" in info.value.message
    assert "--configuration-name" in (info.value.hint or "")
    assert not info.value.retryable


def test_kerberos_failures_are_named_and_ntlm_refusals_are_not() -> None:
    """A client-side Kerberos failure says "Kerberos" and why; an NTLM failure stays "refused the logon"."""
    from spnego.exceptions import ErrorCode, NoCredentialError, SpnegoError

    from mia_bridge.bridge.errors_map import map_transport_error

    endpoint = "http://jump01:5985/wsman"
    no_ticket = NoCredentialError(context_msg="Getting GSSAPI credential")
    mapped = map_transport_error(no_ticket, endpoint=endpoint, username="mia@CORP.EXAMPLE")
    assert mapped.message.startswith(f"Kerberos logon to {endpoint} as mia@CORP.EXAMPLE failed")
    assert "kinit" in (mapped.hint or "") and "--spn-host" in (mapped.hint or "")
    ntlm = SpnegoError(ErrorCode.failure, context_msg="Processing NTLM challenge from the GSSAPI credential")
    mapped = map_transport_error(ntlm, endpoint=endpoint, username="CORP\\mia")
    assert mapped.message == f"the WinRM server at {endpoint} refused the logon as CORP\\mia"
