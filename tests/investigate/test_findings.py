"""Findings: attribution by pivoting from self-evidently malicious events; benign look-alikes stay 'for review'."""

from __future__ import annotations

from typing import Any

from mia_bridge.investigate.findings import FindingInputs, build_findings

ATTACKER_IP = "203.0.113.66"
ADMIN_IP = "198.51.100.10"
APP = "7e3b1f2a-1111-4222-8333-944455556666"
SP_OBJECT = "0c0c0c0c-aaaa-4bbb-8ccc-dddddddddddd"


def _rule(rid: str, ip: str, forward: str | None, *, user: str = "victim@contoso.com") -> dict[str, Any]:
    params = [{"Name": "Name", "Value": "x"}, {"Name": "Identity", "Value": user}]
    if forward:
        params.append({"Name": "ForwardTo", "Value": forward})
    else:
        params.append({"Name": "MoveToFolder", "Value": "Newsletters"})
    return {"Id": rid, "CreationTime": "2026-03-01T10:00:00", "Operation": "New-InboxRule", "RecordType": 1,
            "UserId": user, "ClientIP": f"{ip}:51000", "Parameters": params, "ObjectId": user}  # fmt: skip


def _bind(rid: str, ip: str, app: str, ids: list[str], mailbox: str = "victim@contoso.com") -> dict[str, Any]:
    return {"Id": rid, "CreationTime": "2026-03-01T12:00:00", "Operation": "MailItemsAccessed", "RecordType": 50,
            "UserId": mailbox, "MailboxOwnerUPN": mailbox, "ClientIPAddress": ip, "AppId": app,
            "OperationProperties": [{"Name": "MailAccessType", "Value": "Bind"},
                                    {"Name": "IsThrottled", "Value": "False"}],
            "Folders": [{"Path": "\\Inbox", "FolderItems": [{"InternetMessageId": i} for i in ids]}]}  # fmt: skip


def _consent(rid: str, ip: str) -> dict[str, Any]:
    return {"Id": rid, "CreationTime": "2026-03-01T09:00:00", "Operation": "Consent to application.",
            "RecordType": 8, "UserId": "victim@contoso.com", "ClientIP": ip, "ObjectId": SP_OBJECT,
            "Target": [{"ID": f"ServicePrincipal_{SP_OBJECT}", "Type": 2},
                       {"ID": "Mail Helper", "Type": 1}]}  # fmt: skip


def _inputs(records: list[dict[str, Any]], **kw: Any) -> FindingInputs:
    return FindingInputs(
        records=records,
        tenant_domains={"contoso.com", "contoso.onmicrosoft.com"},
        service_principals=[{"AppId": APP, "Id": SP_OBJECT, "DisplayName": "Mail Helper"}],
        **kw,
    )


def test_pivot_from_external_forwarding_to_consent_and_mail_read() -> None:
    records = [
        _rule("r-evil", ATTACKER_IP, "drop@evil.example"),
        _rule("r-benign", ADMIN_IP, None, user="alice@contoso.com"),
        _consent("c-evil", ATTACKER_IP),
        _bind("m-evil", "192.0.2.99", APP, ["<a@contoso.com>", "<b@contoso.com>"]),
        _bind("m-owner", "10.1.1.1", "00000002-0000-0ff1-ce00-000000000000", ["<c@contoso.com>"]),
    ]
    result = build_findings(_inputs(records))
    assert ATTACKER_IP in result.context.ips and APP in result.context.apps
    attacker_ids = {rid for f in result.attacker_findings for rid in f.record_ids}
    assert attacker_ids == {"r-evil", "c-evil", "m-evil"}
    assert {m.internet_message_id for m in result.exposed} == {"<a@contoso.com>", "<b@contoso.com>"}
    consent = next(f for f in result.findings if f.category == "app-consent")
    assert consent.severity == "critical" and "read mail of 1 mailbox" in consent.title
    benign = next(f for f in result.findings if "r-benign" in f.record_ids)
    assert not benign.attacker and benign.severity in {"info", "low"}


def test_known_good_ip_is_never_attacker_context() -> None:
    records = [_rule("r1", ATTACKER_IP, "drop@evil.example"), _bind("m1", ATTACKER_IP, APP, ["<x@y>"])]
    result = build_findings(_inputs(records, known_good_ips=[ATTACKER_IP]))
    assert result.exposed == []
    rule = next(f for f in result.findings if f.category == "inbox-rule")
    assert rule.attacker  # forwarding outside is attacker activity whatever the address


def test_suspicious_ip_given_and_sync_and_throttle() -> None:
    sync = _bind("s1", ATTACKER_IP, APP, [])
    sync["OperationProperties"] = [{"Name": "MailAccessType", "Value": "Sync"}]
    sync["Folders"] = [{"Path": "\\Finance"}]
    throttled = _bind("t1", "10.1.1.1", "x", [])
    throttled["OperationProperties"] = [{"Name": "MailAccessType", "Value": "Bind"},
                                        {"Name": "IsThrottled", "Value": "True"}]  # fmt: skip
    result = build_findings(FindingInputs(records=[sync, throttled], tenant_domains={"contoso.com"},
                                          suspicious_ips=[ATTACKER_IP]))  # fmt: skip
    assert result.synced_folders == {"victim@contoso.com": {"\\Finance"}}
    assert any(f.category == "throttling" for f in result.findings)
    mail = next(f for f in result.findings if f.category == "mail-access")
    assert "\\Finance" in mail.title and mail.attacker


def test_update_inbox_rules_and_address_forms() -> None:
    update = {"Id": "u1", "CreationTime": "2026-03-01T10:00:00", "Operation": "UpdateInboxRules", "RecordType": 2,
              "UserId": "victim@contoso.com", "ClientIPAddress": ATTACKER_IP,
              "OperationProperties": [
                  {"Name": "RuleName", "Value": "x"},
                  {"Name": "RuleActions", "Value": '[{"Actions":[{"Recipients":["Evil Person <drop@evil.example>",'
                                                   '"bob@contoso.com"],"ActionType":"Forward"}]}]'}]}  # fmt: skip
    named = _rule("r-named", ADMIN_IP, "Evil <drop@evil.example>; smtp:other@evil.example")
    alias = _rule("r-alias", "198.51.100.77", "Bob Internal")  # a mailbox name: inside the organisation
    result = build_findings(_inputs([update, named, alias]))
    by_id = {f.record_ids[0]: f for f in result.findings if f.category == "inbox-rule"}
    assert by_id["u1"].attacker and by_id["u1"].severity == "critical"
    assert "forwards to drop@evil.example" in by_id["u1"].rows[0]["Detail"]
    assert "bob@contoso.com" not in by_id["u1"].rows[0]["Detail"]  # internal recipient is not external
    assert by_id["r-named"].rows[0]["Detail"] == "forwards to drop@evil.example; forwards to other@evil.example"
    assert not by_id["r-alias"].attacker
