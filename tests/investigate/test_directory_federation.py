"""Sparrow's SAML check (row 6) from the federation configuration the tenant serves, over both backends
(pypsrp against the project's PSRP server, and the REST path's Microsoft Graph client against the
simulated Graph), and the period default measured from one instant."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from mia_bridge.bridge.config import ConnectionSettings
from mia_bridge.investigate.directory import collect_directory
from mia_bridge.investigate.license import LicenseFacts, LicensePolicy, decide
from mia_bridge.sim.backend import sim_session
from mia_bridge.sim.scenario import build_tenant
from mia_bridge.sim.scenario_directory import federation_configuration
from mia_bridge.sim.tenant import Tenant, TenantConfig

CONN = ConnectionSettings()


def _tenant() -> Tenant:
    return build_tenant(TenantConfig(), scenario="compromised", records=200)


@pytest.mark.parametrize("backend", ["psrp", "rest"])
def test_only_the_domain_not_enforcing_mfa_and_its_child_are_flagged(backend: str, tmp_path: Path) -> None:
    tenant = _tenant()
    truth = tenant.truth
    assert truth is not None
    fed = truth.federated_domains[0]
    with sim_session(replace(CONN, backend=backend), tenant=tenant) as session:
        data = collect_directory(session.backend, tmp_path)
    assert data.errors == {}
    partner = next(d["Id"] for d in tenant.directory.domains if d["Id"].endswith("-partners.com"))
    assert sorted(data.federation) == sorted([fed, partner])  # the federated roots' configurations were read
    assert data.federation[partner][0]["FederatedIdpMfaBehavior"] == "enforceMfaByFederatedIdp"
    assert data.flagged_domains == [fed, f"eu.{fed}"]  # not the partner domain, which enforces MFA
    assert (tmp_path / "directory" / "domain_federation.json").exists()  # raw output kept


@pytest.mark.parametrize(
    ("behaviour", "flagged"),
    [("acceptIfMfaDoneByFederatedIdp", False), ("enforceMfaByFederatedIdp", False),
     ("rejectMfaByFederatedIdp", True), (None, True)],
)  # fmt: skip
def test_each_behaviour_served_by_the_simulator(behaviour: str | None, flagged: bool, tmp_path: Path) -> None:
    tenant = _tenant()
    assert tenant.truth is not None
    fed = tenant.truth.federated_domains[0]
    tenant.directory.federation[fed] = [federation_configuration(fed, behaviour)]
    with sim_session(replace(CONN, backend="rest"), tenant=tenant) as session:
        data = collect_directory(session.backend, tmp_path)
    assert (fed in data.flagged_domains) is flagged
    assert (f"eu.{fed}" in data.flagged_domains) is flagged  # the child follows its root


def test_managed_domain_has_no_configuration_and_unknown_domain_is_not_found() -> None:
    tenant = _tenant()
    from mia_bridge.bridge.backend import CmdletCall
    from mia_bridge.errors import BridgeError

    with sim_session(replace(CONN, backend="rest"), tenant=tenant) as session:
        managed = session.backend.invoke(
            CmdletCall("Get-MgDomainFederationConfiguration", {"DomainId": tenant.config.organization})
        )
        assert managed.output == []
        with pytest.raises(BridgeError, match="does not exist"):
            session.backend.invoke(CmdletCall("Get-MgDomainFederationConfiguration", {"DomainId": "nowhere.example"}))


class _UI:
    progress = None

    def __init__(self) -> None:
        self.notes: list[str] = []

    def confirm(self, question: str) -> bool:
        return True

    def outcome(self, outcome: object) -> None:
        pass

    def note(self, text: str) -> None:
        self.notes.append(text)


@pytest.mark.parametrize("end_is_now", [True, False])
def test_default_run_measures_the_period_from_one_instant(end_is_now: bool, tmp_path: Path) -> None:
    from mia_bridge.collect.engine import CollectOptions
    from mia_bridge.investigate.pipeline import InvestigateOptions, run_investigation

    end = datetime(2026, 12, 2, 5, 0, tzinfo=UTC)
    options = InvestigateOptions(tenant="contoso.onmicrosoft.com", out_dir=tmp_path / "case", start=None, end=end,
                                 end_is_now=end_is_now, collect_options=CollectOptions(concurrency=2))  # fmt: skip
    ui = _UI()
    with sim_session(CONN, tenant=_tenant()) as session:
        result = run_investigation(session.backend, options, ui, now=lambda: end + timedelta(seconds=7))
    assert result.license is not None
    assert result.options is not None and options.start is None  # the options are frozen: the result has the period
    assert result.options.start == end - timedelta(days=result.license.retention_days)
    warned = any("-day retention of" in n for n in ui.notes)
    assert warned is not end_is_now  # an --end given in the past does reach before the retention


def test_default_period_has_no_spurious_retention_warning() -> None:
    # the default start is end - retention with end = the run's "now": measured from that instant, no warning
    end = datetime(2026, 12, 2, 5, 0, tzinfo=UTC)
    facts = LicenseFacts(premium=False, mailbox_audit={"a@contoso.com": True})
    start = end - timedelta(days=180)
    assert not any("retention" in w for w in decide(LicensePolicy.DETECT, facts, start=start, now=end).warnings)
    # measured from a later clock reading it would warn: the pipeline must not do that (end_is_now)
    later = end + timedelta(seconds=3)
    assert any("retention" in w for w in decide(LicensePolicy.DETECT, facts, start=start, now=later).warnings)


def test_without_domain_read_all_the_configuration_is_denied_and_the_domain_flagged(tmp_path: Path) -> None:
    tenant = _tenant()
    assert tenant.truth is not None
    fed = tenant.truth.federated_domains[0]
    with sim_session(replace(CONN, backend="rest"), tenant=tenant) as session:
        server = session.server
        app = next(iter(server.apps.values()))  # type: ignore[union-attr]
        # Directory.Read.All is not among the documented permissions of List internalDomainFederations
        app.roles = {**app.roles, "graph": ("Organization.Read.All", "Directory.Read.All", "Application.Read.All")}
        data = collect_directory(session.backend, tmp_path)
    assert any("Get-MgDomainFederationConfiguration" in k and "Insufficient privileges" in v
               for k, v in data.errors.items())  # fmt: skip
    assert data.domains and data.service_principals  # the rest was still read
    assert fed in data.flagged_domains  # not shown to accept the IdP's MFA: the harsher reading
