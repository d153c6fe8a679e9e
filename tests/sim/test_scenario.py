"""Scenario generator: determinism, schemas, distributions, and a ground truth that matches the records."""

from __future__ import annotations

import json
import re
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from mia_bridge.sim.scenario import DESKTOP_SYNC_IP, GRAPH_READ_IP, build_tenant
from mia_bridge.sim.tenant import Tenant, TenantConfig
from mia_bridge.sim.truth import ScenarioTruth

START = datetime(2026, 10, 1, tzinfo=UTC)
END = START + timedelta(days=30)
MESSAGE_ID = re.compile(r"^<[^<>@\s]+@[^<>@\s]+\.[a-z]+>$")
GRAPH = "00000003-0000-0000-c000-000000000000"


@pytest.fixture(scope="module")
def tenant() -> Tenant:
    return build_tenant(records=20_000)


@pytest.fixture(scope="module")
def records(tenant: Tenant) -> list[dict[str, Any]]:
    return list(tenant.audit_records())


def _truth(tenant: Tenant) -> ScenarioTruth:
    assert tenant.truth is not None
    return tenant.truth


def _prop(record: dict[str, Any], name: str) -> str | None:
    for item in record.get("OperationProperties") or []:
        if item["Name"] == name:
            return str(item["Value"])
    return None


def test_deterministic_by_seed(tmp_path: Path) -> None:
    a, b = build_tenant(records=3000), build_tenant(records=3000)
    other = build_tenant(TenantConfig(seed=1), records=3000)
    assert a.dump_truth(tmp_path / "a.jsonl") == b.dump_truth(tmp_path / "b.jsonl") == 3000
    other.dump_truth(tmp_path / "c.jsonl")
    assert (tmp_path / "a.jsonl").read_bytes() == (tmp_path / "b.jsonl").read_bytes()
    assert (tmp_path / "a.jsonl").read_bytes() != (tmp_path / "c.jsonl").read_bytes()
    assert _truth(a).to_json() == _truth(b).to_json()


def test_record_count_unique_ids_and_time_range(tenant: Tenant, records: list[dict[str, Any]]) -> None:
    assert len(records) == len(tenant) == 20_000 == _truth(tenant).record_count
    assert len({r["Id"] for r in records}) == len(records)
    times = [r["CreationTime"] for r in records]
    assert times == sorted(times)
    assert START.strftime("%Y-%m-%dT%H:%M:%S") <= times[0] and times[-1] < END.strftime("%Y-%m-%dT%H:%M:%S")


def test_record_shapes_follow_the_real_schemas(records: list[dict[str, Any]]) -> None:
    seen = Counter()
    for r in records:
        assert isinstance(r["RecordType"], int) and isinstance(r["UserType"], int)
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d", r["CreationTime"])  # no zone suffix, like real ones
        assert re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}", r["Id"])
        if r["Operation"] != "MailItemsAccessed":
            continue
        access = _prop(r, "MailAccessType")
        assert access in ("Bind", "Sync") and _prop(r, "IsThrottled") in ("True", "False")
        assert all(isinstance(p["Value"], str) for p in r["OperationProperties"])
        assert r["ClientIPAddress"] and r["ClientInfoString"] and r["MailboxOwnerUPN"] and r["Workload"] == "Exchange"
        if access == "Bind":
            assert r["RecordType"] == 50
            items = [i for f in r["Folders"] for i in f["FolderItems"]]
            assert r["OperationCount"] == len(items) > 0
            assert all(MESSAGE_ID.match(i["InternetMessageId"]) for i in items)
            seen["bind"] += 1
        elif r["RecordType"] == 2:
            assert r["Item"]["ParentFolder"]["Path"].startswith("\\")
            seen["sync2"] += 1
        else:
            assert r["RecordType"] == 50 and all("FolderItems" not in f and f["Path"] for f in r["Folders"])
            seen["sync50"] += 1
    assert min(seen.values()) > 50 and len(seen) == 3  # both sync shapes and binds present


def test_truth_read_message_ids_are_exactly_the_attacker_binds(tenant: Tenant, records: list[dict[str, Any]]) -> None:
    truth = _truth(tenant)
    app = truth.attacker_app_ids[0]
    attacker_binds = [r for r in records if r["Operation"] == "MailItemsAccessed" and r.get("ClientAppId") == app]
    assert attacker_binds and all(r["ClientIPAddress"] == GRAPH_READ_IP and r["AppId"] == GRAPH for r in attacker_binds)
    read = {i["InternetMessageId"] for r in attacker_binds for f in r["Folders"] for i in f["FolderItems"]}
    assert read == truth.read_message_ids
    assert {r["Id"] for r in attacker_binds} <= truth.attacker_record_ids()


