"""Issue 12 point 8: Search-MailboxAuditLog without -LogonTypes may leave out the owner's own access; the
collector asks for Owner, Delegate and Admin, so every MailItemsAccessed of the mailbox is collected."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

from collect_simdata import psrp

from mia_bridge.collect.mailbox_audit import collect_mailbox_audit
from mia_bridge.sim.scenario import build_tenant
from mia_bridge.sim.tenant import TenantConfig

START = datetime(2026, 10, 1, tzinfo=UTC)
END = START + timedelta(days=30)


def test_owner_access_is_collected(tmp_path: Path) -> None:
    tenant = build_tenant(TenantConfig(), scenario="compromised", records=2000, start=START, days=30)
    assert tenant.truth is not None
    victim = tenant.truth.victims[0]
    truth = [r for r in tenant.query_truth(start=START, end=END, operations=["MailItemsAccessed"])
             if r["MailboxOwnerUPN"] == victim]
    assert any(int(r.get("LogonType") or 0) == 0 for r in truth)  # the owner read mail too
    with psrp(tenant) as backend:
        status = collect_mailbox_audit(backend, victim, START, END, tmp_path)
    assert status["status"] == "collected"
    rows = [json.loads(line) for line in (tmp_path / status["file"]).read_text().splitlines()]
    assert {r["Identity"] for r in rows} == {r["Id"] for r in truth}
