"""Issue 12, REST: Get-EXOMailbox is a client-side cmdlet of the module, not served by InvokeCommand; the
REST simulator refuses it as the service does, and licence detection reads the mailboxes with Get-Mailbox."""

from __future__ import annotations

import pytest

from mia_bridge.bridge.backend import CmdletCall
from mia_bridge.bridge.config import ConnectionSettings
from mia_bridge.errors import CommandNotFoundError
from mia_bridge.investigate.license import detect_license
from mia_bridge.sim.backend import SimOptions, sim_session, tenant_for


@pytest.mark.parametrize("backend", ["psrp", "rest"])
def test_licence_detection_reads_mailbox_audit_settings_on_both_backends(backend: str) -> None:
    conn = ConnectionSettings(backend=backend)
    tenant = tenant_for(conn, SimOptions(records=300))
    with sim_session(conn, tenant=tenant) as session:
        if backend == "rest":
            with pytest.raises(CommandNotFoundError):
                session.backend.invoke(CmdletCall("Get-EXOMailbox", {"ResultSize": 1}))
        facts = detect_license(session.backend, [])
    assert not facts.mailbox_error and facts.mailbox_audit
    assert len(facts.mailbox_audit) == len(tenant.directory.mailboxes)
    assert facts.premium