def test_throttling_and_the_24h_silence(tenant: Tenant, records: list[dict[str, Any]]) -> None:
    truth = _truth(tenant)
    throttled = [r for r in records if _prop(r, "IsThrottled") == "True"]
    assert len(throttled) == 1 and throttled[0]["MailboxOwnerUPN"] == truth.throttled_mailbox == truth.victims[0]
    assert truth.throttled_at is not None
    after = truth.throttled_at.strftime("%Y-%m-%dT%H:%M:%S")
    until = (truth.throttled_at + timedelta(hours=24)).strftime("%Y-%m-%dT%H:%M:%S")
    binds_after = [r for r in records if r.get("MailboxOwnerUPN") == truth.throttled_mailbox
                   and _prop(r, "MailAccessType") == "Bind" and after < r["CreationTime"] < until]
    syncs_after = [r for r in records if r.get("MailboxOwnerUPN") == truth.throttled_mailbox
                   and _prop(r, "MailAccessType") == "Sync" and after < r["CreationTime"] < until]
    assert binds_after == [] and syncs_after  # only binds are throttled


def test_desktop_sync_from_second_ip(tenant: Tenant, records: list[dict[str, Any]]) -> None:
    truth = _truth(tenant)
    syncs = [r for r in records if r.get("ClientIPAddress") == DESKTOP_SYNC_IP and _prop(r, "MailAccessType") == "Sync"]
    folders = {r["Item"]["ParentFolder"]["Path"] for r in syncs if "Item" in r}
    folders |= {f["Path"] for r in syncs for f in r.get("Folders", [])}
    assert folders == set(truth.synced_folders)
    assert {r["ClientInfoString"] for r in syncs} == {"Client=MSExchangeRPC"}


def _search(tenant: Tenant, operations: list[str] | None = None, free_text: str | None = None,
            record_types: list[str] | None = None) -> list[dict[str, Any]]:
    return tenant.query_truth(start=START, end=END, operations=operations, free_text=free_text,
                              record_types=record_types)


# Sparrow's searches (peer-tools §1.4), verbatim filters.
SPARROW = {
    "1": dict(record_types=["AzureActiveDirectory"],
              operations=["Set domain authentication", "Set federation settings on domain"]),
    "2": dict(record_types=["AzureActiveDirectory"],
              operations=["Update application", "Update application – Certificates and secrets management"]),
    "3": dict(record_types=["AzureActiveDirectory"],
              operations=["Update service principal", "Add service principal credentials"]),
    "4": dict(record_types=["AzureActiveDirectory"], operations=["Add app role assignment"]),
    "5": dict(record_types=["AzureActiveDirectory"],
              operations=["Add OAuth2PermissionGrant", "Consent to application"]),
    "6": dict(operations=["UserLoggedIn", "UserLoginFailed"], free_text="16457"),
    "7": dict(operations=["MailboxLogin"], free_text="Powershell"),
    "8a": dict(free_text="a0c73c16-a7e3-4564-9a95-2bdf47383716"),
    "8b": dict(free_text="1b730954-1685-4b74-9bfd-dac224a7b894"),
    "8c": dict(operations=["UserLoggedIn", "UserLoginFailed"], free_text="WinRM"),
    "9": dict(operations=["MailItemsAccessed"], free_text="APP"),
    "10": dict(operations=["FileAccessed", "FileAccessedExtended"], free_text="APP"),
}


@pytest.mark.parametrize("row", sorted(SPARROW))
def test_every_sparrow_search_finds_the_attacker(tenant: Tenant, row: str) -> None:
    truth = _truth(tenant)
    filters = dict(SPARROW[row])
    if filters.get("free_text") == "APP":
        filters["free_text"] = truth.attacker_app_ids[0]
    found = _search(tenant, **filters)
    expected = {a.record_id for a in truth.actions if row in a.sparrow_search.split(",")}
    assert expected and expected <= {r["Id"] for r in found}
    if row == "6":  # Sparrow then keeps federated domains only: exactly the forged SAML sign-in survives
        federated = [r for r in found if r["UserId"].split("@")[1] in truth.federated_domains]
        assert {r["Id"] for r in federated} == expected


