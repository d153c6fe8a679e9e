"""Sparrow's searches as definitions, the SAML post-filter, and the four licence policies."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from mia_bridge.investigate.license import LicenseFacts, LicensePolicy, decide, premium_skus
from mia_bridge.investigate.plan import (
    SAML_SEARCH,
    SPARROW_TENANT_SEARCHES,
    app_searches,
    federation_flags,
    flagged_federated_domains,
    saml_domain_filter,
)

NOW = datetime(2026, 11, 28, tzinfo=UTC)


def test_sparrow_rows_1_to_8_are_defined_exactly() -> None:
    rows = {s.sparrow_row: s for s in (*SPARROW_TENANT_SEARCHES, SAML_SEARCH)}
    assert sorted(rows) == ["1", "2", "3", "4", "5", "6", "7", "8a", "8b", "8c"]
    assert rows["1"].operations == ("Set domain authentication", "Set federation settings on domain")
    assert rows["5"].operations == ("Add OAuth2PermissionGrant", "Consent to application")
    assert rows["6"].free_text == "16457" and rows["6"].operations == ("UserLoggedIn", "UserLoginFailed")
    assert rows["7"].free_text == "Powershell" and rows["7"].workload == "EXO2"
    assert rows["8a"].free_text == "a0c73c16-a7e3-4564-9a95-2bdf47383716"
    assert rows["8b"].free_text == "1b730954-1685-4b74-9bfd-dac224a7b894"
    assert rows["8c"].free_text == "WinRM"
    assert {rows[r].sparrow_file for r in ("8a", "8b", "8c")} == {"PSLogin_Operations_Export.csv"}
    assert all(rows[r].record_types == ("AzureActiveDirectory",) for r in "12345")
    query = rows["1"].to_audit_query(NOW - timedelta(days=1), NOW)
    assert query.filter_parameters()["RecordType"] == "AzureActiveDirectory"


def test_app_searches_layouts() -> None:
    mail, files = app_searches("AAAA0000-0000-0000-0000-000000000001", "Mail Helper")
    assert mail.operations == ("MailItemsAccessed",) and mail.mail_items and mail.workload == "EXO"
    assert files.operations == ("FileAccessed", "FileAccessedExtended") and files.workload == "SharePoint"
    assert mail.free_text == "AAAA0000-0000-0000-0000-000000000001"
    expected = "AppInvestigations/Mail Helper/MailItems_Operations_Export.AAAA0000-0000-0000-0000-000000000001.csv"
    assert mail.sparrow_file == expected
    single_mail, _ = app_searches("aaaa0000-0000-0000-0000-000000000001", None)
    assert single_mail.sparrow_file == "AppInvestigations/MailItems_Operations_Export.csv"


def _fed(behaviour: str | None = None, **extra: object) -> list[dict[str, object]]:
    return [{"Id": "idp", "FederatedIdpMfaBehavior": behaviour, **extra}]


@pytest.mark.parametrize(
    ("configs", "flagged"),
    [
        (_fed("acceptIfMfaDoneByFederatedIdp"), False),  # Entra ID accepts the IdP's MFA
        (_fed("enforceMfaByFederatedIdp"), False),  # ... and sends the user back to the IdP for it
        (_fed("rejectMfaByFederatedIdp"), True),  # Entra ID rejects the IdP's MFA: a claim of it is anomalous
        (_fed("unknownFutureValue"), True),
        (_fed(None), True),  # never set: the legacy SupportsMfa rules, which Graph does not return
        (_fed(None, SupportsMfa=True), False),  # legacy, where present: Sparrow's SupportsMfa -ne $True
        (_fed(None, SupportsMfa=False), True),
        (_fed("enforceMfaByFederatedIdp", SupportsMfa=False), False),  # the behaviour wins when set
        ([], True),  # a federated domain without a configuration: not shown to accept the IdP's MFA
        (None, True),  # not readable
    ],
)
def test_federation_flags_for_each_behaviour(configs: list[dict[str, object]] | None, flagged: bool) -> None:
    assert federation_flags(configs)[0] is flagged


def test_saml_check_flags_the_domain_not_enforcing_mfa_and_its_children() -> None:
    domains = [
        {"Id": "contoso.com", "AuthenticationType": "Managed", "IsRoot": True},
        {"Id": "Fed.example", "AuthenticationType": "Federated", "IsRoot": True},
        {"Id": "mfa.example", "AuthenticationType": "Federated", "IsRoot": True},
        {"Id": "eu.fed.example", "AuthenticationType": "Federated", "IsRoot": False},
        {"Id": "eu.mfa.example", "AuthenticationType": "Federated", "IsRoot": False},
        {"Id": "sales.contoso.com", "AuthenticationType": "Managed", "IsRoot": False},
    ]
    federation = {"fed.example": _fed("rejectMfaByFederatedIdp"), "mfa.example": _fed("enforceMfaByFederatedIdp")}
    flagged = flagged_federated_domains(domains, federation)
    assert flagged == ["fed.example", "eu.fed.example"]
    records = [{"UserId": "a@FED.example"}, {"UserId": "b@mfa.example"}, {"UserId": "c@contoso.com"},
               {"UserId": "d@eu.fed.example"}, {"UserId": "no-at-sign"}, {"UserId": None},
               {"UserId": "e@fed.example@other.org"}]  # fmt: skip
    # Sparrow: $_.UserId.Split('@')[1] -in $domainsToFlag (case-insensitive, the text after the first @)
    assert saml_domain_filter(records, flagged) == [records[0], records[3], records[6]]


STANDARD_AUDITING = LicenseFacts(premium=False, mailbox_audit={"victim@contoso.com": True})


def test_sparrow_policy_skips_mailitems_without_premium_detect_does_not() -> None:
    start = NOW - timedelta(days=30)
    sparrow = decide(LicensePolicy.SPARROW, STANDARD_AUDITING, start=start, now=NOW)
    detect = decide(LicensePolicy.DETECT, STANDARD_AUDITING, start=start, now=NOW)
    assert not sparrow.search_mail_items and "E5/G5" in sparrow.mail_items_reason
    assert detect.search_mail_items and detect.mail_items_reason == ""
    # both skip the Premium-only parts and say why
    assert not sparrow.search_premium_only and not detect.search_premium_only
    assert "Premium-only" in detect.premium_reason


@pytest.mark.parametrize("policy", list(LicensePolicy))
def test_premium_tenant_searches_everything(policy: LicensePolicy) -> None:
    facts = LicenseFacts(premium=True, premium_skus=["SPE_E5"], mailbox_audit={"v@c": True})
    decision = decide(policy, facts, start=NOW - timedelta(days=30), now=NOW)
    if policy is LicensePolicy.ASSUME_STANDARD:
        assert decision.search_mail_items and not decision.search_premium_only
    else:
        assert decision.search_mail_items and decision.search_premium_only


def test_detect_skips_when_no_mailbox_audits_and_retention_warning() -> None:
    facts = LicenseFacts(premium=False, mailbox_audit={"v@c": False})
    decision = decide(LicensePolicy.DETECT, facts, start=NOW - timedelta(days=200), now=NOW)
    assert not decision.search_mail_items and "AuditOwner" in decision.mail_items_reason
    assert any("180-day retention" in w for w in decision.warnings)
    premium = decide(LicensePolicy.ASSUME_PREMIUM, facts, start=NOW - timedelta(days=200), now=NOW)
    assert premium.search_mail_items and not any("retention" in w for w in premium.warnings)


def test_premium_sku_detection() -> None:
    skus = [
        {"SkuPartNumber": "SPE_E3", "CapabilityStatus": "Enabled",
         "ServicePlans": [{"ServicePlanName": "EXCHANGE_S_ENTERPRISE"}]},
        {"SkuPartNumber": "SPE_E5", "CapabilityStatus": "Enabled",
         "ServicePlans": [{"ServicePlanName": "M365_ADVANCED_AUDITING",
                           "ServicePlanId": "2f442157-a11c-46b9-ae5b-6e39ff4e5849"}]},
        {"SkuPartNumber": "E5_OLD", "CapabilityStatus": "Suspended",
         "ServicePlans": [{"ServicePlanName": "M365_ADVANCED_AUDITING"}]},
    ]  # fmt: skip
    assert premium_skus(skus) == ["SPE_E5"]
