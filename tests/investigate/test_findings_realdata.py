"""Findings on real captured records (../shared/realdata, read through the project's readers)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from mia_bridge.investigate.findings import FindingInputs, build_findings
from mia_bridge.readers import open_input

RealData = Callable[..., Path]


def _records(path: Path) -> list[dict[str, Any]]:
    _, items = open_input(path, None)
    return [item.data for item in items if hasattr(item, "data")]


def test_real_inbox_rules_listed_for_review_then_attributed(realdata: RealData) -> None:
    records = _records(realdata("sentinel-training-lab", "office_activity_inbox_rule.csv"))
    assert len(records) == 2
    domains = {"contoso.onmicrosoft.com"}
    plain = build_findings(FindingInputs(records=records, tenant_domains=domains))
    rules = [f for f in plain.findings if f.category == "inbox-rule"]
    assert len(rules) == 2 and not any(f.attacker for f in rules)  # no forwarding: not attributed on its own
    assert {f.severity for f in rules} == {"low"}  # both hide mail: delete / move to Junk Email
    details = " ".join(row["Detail"] for f in rules for row in f.rows)
    assert "deletes messages" in details and "moves to Junk Email" in details
    assert {f.first_seen.isoformat() for f in rules if f.first_seen} == {"2021-04-26T07:17:10+00:00",
                                                                       "2021-04-26T06:37:32+00:00"}  # US dates
    # the bracketed IPv6 with port is read as the address, so a responder's IP attributes both rules
    ip = "2a01:110:8068:7:9bf8:aa87:e00a:5f1f"
    known = build_findings(FindingInputs(records=records, tenant_domains=domains, suspicious_ips=[ip]))
    attributed = [f for f in known.findings if f.category == "inbox-rule"]
    assert all(f.attacker and f.severity == "high" for f in attributed) and len(attributed) == 2


def test_real_admin_cmdlets_no_false_forwarding(realdata: RealData) -> None:
    records = _records(realdata("msticpy", "demo_exchange_data.csv"))
    assert len(records) == 1334
    result = build_findings(FindingInputs(records=records, tenant_domains={"seccxpninja.onmicrosoft.com"}))
    # 135 Set-Mailbox runs without forwarding parameters: no forwarding finding; 5 permission grants for review
    assert not [f for f in result.findings if f.category == "forwarding"]
    grants = [f for f in result.findings if f.category == "mailbox-permission"]
    assert len(grants) == 5 and not any(f.attacker for f in grants)
    assert result.attacker_findings == [] and result.context.ips == set()