def test_benign_lookalikes_share_operations_but_not_the_attacker_context(tenant: Tenant,
                                                                          records: list[dict[str, Any]]) -> None:
    truth = _truth(tenant)
    by_id = {r["Id"]: r for r in records}
    lookalikes = [by_id[i] for i in truth.benign_lookalike_ids]
    attack_ops = {a.operation for a in truth.actions}
    assert len(lookalikes) >= 10 and {r["Operation"] for r in lookalikes} & attack_ops >= {
        "Consent to application.", "Update application.", "Update service principal.", "New-InboxRule",
        "Set-Mailbox", "Add-MailboxPermission", "MailItemsAccessed", "MailboxLogin", "UserLoggedIn"}
    attacker_ips = set(truth.attacker_ips)
    for r in records:
        if r["Id"] in truth.attacker_record_ids():
            continue
        ips = {r.get("ClientIPAddress"), r.get("ActorIpAddress"), str(r.get("ClientIP", "")).split(":")[0]}
        assert not ips & attacker_ips, r
        assert truth.attacker_app_ids[0] not in json.dumps(r)


def test_benign_scenario_has_no_attack() -> None:
    tenant = build_tenant(records=3000, scenario="benign")
    truth = _truth(tenant)
    assert truth.actions == [] and not truth.read_message_ids and truth.throttled_at is None
    assert truth.benign_lookalike_ids
    dump = "\n".join(json.dumps(r) for r in tenant.audit_records())
    assert GRAPH_READ_IP not in dump and DESKTOP_SYNC_IP not in dump
    assert _search(tenant, operations=["UserLoggedIn"], free_text="16457") == []


def test_bursty_distribution_has_a_dense_minute_and_a_quiet_stretch() -> None:
    tenant = build_tenant(records=100_000, distribution="bursty")
    per_minute = Counter(int(t) // 60 for t in tenant.store.times.tolist())
    busiest = max(per_minute.values())
    assert 19_900 <= busiest <= 20_100  # ~20,000 in one minute
    days = Counter(int(t) // 86_400 for t in tenant.store.times.tolist())
    first, last = min(days), max(days)
    assert any(days.get(d, 0) == 0 for d in range(first, last))  # a whole quiet day


def test_pathological_distribution_has_one_second_over_5000() -> None:
    tenant = build_tenant(records=8000, distribution="pathological")
    per_second = Counter(tenant.store.times.tolist())
    assert max(per_second.values()) > 5000
    with pytest.raises(ValueError, match="pathological"):
        build_tenant(records=1000, distribution="pathological")


def test_uniform_and_bad_arguments() -> None:
    tenant = build_tenant(records=2000, distribution="uniform", start=datetime(2025, 1, 1, tzinfo=UTC), days=5)
    assert len(tenant) == 2000
    assert min(tenant.store.times.tolist()) >= int(datetime(2025, 1, 1, tzinfo=UTC).timestamp())
    with pytest.raises(ValueError, match="scenario"):
        build_tenant(scenario="nope")
    with pytest.raises(ValueError, match="distribution"):
        build_tenant(distribution="nope")


def test_truth_json_roundtrip_and_dump(tenant: Tenant, tmp_path: Path) -> None:
    truth = _truth(tenant)
    again = ScenarioTruth.from_json(truth.to_json())
    assert again == truth
    data = json.loads(truth.to_json())
    assert data["victims"] == truth.victims and len(data["actions"]) == len(truth.actions)
    path = tmp_path / "truth.jsonl"
    assert tenant.dump_truth(path) == len(tenant)
    first = json.loads(path.read_text(encoding="utf-8").splitlines()[0])
    assert "Id" in first and "CreationTime" in first


def test_directory_reflects_the_attack(tenant: Tenant) -> None:
    truth = _truth(tenant)
    d = tenant.directory
    victim = next(m for m in d.mailboxes if m["UserPrincipalName"] == truth.victims[0])
    assert victim["ForwardingSmtpAddress"] == f"smtp:{truth.attacker_forwarding_address}"
    assert "MailItemsAccessed" in victim["AuditOwner"]
    assert {x["AuthenticationType"] for x in d.domains} == {"Managed", "Federated"}
    fed = truth.federated_domains[0]  # the compromised federation: its IdP's MFA is rejected (SAML check flags it)
    federated = [x["Id"] for x in d.domains if x["AuthenticationType"] == "Federated"]
    assert federated[0] == fed and f"eu.{fed}" in federated and len(federated) == 3  # + a child, + a partner root
    assert d.federation[fed][0]["FederatedIdpMfaBehavior"] == "rejectMfaByFederatedIdp"
    partner = next(x for x in federated if x not in (fed, f"eu.{fed}"))
    assert d.federation[partner][0]["FederatedIdpMfaBehavior"] == "enforceMfaByFederatedIdp"
    sp = next(s for s in d.service_principals if s["AppId"] == truth.attacker_app_ids[0])
    assert sp["DisplayName"] == truth.attacker_app_names[0]
    assert {a["AppRoleId"] for a in d.app_role_assignments if a["ServicePrincipalId"] == sp["Id"]}
