"""Generated records against real captured ones (../shared/realdata, read in place): every AuditData
field a real record of the same kind carries is present in ours, in the same shape."""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from mia_bridge.sim.scenario import build_tenant
from mia_bridge.sim.tenant import Tenant

# Sentinel OfficeActivity column -> AuditData name; columns Sentinel adds itself are dropped.
RealData = Callable[..., Path]  # conftest's ``realdata`` fixture: fails loudly when a file is absent
SENTINEL_NAMES = {"OfficeWorkload": "Workload", "OfficeObjectId": "ObjectId", "Logon_Type": "LogonType",
                  "Client_IPAddress": "ClientIPAddress"}
SENTINEL_ONLY = re.compile(
    r"^(TenantId|TimeGenerated.*|.*_|SourceSystem|OfficeId|SourceRecordId|Start_Time.*|OfficeTenantId.*|"
    r"ElevationTime.*|ResultReasonType|Type)$"
)


def auditdata_fields(row: dict[str, Any]) -> set[str]:
    return {SENTINEL_NAMES.get(k, k) for k, v in row.items() if v not in ("", None) and not SENTINEL_ONLY.match(k)}


@pytest.fixture(scope="module")
def tenant() -> Tenant:
    return build_tenant(records=2000)


def _attack(tenant: Tenant, operation: str) -> list[dict[str, Any]]:
    assert tenant.truth is not None
    ids = {a.record_id for a in tenant.truth.actions if a.operation == operation}
    return [r for r in tenant.audit_records() if r["Id"] in ids]


def test_graph_bind_has_the_fields_of_the_captured_golden_saml_bind(tenant: Tenant, realdata: RealData) -> None:
    real = json.loads(realdata("otrf-goldensaml", "OfficeActivityEvents.json").read_text(encoding="utf-8"))
    assert real["Operation"] == "MailItemsAccessed" and real["AppId"] == "00000003-0000-0000-c000-000000000000"
    assert tenant.truth is not None
    app = tenant.truth.attacker_app_ids[0]
    ours = [r for r in _attack(tenant, "MailItemsAccessed") if r.get("ClientAppId") == app]
    assert ours
    for record in ours:
        missing = auditdata_fields(real) - set(record)
        assert not missing, missing
        assert record["AppId"] == real["AppId"] and str(record["RecordType"]) == real["RecordType"]
        real_props = json.loads(real["OperationProperties"])
        assert [p["Name"] for p in record["OperationProperties"]] == [p["Name"] for p in real_props]
        real_folder = json.loads(real["Folders"])[0]
        assert set(record["Folders"][0]) == set(real_folder)
        assert set(record["Folders"][0]["FolderItems"][0]) >= set(real_folder["FolderItems"][0])
        assert record["ClientInfoString"].startswith("Client=REST;")


def test_inbox_rule_matches_the_captured_new_inboxrule(tenant: Tenant, realdata: RealData) -> None:
    path = realdata("sentinel-training-lab", "office_activity_inbox_rule.csv")
    with path.open(encoding="utf-8-sig", newline="") as handle:
        real_rows = list(csv.DictReader(handle))
    assert {r["Operation"] for r in real_rows} == {"New-InboxRule"}
    [ours] = _attack(tenant, "New-InboxRule")
    for real in real_rows:
        assert not auditdata_fields(real) - set(ours) - {"UserId"}
        real_params = json.loads(real["Parameters"])
        assert all(set(p) == {"Name", "Value"} and isinstance(p["Value"], str) for p in ours["Parameters"])
        assert {p["Name"] for p in real_params} & {p["Name"] for p in ours["Parameters"]} >= {
            "AlwaysDeleteOutlookRulesBlob", "Force", "Name", "StopProcessingRules"}
        shape = re.compile(r"^[A-Z0-9]+\.prod\.outlook\.com/Microsoft Exchange Hosted Organizations/[^/]+/[^\\/]+\\.+$")
        assert shape.match(real["OfficeObjectId"]) and shape.match(ours["ObjectId"])
        port = re.compile(r"^(\[[0-9a-f:]+\]|[0-9.]+):\d+$")
        assert port.match(real["ClientIP"]) and port.match(ours["ClientIP"])
        assert real["RecordType"] == "ExchangeAdmin" and ours["RecordType"] == 1


def test_mailbox_admin_parameters_use_the_captured_names(tenant: Tenant, realdata: RealData) -> None:
    path = realdata("msticpy", "demo_exchange_data.csv")
    with path.open(encoding="utf-8", newline="") as handle:
        real = list(csv.DictReader(handle))
    names: dict[str, set[str]] = {}
    for row in real:
        if row["Operation"] in ("Set-Mailbox", "Add-MailboxPermission"):
            names.setdefault(row["Operation"], set()).update(p["Name"] for p in json.loads(row["Parameters"]))
    [grant] = _attack(tenant, "Add-MailboxPermission")
    assert {p["Name"] for p in grant["Parameters"]} <= names["Add-MailboxPermission"]
    [forwarding] = _attack(tenant, "Set-Mailbox")
    assert "Identity" in names["Set-Mailbox"] and forwarding["Parameters"][0]["Name"] == "Identity"
